// Protobuf payloads of value_format: registry topics: the registered .proto (the writer's
// schema, by the record's schema id; as text, or as a base64 FileDescriptorProto) is parsed
// with libprotoc into a descriptor pool of its own (over the well-known types, with the
// files it imports by schema reference), and each payload, after Confluent's message
// indexes, decodes as a dynamic message into the proto3 JSON mapping (libprotobuf's JSON printer:
// lowerCamelCase names, fields at their default value left out, 64-bit integers as
// strings, enums by name). Immutable once compiled; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/status.h"

namespace google::protobuf {
class Descriptor;
class DescriptorPool;
class DynamicMessageFactory;
class FileDescriptor;
namespace util {
class TypeResolver;
}  // namespace util
}  // namespace google::protobuf

namespace cachecar::registry {

class ProtobufSchema {
 public:
  // INVALID_ARGUMENT (reason PROTOBUF_SCHEMA_INVALID) with libprotoc's first errors if
  // `proto_text` does not parse or build. Its imports are the well-known types and
  // `references`: the registry's schema references, file name -> .proto (text or base64
  // descriptor), each after the ones it imports.
  static Result<std::shared_ptr<const ProtobufSchema>> Compile(
      std::string_view proto_text,
      const std::vector<std::pair<std::string, std::string>>& references = {});
  ~ProtobufSchema();
  ProtobufSchema(const ProtobufSchema&) = delete;
  ProtobufSchema& operator=(const ProtobufSchema&) = delete;

  // `payload`: the value after the 5-byte header: the message indexes (Confluent's
  // zigzag varints: a count, then each index; a lone 0 is the first message), then the
  // message. INVALID_ARGUMENT (PROTOBUF_DECODE_FAILED) if the indexes name no message or
  // the bytes do not parse as it; RESOURCE_EXHAUSTED (VALUE_TOO_LARGE) if the JSON would
  // be over `max_bytes`.
  Result<std::string> Decode(std::string_view payload, size_t max_bytes) const;

  // The payload (message indexes [0], then the message) of a JSON document in the proto3
  // JSON mapping, as the file's first message: what a Put writes. INVALID_ARGUMENT (reason
  // SCHEMA_VIOLATION) with libprotobuf's reason if it does not parse as that message.
  Result<std::string> Encode(std::string_view json) const;

  // The full name of the first message of the file (what index [0] names); empty if none.
  std::string FirstMessage() const;

 private:
  ProtobufSchema();
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  const google::protobuf::FileDescriptor* file_ = nullptr;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  std::unique_ptr<google::protobuf::util::TypeResolver> resolver_;     // for Decode
  // Messages the direct printer (PrintJson in the .cc) writes: all but those with map
  // fields, groups, extensions or well-known types, in them or in a message they hold.
  // The others go through libprotobuf's JSON converter.
  std::unordered_set<const google::protobuf::Descriptor*> printable_;
};

}  // namespace cachecar::registry
