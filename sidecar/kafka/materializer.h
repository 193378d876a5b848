// Materializer: the one writer. Its thread owns the RecordSource and is the only thread
// that writes the Store.
//
// For every configured topic it assigns every partition (a topic that does not exist yet
// is retried; the sidecar stays not ready meanwhile), starting at the position stored in
// the store, or the beginning. Records are checked (record_check.h), turned into puts
// and deletes, and committed in batches: a batch commits when it holds batch_max_records
// records or batch_max_bytes bytes, when its first record is batch_max_delay old, or at
// once when the source has nothing more to give. Each commit writes the partitions' next
// offsets with the data, then tells the CatchUpTracker.
//
// A failed commit (disk full, or the map at its maximum) is retried with the same batch;
// consumption waits, the CatchUpTracker and ApplyNotifier are told why (the sidecar is not
// ready, Puts fail at once), and all is well again after the first commit that succeeds.
//
// A partition whose stored position fell out of the log (retention deleted records not
// yet applied, or the topic was recreated) and a topic deleted from Kafka make the topic
// rebuilt: its keys are deleted (watchers see the deletes), its positions forgotten, the
// topic is not ready, and it is read again from the beginning (once it exists again).
//
// Applied positions are also committed to Kafka's group offsets every
// commit_interval (for lag tooling; the store's positions are what a restart uses).
//
// A record that cannot be served (record_check.h: bad key, not JSON, or against the
// topic's schema; the schema is read from the SchemaSet for every record, so a reloaded
// schema applies from the next record on) is never applied, and the topic's on_invalid
// policy decides the rest: skip moves past it; dead-letter first produces it, with error
// headers, to the dead-letter topic and waits for the broker's acknowledgement, then moves
// past it (a dead letter may be sent twice after a crash, never lost); fail halts the
// partition at that offset: nothing more of it is applied, the CatchUpTracker and
// ApplyNotifier are told, and the partition resumes from that very offset when the
// topic's schema is replaced (a reload) or the process restarts.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "config/config.h"
#include "health/catch_up.h"
#include "kafka/apply_notifier.h"
#include "kafka/producer.h"
#include "kafka/record_check.h"
#include "kafka/record_source.h"
#include "kafka/rejected_log.h"
#include "schema/schema_set.h"
#include "store/store.h"

namespace cachecar::kafka {

struct MaterializerOptions {
  std::vector<config::TopicConfig> topics;  // same order as the store's and tracker's
  uint32_t batch_max_records = 10000;
  uint64_t batch_max_bytes = 16ull << 20;
  std::chrono::milliseconds batch_max_delay{50};
  // How long a metadata or offsets request may take, and how long to wait before asking
  // again for a topic that is missing or a broker that did not answer.
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds retry_backoff{1000};
  // Longest a Poll blocks when there is nothing to commit (bounds Stop latency).
  std::chrono::milliseconds idle_poll{100};
  // How long to wait for the broker to acknowledge one dead letter; past it, the
  // partition halts (the record must not be skipped unrecorded).
  std::chrono::milliseconds dead_letter_timeout{30000};

  // Optional collaborators, none owned; each must outlive the Materializer.
  const schema::SchemaSet* schemas = nullptr;  // null: no topic has a schema
  RecordSink* dead_letters = nullptr;          // required if a topic dead-letters
  RejectedLog* rejected = nullptr;
  ApplyNotifier* notifier = nullptr;
  // Called after every commit that changed something (Watch's hub). Must not block.
  std::function<void()> on_change;
  // How often applied positions are committed to Kafka (RecordSource::CommitOffsets);
  // zero never.
  std::chrono::milliseconds commit_interval{5000};
  // Store path for the free-space metric; empty: not reported.
  std::string store_path;
};

// Per-topic totals since start, for status reporting.
struct TopicCounters {
  uint64_t consumed = 0;
  uint64_t applied = 0;
  uint64_t rejected = 0;
};

class Materializer {
 public:
  // None of the pointers is owned; all must outlive the Materializer.
  Materializer(MaterializerOptions options, store::Store* store, RecordSource* source,
               health::CatchUpTracker* tracker, prometheus::Registry* registry);
  ~Materializer();

  // Starts the thread.
  void Start();
  // Commits what has been consumed and stops the thread. Idempotent.
  void Stop();

  std::vector<TopicCounters> Counters() const;

 private:
  struct PartitionMetrics {
    prometheus::Gauge* applied_offset;
    prometheus::Gauge* end_offset;
    prometheus::Gauge* lag;
    prometheus::Gauge* start_offset;
  };

  struct Halt {
    int64_t offset;
    std::shared_ptr<const schema::JsonSchema> schema;  // in force when it halted
  };

  void Run();
  // Assigns topics not yet assigned whose metadata can now be read. Commits first.
  void SetUpPendingTopics();
  // Commits, then hands the consumer every partition at its current position.
  void Reassign();
  void Handle(const SourceEvent& ev);
  // Applies the topic's on_invalid policy to a refused record. Returns false if the
  // partition halted (the record's offset is not consumed).
  bool HandleInvalid(const SourceEvent& ev, RejectReason reason,
                     const std::shared_ptr<const schema::JsonSchema>& schema);
  void HaltPartition(const SourceEvent& ev, const std::string& why,
                     std::shared_ptr<const schema::JsonSchema> schema);
  // Lifts halts whose topic has a new schema since.
  void RetryHalted();
  // Commits the batch, retrying until it succeeds or Stop() is called.
  void CommitWithRetry();
  Status Commit();
  void RefreshEndOffsets();
  // Empties the topic in the store and reads it again from the beginning.
  void RebuildTopic(size_t topic, const std::string& reason, const std::string& why);
  // A consumer error that may mean the topic was deleted: asks the broker.
  void CheckTopicExists(size_t topic);
  // Store size, free disk, and the commit of positions to Kafka.
  void ReportStore();
  void SetStoreFailure(const Status& st);
  PartitionMetrics& MetricsFor(size_t topic, int32_t partition);
  // Waits up to `d` unless stopping. Returns false if stopping.
  bool WaitFor(std::chrono::milliseconds d);

  const MaterializerOptions options_;
  store::Store* const store_;
  RecordSource* const source_;
  health::CatchUpTracker* const tracker_;

  // Metrics (families owned by the registry).
  prometheus::Family<prometheus::Counter>* consumed_family_;
  prometheus::Family<prometheus::Counter>* applied_family_;
  prometheus::Family<prometheus::Counter>* rejected_family_;
  prometheus::Family<prometheus::Counter>* errors_family_;
  prometheus::Family<prometheus::Gauge>* applied_offset_family_;
  prometheus::Family<prometheus::Gauge>* end_offset_family_;
  prometheus::Family<prometheus::Gauge>* lag_family_;
  prometheus::Family<prometheus::Gauge>* start_offset_family_;
  prometheus::Counter* commits_;
  prometheus::Gauge* revision_;
  std::vector<prometheus::Counter*> consumed_;
  std::vector<prometheus::Counter*> applied_;

  // Writer-thread state.
  std::thread thread_;
  std::set<size_t> pending_topics_;
  std::vector<Assignment> assignments_;
  std::map<std::pair<size_t, int32_t>, int64_t> positions_;  // next offset, by partition
  std::map<std::pair<size_t, int32_t>, PartitionMetrics> partition_metrics_;
  store::WriteBatch batch_;
  std::chrono::steady_clock::time_point batch_started_;
  std::chrono::steady_clock::time_point last_refresh_;
  std::vector<std::pair<std::chrono::steady_clock::time_point, int>> reject_log_budget_;
  std::map<std::pair<size_t, int32_t>, Halt> halted_;
  std::chrono::steady_clock::time_point last_halt_check_;
  prometheus::Family<prometheus::Gauge>* halted_family_;
  prometheus::Family<prometheus::Counter>* dead_letters_family_;
  prometheus::Family<prometheus::Counter>* rebuilds_family_;
  prometheus::Family<prometheus::Gauge>* write_failing_family_;
  prometheus::Gauge* map_size_;
  prometheus::Gauge* used_bytes_;
  prometheus::Gauge* disk_free_;
  prometheus::Counter* map_resizes_;
  uint64_t map_resizes_seen_ = 0;
  std::string store_failure_;  // reason of the failing commits, empty when none
  std::chrono::steady_clock::time_point last_store_report_;
  std::chrono::steady_clock::time_point last_offsets_commit_;
  std::map<size_t, std::chrono::steady_clock::time_point> last_topic_check_;

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;  // guards nothing but stop_cv_ waits
  std::condition_variable stop_cv_;

  mutable std::mutex counters_mu_;  // guards counters_
  std::vector<TopicCounters> counters_;
};

}  // namespace cachecar::kafka
