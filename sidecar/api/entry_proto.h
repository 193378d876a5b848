// Conversions from stored entries to the API's messages, shared by the read RPCs (rpc/)
// and Watch (watch/). Pure functions; thread-safe.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cachecar/v1/cache.pb.h"
#include "config/config.h"
#include "store/record_codec.h"

namespace cachecar::api {

// Sets the Timestamp field that `mutable_field` returns from a Kafka timestamp in
// milliseconds. Kafka says -1 for a record without one (and producers refuse negative
// ones): the field is then left unset rather than claim 1969-12-31T23:59:59.999Z.
template <typename Message, typename Mutable>
void SetKafkaTimestamp(int64_t ms, Message* msg, Mutable mutable_field) {
  if (ms < 0) return;
  google::protobuf::Timestamp* t = (msg->*mutable_field)();
  t->set_seconds(ms / 1000);
  t->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
}

// Which version of its topic's subject a registry schema id is, where known
// (registry::SchemaCache::SubjectVersionFor). Empty where no topic reads a registry.
using SubjectVersionFn = std::function<std::optional<int32_t>(size_t topic, int32_t id)>;

// A stored entry as the API's Entry (the Kafka timestamp unset when the record has none).
// `versions` (may be empty) gives subject_version for an entry of topic `topic` that has a
// schema id.
void EntryToProto(std::string_view key, std::string_view value, const store::EntryMeta& meta,
                  v1::Entry* out, const SubjectVersionFn& versions = {}, size_t topic = 0);

// Why a read of `topic` cannot have its values as they were in Kafka (original_value),
// or empty when it can (config::TopicConfig::serves_original).
std::string WhyNoOriginal(const config::TopicConfig& topic);

// The value a read serves: the stored `value`, or when `want_original` the record's bytes
// as read from Kafka. A registry topic that keeps them has them beside the decoded JSON
// (`original`); a topic that stores values as they come has none there, its value is them.
template <typename Original>
std::string_view ServedValue(std::string_view value, const std::optional<Original>& original,
                             bool want_original) {
  return want_original && original ? std::string_view(*original) : value;
}

}  // namespace cachecar::api
