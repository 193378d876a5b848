#include "api/entry_proto.h"

namespace cachecar::api {

void EntryToProto(std::string_view key, std::string_view value, const store::EntryMeta& meta,
                  v1::Entry* out, const SubjectVersionFn& versions, size_t topic) {
  out->set_key(key.data(), key.size());
  out->set_value(value.data(), value.size());
  out->set_partition(meta.partition);
  out->set_offset(meta.offset);
  SetKafkaTimestamp(meta.timestamp_ms, out, &v1::Entry::mutable_kafka_timestamp);
  out->set_revision(meta.revision);
  if (meta.schema_id) {
    out->set_schema_id(*meta.schema_id);
    if (versions) {
      if (std::optional<int32_t> v = versions(topic, *meta.schema_id)) {
        out->set_subject_version(*v);
      }
    }
  }
}

std::string WhyNoOriginal(const config::TopicConfig& topic) {
  if (topic.serves_original()) return "";
  if (topic.is_view()) {
    return topic.name + " is a view: its values are made by cachecar, not read from Kafka";
  }
  if (topic.value_format == config::ValueFormat::kRegistry) {
    return "topic " + topic.name +
           " does not keep original values (set keep_original: true in its configuration)";
  }
  return "topic " + topic.name + " stores its values " +
         (topic.transform.empty() ? "merged (apply: merge-patch)" : "transformed") +
         ", not as they were in Kafka";
}

}  // namespace cachecar::api
