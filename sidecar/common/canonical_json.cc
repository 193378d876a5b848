#include "common/canonical_json.h"

#include <nlohmann/json.hpp>

namespace cachecar {

std::optional<std::string> CanonicalJson(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  // nlohmann's objects keep their members sorted by name; dump(-1) is compact.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cachecar
