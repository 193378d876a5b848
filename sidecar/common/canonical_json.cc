#include "common/canonical_json.h"

#include <nlohmann/json.hpp>

namespace cachecar {
namespace {

// Whether arrays and objects nest at most kMaxCanonicalJsonDepth deep, by one pass over
// the text (brackets inside strings do not count): nlohmann's dump recurses once per
// level, so a 1 MiB key of brackets would overflow the calling thread's stack.
bool ShallowEnough(std::string_view json) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxCanonicalJsonDepth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> CanonicalJson(std::string_view json) {
  if (!ShallowEnough(json)) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  // nlohmann's objects keep their members sorted by name; dump(-1) is compact.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cachecar
