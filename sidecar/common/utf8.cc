#include "common/utf8.h"

#include <utf8/checked.h>

namespace cachecar {

bool IsValidUtf8(std::string_view bytes) {
  return utf8::find_invalid(bytes.begin(), bytes.end()) == bytes.end();
}

}  // namespace cachecar
