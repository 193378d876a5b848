#include "transform/merge_patch.h"

#include <nlohmann/json.hpp>

namespace cachecar::transform {

std::optional<std::string> MergePatch(std::optional<std::string_view> current,
                                      std::string_view patch) {
  nlohmann::json doc;  // null: no value
  if (current) doc = nlohmann::json::parse(*current, nullptr, false);
  if (doc.is_discarded()) doc = nullptr;
  nlohmann::json p = nlohmann::json::parse(patch, nullptr, false);
  if (p.is_discarded()) p = nullptr;  // callers pass checked JSON; never a throw here
  doc.merge_patch(p);
  if (doc.is_null()) return std::nullopt;
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cachecar::transform
