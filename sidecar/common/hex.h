// Lower-case hex of bytes (digests in messages and on the wire). Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>

namespace cachecar {

inline std::string LowerHex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

}  // namespace cachecar
