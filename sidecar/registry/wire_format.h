// The Confluent Schema Registry wire format of a record's value (or key): a zero "magic"
// byte, the schema id as a 4-byte big-endian signed integer, then the payload, encoded
// under that schema (JSON text for JSON Schema).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachecar::registry {

inline constexpr char kMagicByte = 0;
inline constexpr size_t kHeaderBytes = 5;

struct WireValue {
  int32_t schema_id = 0;
  std::string_view payload;  // into the parsed value
};

// nullopt if `value` is not in the wire format: shorter than the header, or another first
// byte. Any id is returned as it is (the registry decides whether it knows it).
std::optional<WireValue> ParseWireValue(std::string_view value);

// The wire format of `payload` under `schema_id`.
std::string EncodeWireValue(int32_t schema_id, std::string_view payload);

}  // namespace cachecar::registry
