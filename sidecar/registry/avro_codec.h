// Avro payloads of value_format: registry topics: the writer's schema (the registry's,
// by the record's schema id) decodes a datum into JSON, in Avro's own JSON encoding (see
// the README's "Schema Registry topics": unions, bytes and logical types). The decoder is
// the Rust apache-avro crate behind the C ABI of sidecar/schema/jsonschema_ffi (src/avro.rs):
// memory-safe on hostile records, its allocations capped, recursive schemas refused.
// Immutable once compiled; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cachecar::registry {

struct AvroHandle;  // the Rust side's (avro.rs Avro)

class AvroSchema {
 public:
  // INVALID_ARGUMENT (reason AVRO_SCHEMA_INVALID) if `text` is not an Avro schema this
  // decoder takes. `references` (name -> text, each after those it uses) are the named
  // types it refers to, as the registry's schema references give them.
  static Result<std::shared_ptr<const AvroSchema>> Compile(
      std::string_view text,
      const std::vector<std::pair<std::string, std::string>>& references = {});
  ~AvroSchema();
  AvroSchema(const AvroSchema&) = delete;
  AvroSchema& operator=(const AvroSchema&) = delete;

  // The datum's JSON. INVALID_ARGUMENT (reason AVRO_DECODE_FAILED) if the bytes do not
  // decode (or are followed by more), RESOURCE_EXHAUSTED (VALUE_TOO_LARGE) if the JSON
  // would be over `max_bytes`.
  Result<std::string> Decode(std::string_view datum, size_t max_bytes) const;
  // The datum of a JSON document in that same encoding (what a Put writes).
  // INVALID_ARGUMENT (reason SCHEMA_VIOLATION) with a violation per problem, each field
  // "value" and the JSON Pointer ("value/age": "expected an int (a 32-bit integer)").
  Result<std::string> Encode(std::string_view json) const;

 private:
  explicit AvroSchema(AvroHandle* h) : handle_(h) {}
  AvroHandle* handle_;
};

}  // namespace cachecar::registry
