// RdKafkaSource: a RecordSource over a librdkafka consumer.
//
// The consumer reads with isolation.level=read_committed, never joins a consumer group
// (each sidecar needs every partition; partitions are assigned directly) and never
// commits: positions live in the store, in the same transaction as the data.
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kafka/record_source.h"

namespace cachecar::kafka {

class RdKafkaSource : public RecordSource {
 public:
  // `properties` are extra librdkafka settings (TLS, SASL, ...), applied before cachecar's
  // own. INVALID_ARGUMENT names a property librdkafka refuses.
  static Result<std::unique_ptr<RdKafkaSource>> Create(
      const std::string& bootstrap_servers, const std::map<std::string, std::string>& properties,
      std::vector<std::string> topics);
  ~RdKafkaSource() override;

  Result<int32_t> PartitionCount(size_t topic, std::chrono::milliseconds timeout) override;
  Result<std::vector<int64_t>> EndOffsets(size_t topic, int32_t partitions,
                                          std::chrono::milliseconds timeout) override;
  Status Assign(const std::vector<Assignment>& assignments) override;
  Status Pause(size_t topic, int32_t partition) override;
  bool Poll(std::chrono::milliseconds timeout, SourceEvent* event) override;
  int64_t CachedEndOffset(size_t topic, int32_t partition) override;

 private:
  RdKafkaSource() = default;
  size_t TopicIndex(const char* name) const;

  rd_kafka_t* rk_ = nullptr;
  std::vector<std::string> topics_;
  std::vector<rd_kafka_topic_t*> topic_handles_;
  rd_kafka_message_t* last_ = nullptr;  // the message the last event's views point into
};

}  // namespace cachecar::kafka
