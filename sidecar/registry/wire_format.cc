#include "registry/wire_format.h"

namespace cachecar::registry {

std::optional<WireValue> ParseWireValue(std::string_view value) {
  if (value.size() < kHeaderBytes || value[0] != kMagicByte) return std::nullopt;
  uint32_t id = 0;
  for (size_t i = 1; i < kHeaderBytes; ++i) {
    id = (id << 8) | static_cast<uint8_t>(value[i]);
  }
  return WireValue{static_cast<int32_t>(id), value.substr(kHeaderBytes)};
}

std::string EncodeWireValue(int32_t schema_id, std::string_view payload) {
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  out.push_back(kMagicByte);
  const auto id = static_cast<uint32_t>(schema_id);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(id >> shift));
  out.append(payload);
  return out;
}

}  // namespace cachecar::registry
