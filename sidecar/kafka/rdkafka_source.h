// RdKafkaSource: a RecordSource over a librdkafka consumer.
//
// The consumer reads with isolation.level=read_committed and never joins a consumer group
// (each sidecar needs every partition; partitions are assigned directly). Positions live
// in the store, in the same transaction as the data; CommitOffsets also reports them to
// `group_id` so that Kafka's group tools show the lag (a commit without membership, as a
// standalone consumer's). auto.offset.reset is "error": a position that fell out of the
// log is reported (kOffsetOutOfRange), never silently moved.
//
// Threads: not thread-safe. One thread (the materializer's) calls every method; librdkafka's
// callbacks (errors, offset commits) are served inside Poll on that thread.
#pragma once

#include <librdkafka/rdkafka.h>

#include <functional>
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
      std::vector<std::string> topics, const std::string& group_id = "cachecar");
  ~RdKafkaSource() override;

  Result<int32_t> PartitionCount(size_t topic, std::chrono::milliseconds timeout) override;
  Result<int64_t> LogStartOffset(size_t topic, int32_t partition,
                                 std::chrono::milliseconds timeout) override;
  Result<std::vector<int64_t>> EndOffsets(size_t topic, int32_t partitions,
                                          std::chrono::milliseconds timeout) override;
  Status Assign(const std::vector<Assignment>& assignments) override;
  Status Pause(size_t topic, int32_t partition) override;
  bool Poll(std::chrono::milliseconds timeout, SourceEvent* event) override;
  int64_t CachedEndOffset(size_t topic, int32_t partition) override;
  void CommitOffsets(const std::vector<Assignment>& positions) override;

  void SetCommitListener(const CommitListener& listener) override {
    commit_listener_ = listener;
  }

 private:
  RdKafkaSource() = default;
  size_t TopicIndex(const char* name) const;

  rd_kafka_t* rk_ = nullptr;
  std::vector<std::string> topics_;
  std::vector<rd_kafka_topic_t*> topic_handles_;
  rd_kafka_message_t* last_ = nullptr;  // the message the last event's views point into
  std::function<void(bool, const std::string&)> commit_listener_;
  static void OnCommit(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t* offsets, void* opaque);
  // Client-level errors (e.g. "topic does not exist" for an assigned partition of a
  // deleted topic) arrive here, during Poll, and are handed out as kError events.
  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  std::vector<std::pair<rd_kafka_resp_err_t, std::string>> errors_;  // polling thread
};

}  // namespace cachecar::kafka
