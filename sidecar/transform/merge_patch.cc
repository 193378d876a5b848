#include "transform/merge_patch.h"

#include <nlohmann/json.hpp>

namespace cachecar::transform {

std::optional<std::string> MergePatch(std::optional<std::string_view> current,
                                      std::string_view patch) {
  // Onto no value, an object patch without a null anywhere is its own result: the common
  // case of a key's first record needs no parse.
  const size_t first = patch.find_first_not_of(" \t\r\n");
  if (!current && first != std::string_view::npos && patch[first] == '{' &&
      patch.find("null") == std::string_view::npos) {
    return std::string(patch);
  }
  // Members keep the order they were written in (as in the fast path above).
  nlohmann::ordered_json doc;  // null: no value
  if (current) doc = nlohmann::ordered_json::parse(*current, nullptr, false);
  if (doc.is_discarded()) doc = nullptr;
  nlohmann::ordered_json p = nlohmann::ordered_json::parse(patch, nullptr, false);
  if (p.is_discarded()) p = nullptr;  // callers pass checked JSON; never a throw here
  doc.merge_patch(p);
  if (doc.is_null()) return std::nullopt;
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cachecar::transform
