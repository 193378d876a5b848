// InvalidRecords: what becomes of a record the materializer refuses (record_check.h: bad
// key, not JSON, or against the topic's schema), by the topic's on_invalid policy, and the
// partition halts that policy leads to. Writer thread only; not thread-safe.
//
//   skip         the record is counted, listed in the RejectedLog and logged (at most
//                kRejectLogsPerSecond lines a second per topic); consumption moves past it.
//   dead-letter  as skip, after producing it with error headers to the dead-letter topic
//                and waiting for the broker's acknowledgement (a dead letter may be sent
//                twice after a crash, never lost). If the broker does not take it, the
//                partition halts instead (the record must not be skipped unrecorded) and
//                the dead letter is sent again with backoff (dead_letter_retry, doubling
//                up to kMaxDeadLetterRetry) until the broker takes it; the partition then
//                goes on by itself past the record.
//   fail         the partition halts at the record.
//
// A halt is recorded here (with the schema in force when it happened); the materializer
// pauses the partition and tells its observers. Halts are lifted when the topic's schema
// has been replaced since (a reload), or when the topic is rebuilt; a partition waiting for
// the schema registry (value_format: registry) when the registry answers.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "kafka/materializer_stats.h"
#include "kafka/producer.h"
#include "kafka/record_check.h"
#include "kafka/record_source.h"
#include "kafka/rejected_log.h"
#include "schema/schema_set.h"
#include "store/write_batch.h"

namespace cachecar::kafka {

class InvalidRecords {
 public:
  struct Options {
    const std::vector<config::TopicConfig>* topics = nullptr;  // by topic index
    const schema::SchemaSet* schemas = nullptr;  // null: no topic has a schema
    RecordSink* dead_letters = nullptr;          // required if a topic dead-letters
    std::chrono::milliseconds dead_letter_timeout{30000};
    RejectedLog* rejected = nullptr;             // null: not listed
    // First wait before a dead letter the broker did not take is sent again.
    std::chrono::milliseconds dead_letter_retry{1000};
  };
  static constexpr std::chrono::milliseconds kMaxDeadLetterRetry{30000};

  // Pointers are not owned and must outlive this.
  InvalidRecords(Options options, MaterializerStats* stats);

  enum class Verdict {
    kConsumed,  // skipped or dead-lettered: move past the record
    kHalt,      // halt the partition at the record (`halting` says why)
  };
  // Why and how a partition halts on a record.
  struct Halting {
    std::string reason;
    std::optional<ProduceRequest> dead_letter;  // not taken by the broker: sent again
    RejectedRecord record;                      // listed once the dead letter goes
    // Set when the partition waits for the schema registry to give this schema id (not
    // the record's fault): see DueRegistryWaits.
    std::optional<int32_t> registry_schema_id;
  };
  // `detail` says what is wrong when the reason's own description (DescribeReject) is
  // not enough (a transform's error).
  Verdict Handle(const SourceEvent& ev, RejectReason reason,
                 const std::shared_ptr<const schema::JsonSchema>& schema, Halting* halting,
                 std::string_view detail = {});

  // Records a halt of the event's partition at its offset.
  void Halt(const SourceEvent& ev, Halting halting,
            std::shared_ptr<const schema::JsonSchema> schema);
  bool IsHalted(const store::PartitionKey& key) const { return halted_.count(key) > 0; }
  bool any_halted() const { return !halted_.empty(); }
  std::vector<store::PartitionKey> Halted() const;

  // Lifts the halts whose topic has another schema now; returns them.
  std::vector<store::PartitionKey> LiftReplaced();
  // The halts waiting on the schema registry whose next try is due at `now`, with the
  // schema id each waits for. The caller asks the registry, then lifts the halt
  // (LiftRegistryWait) or backs off (RegistryStillAway: the wait doubles, up to
  // kMaxDeadLetterRetry).
  std::vector<std::pair<store::PartitionKey, int32_t>> DueRegistryWaits(
      std::chrono::steady_clock::time_point now) const;
  void LiftRegistryWait(const store::PartitionKey& key);
  void RegistryStillAway(const store::PartitionKey& key,
                         std::chrono::steady_clock::time_point now);
  // Lifts the halts of a topic (it is being rebuilt); returns them.
  std::vector<store::PartitionKey> LiftTopic(size_t topic);
  // Sends again the dead letters whose wait has passed at `now`. Returns the partitions
  // whose dead letter the broker took, with the offset of its record, their halts lifted:
  // the caller moves them past that record.
  std::vector<std::pair<store::PartitionKey, int64_t>> RetryDeadLetters(
      std::chrono::steady_clock::time_point now);

  static constexpr int kRejectLogsPerSecond = 10;

 private:
  struct HaltedAt {
    int64_t offset;
    std::shared_ptr<const schema::JsonSchema> schema;  // in force when it halted
    Halting halting;
    std::chrono::milliseconds retry_wait{0};
    std::chrono::steady_clock::time_point next_retry;
  };
  // Lists a refused record that was consumed (skipped or dead-lettered).
  void Consumed(size_t topic, RejectedRecord rec);
  // Produces a dead letter and waits for the broker's answer.
  Status SendDeadLetter(size_t topic, const ProduceRequest& dl);
  void Lift(const store::PartitionKey& key);

  const Options options_;
  MaterializerStats* const stats_;
  std::map<store::PartitionKey, HaltedAt> halted_;
  // Per topic: the second being counted, and the log lines written in it.
  std::vector<std::pair<std::chrono::steady_clock::time_point, int>> log_budget_;
};

}  // namespace cachecar::kafka
