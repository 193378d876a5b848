// One form for a JSON document however it was spaced or its object members ordered. The
// keys of key_format: registry topics are stored in it and looked up in it. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cachecar {

// How deep arrays and objects may nest: deeper documents are refused (nullopt) rather than
// walked recursively.
inline constexpr size_t kMaxCanonicalJsonDepth = 128;

// Compact, object members sorted by name (bytes, as UTF-8), numbers as the parser read them.
// nullopt if `json` is not one JSON document.
std::optional<std::string> CanonicalJson(std::string_view json);

}  // namespace cachecar
