// UTF-8 validation for keys of utf-8 topics (utfcpp does the work).
#pragma once

#include <string_view>

namespace cachecar {

// True if `bytes` is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view bytes);

}  // namespace cachecar
