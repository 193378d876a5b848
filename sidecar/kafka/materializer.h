// Materializer: the one writer. Its thread owns the RecordSource and is the only thread
// that writes the Store.
//
// For every configured topic it assigns every partition (a topic that does not exist yet
// is retried; the sidecar stays not ready meanwhile), starting at the position stored in
// the store, or the beginning. Records are checked (record_check.h), turned into puts
// and deletes, and committed in batches: a batch commits when it holds batch_max_records
// records or batch_max_bytes bytes, when its first record is batch_max_delay old, or at
// once when the source has nothing more to give. Each commit writes the partitions' next
// offsets with the data, then tells its CommitObservers (store/commit_observer.h), in this
// order: the CatchUpTracker (readiness), then MaterializerOptions::observers as given (the
// server passes the ApplyNotifier, which answers waiting Puts and min_revision reads, then
// Watch's hub). So by the time a Put is answered its record is readable and counted.
//
// A failed commit (disk full, or the map at its maximum) is retried with the same batch;
// consumption waits, the observers are told why (the sidecar is not ready, Puts fail at
// once), and all is well again after the first commit that succeeds.
//
// A partition whose stored position fell out of the log (retention deleted records not
// yet applied, or the topic was recreated) and a topic deleted from Kafka make the topic
// rebuilt: its keys are deleted (watchers see the deletes), its positions forgotten, the
// topic is not ready, and it is read again from the beginning (once it exists again).
//
// Applied positions are also committed to Kafka's group offsets every
// commit_interval (offset_reporter.h).
//
// A record that cannot be served (record_check.h: bad key, not JSON, or against the
// topic's schema; the schema is read from the SchemaSet for every record, so a reloaded
// schema applies from the next record on) is never applied, and the topic's on_invalid
// policy decides the rest (invalid_records.h). A halted partition applies nothing more:
// it is paused, the observers are told, and it resumes from that very offset when the
// topic's schema is replaced (a reload) or the process restarts — or, when it halted
// because the broker did not take a dead letter, past the record once a retry succeeds.
//
// A topic with a transform (config TopicConfig::transform) has its records queued in
// order and run through the transform worker (transform/sandbox.h) in batches, before
// the commit that carries them; each is then checked and applied as above, with the
// filter's value (null deletes, nothing skips). A topic with apply: merge-patch merges
// each value (RFC 7396) onto the key's current value: the batch's latest, else the
// store's. Both run the same way in catch-up and live; a restart resumes from the
// committed positions, so no record is applied twice.
//
// Files: materializer.cc (the loop, batching, commits, halts), topic_lifecycle.cc (topic
// setup, added partitions, deleted topics, rebuilds), partition_set.cc (what is assigned
// and how far), invalid_records.cc (on_invalid and halts), offset_reporter.cc
// (group offsets), materializer_stats.h (every metric).
//
// Threads: Start, Stop and Counters may be called from any thread; everything else runs
// on the materializer's own thread.
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "health/catch_up.h"
#include "kafka/invalid_records.h"
#include "kafka/materializer_stats.h"
#include "kafka/offset_reporter.h"
#include "kafka/partition_set.h"
#include "kafka/producer.h"
#include "kafka/record_check.h"
#include "registry/schema_cache.h"
#include "kafka/record_source.h"
#include "kafka/rejected_log.h"
#include "kafka/topic_counters.h"
#include "schema/schema_set.h"
#include "store/commit_observer.h"
#include "store/snapshot.h"
#include "store/store.h"
#include "transform/jq_filter.h"
#include "transform/sandbox.h"

namespace cachecar::kafka {

// The jq filters of the topics that have one, in topic order: what the transform Sandbox
// is started with (filter i is the i-th topic with a transform).
std::vector<std::string> TransformFilters(const std::vector<config::TopicConfig>& topics);

// What a topic's stored values depend on besides its records: its transform, apply mode
// and views (`views`: their entries, config::TopicConfig::views). Kept in the store; a
// change rebuilds the topic, and its views with it, at start.
std::string TopicDefinition(const config::TopicConfig& topic,
                            const std::vector<const config::TopicConfig*>& views);

// Most view keys one entry may have in one view: an expression that gives more leaves the
// entry out of the view (too_many_keys). And most bytes of one entry's keys in all.
inline constexpr size_t kMaxViewKeysPerEntry = 1000;
inline constexpr size_t kMaxViewKeysBytes = 4u << 20;

// The filters the view keys worker runs: each view's key expression (config order),
// wrapped to give one JSON array of string keys.
std::vector<std::string> ViewKeyFilters(const config::Config& config);

// Starts the worker that computes view keys (null when there is no view). A key that does
// not compile is INVALID_ARGUMENT naming its place, as StartTransforms.
Result<std::unique_ptr<transform::Sandbox>> StartViewKeys(
    const config::Config& config, prometheus::Registry* registry,
    std::string worker_path = "/proc/self/exe");

// Starts the transform worker with the config's filters (transforms.*). Null when no
// topic has a transform. A filter that does not compile is INVALID_ARGUMENT naming its
// place: "cachecar.yaml:14:16: topics[2].transform: line 1, column 4: expected ...".
Result<std::unique_ptr<transform::Sandbox>> StartTransforms(
    const config::Config& config, prometheus::Registry* registry,
    std::string worker_path = "/proc/self/exe");

struct MaterializerOptions {
  std::vector<config::TopicConfig> topics;  // same order as the store's and tracker's
  // The views of those topics (config::Config::topics after the Kafka ones): view i is
  // the store's topic topics.size() + i.
  std::vector<config::TopicConfig> views;
  uint32_t batch_max_records = 10000;
  uint64_t batch_max_bytes = 16ull << 20;
  std::chrono::milliseconds batch_max_delay{50};
  // How long a metadata or offsets request may take, and how long to wait before asking
  // again for a topic that is missing or a broker that did not answer.
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds retry_backoff{1000};
  // Commits in a row that could not grow the map because readers held it (each waits a
  // second for them) before the writer reports itself stalled: not ready, and
  // cachecar_store_write_failing{reason="STORE_RESIZE_WAITING"}.
  uint32_t resize_waits_before_failure = 5;
  // How often assigned topics are asked for their partition count, so partitions added
  // to a topic (kafka-topics --alter) are read. Each check is one metadata request.
  std::chrono::milliseconds metadata_refresh{10000};
  // Longest a Poll blocks when there is nothing to commit (bounds Stop latency).
  std::chrono::milliseconds idle_poll{100};
  // A restart while Kafka cannot be reached (config::ReadinessConfig): after `outage_grace`
  // with no answer, serve_stored serves each topic whose store was caught up before
  // (CatchUpTracker::ServeStored); wait does nothing more.
  config::BrokerOutageAtStart outage_policy = config::BrokerOutageAtStart::kServeStored;
  std::chrono::milliseconds outage_grace{10000};
  // How long to wait for the broker to acknowledge one dead letter; past it, the
  // partition halts (the record must not be skipped unrecorded).
  std::chrono::milliseconds dead_letter_timeout{30000};

  // Optional collaborators, none owned; each must outlive the Materializer.
  const schema::SchemaSet* schemas = nullptr;  // null: no topic has a schema
  // Each topic's entry_schema (schema::EntrySchemasOf); null: no topic has one.
  const schema::SchemaSet* entry_schemas = nullptr;
  RecordSink* dead_letters = nullptr;          // required if a topic dead-letters
  RejectedLog* rejected = nullptr;
  // Runs the topics' transforms (TransformFilters order); required if a topic has one.
  transform::Sandbox* transforms = nullptr;
  // Computes the views' keys (StartViewKeys); required if there is a view.
  transform::Sandbox* view_keys = nullptr;
  // The schemas of value_format: registry topics; required if a topic has that format.
  registry::SchemaCache* registry = nullptr;
  // Told of every commit after the tracker, in this order (see above).
  std::vector<store::CommitObserver*> observers;
  // How often applied positions are committed to Kafka (RecordSource::CommitOffsets);
  // zero never. `group_id` names the group in log lines.
  std::chrono::milliseconds commit_interval{5000};
  std::string group_id;
};

class Materializer {
 public:
  // None of the pointers is owned; all must outlive the Materializer.
  Materializer(MaterializerOptions options, store::Store* store, RecordSource* source,
               health::CatchUpTracker* tracker, prometheus::Registry* registry);
  ~Materializer();

  // Starts the thread.
  void Start();
  // Commits what has been consumed and stops the thread. Idempotent. Any thread but the
  // materializer's own.
  void Stop();

  // Per-topic totals since start. Any thread.
  std::vector<TopicCounters> Counters() const;

  // How long since the writer last went round its loop (or a retry of a failing commit):
  // it reports itself alive even while idle, so a long time means it is wedged. Zero
  // before Start. Any thread.
  std::chrono::steady_clock::duration SinceProgress() const;

 private:
  struct PartitionMetrics {
    prometheus::Gauge* applied_offset;
    prometheus::Gauge* end_offset;
    prometheus::Gauge* lag;
    prometheus::Gauge* start_offset;
    prometheus::Gauge* lag_seconds;
    int64_t last_applied_timestamp_ms = -1;  // of the last record applied; -1: none yet
  };

  void Run();
  // Assigns topics not yet assigned whose metadata can now be read. Commits first.
  void SetUpPendingTopics();
  // Kafka did not answer for the never-assigned topic `t`: past the grace, applies the
  // outage policy (once per topic).
  void OnUnreachableAtStart(size_t t, const Status& why);
  // Adds to the batch the topics caught up now (store::WriteBatch::caught_up_ms), and
  // ends "serving stored state" for those caught up again.
  void NoteCaughtUp();
  // Makes a commit that records the caught-up time when a topic has newly caught up or
  // the last record is old (a quiet topic commits nothing else).
  void RecordCaughtUpIfDue();
  // Compares the topic's definition (TopicDefinition) with the one its stored values were
  // made under; rebuilds the topic when they differ. False: the store could not be read
  // (retry later).
  bool CheckDefinition(size_t topic);
  // Asks the broker for the partition count of every assigned topic; assigns partitions
  // added since, from their beginning.
  void RefreshPartitions();
  // Commits, then hands the consumer every partition at its current position.
  void Reassign();
  void Handle(const SourceEvent& ev);
  // A record of a value_format: registry topic, decoded with its schema from the registry
  // (a partition waits, halted, while the registry cannot say what its schema id is).
  struct Decoded {
    std::string_view payload;                         // the value to check and store
    std::string json;                                 // it, when decoded from Avro
    std::shared_ptr<const schema::JsonSchema> schema;  // the payload's, by its schema id
    std::string detail;                               // what is wrong, if it is rejected
    std::optional<int32_t> schema_id;                 // the record's, once read
  };
  void HandleRegistryRecord(const SourceEvent& ev);
  // A data record once its key is what the store keeps (decoded, for key_format: registry).
  void HandleDecodedKey(const SourceEvent& ev);
  // key_format: registry: the record's key decoded into `*key` (compact JSON, members
  // sorted). False if the record was rejected or its partition halted for it (handled).
  bool DecodeRegistryKey(const SourceEvent& ev, std::string* key);
  // The registry schema of a record's key or value, by its wire-format id; null if the
  // record was rejected (unknown id) or its partition halted (the registry is away).
  std::shared_ptr<const registry::ResolvedSchema> RegistrySchemaFor(const SourceEvent& ev,
                                                                    int32_t id,
                                                                    const char* part);
  // Lifts the halts of partitions waiting on the schema registry once it answers.
  void RetryRegistryWaits(std::vector<store::PartitionKey>* lifted);
  // A data record, after its transform when its topic has one (`tr`, null otherwise), or
  // decoded (`decoded`, registry topics; null otherwise).
  void HandleRecord(const SourceEvent& ev, RejectReason reason, const transform::Result* tr,
                    const Decoded* decoded = nullptr);
  // Runs every queued and in-flight record of transformed topics through the sandbox
  // and handles them, in order. Called before anything that needs them all applied.
  void FlushTransforms();
  // Collects the batch in flight (if any), submits the queued records, then handles the
  // collected batch while the worker filters the new one.
  void AdvanceTransforms();
  struct TransformBatch;
  // The batch's results, retrying while no worker can be started; false when stopping.
  bool CollectTransforms(const TransformBatch& batch, std::vector<transform::Result>* results);
  void HandleTransformed(TransformBatch& batch, const std::vector<transform::Result>& results);
  // merge-patch: `patch` merged onto the key's current value; nullopt when the result
  // is null (the key is deleted).
  std::optional<std::string> MergeOntoCurrent(size_t topic, std::string_view key,
                                              std::string_view patch);
  void HaltPartition(const SourceEvent& ev, InvalidRecords::Halting halting,
                     std::shared_ptr<const schema::JsonSchema> schema);
  // Lifts halts whose topic has a new schema since, and those whose dead letter the broker
  // takes now (they move past their record).
  void RetryHalted();
  // Commits the batch, retrying until it succeeds or Stop() is called; first applies the
  // records waiting for their transform unless told not to.
  void CommitWithRetry(bool flush_transforms = true);
  Status Commit();
  // Fills in the view keys of the batch's puts not done yet (one round trip to the view
  // keys worker). UNAVAILABLE when no worker can be started: nothing is committed.
  Status ComputeViewKeys();
  void RefreshEndOffsets();
  // Empties the topic in the store and reads it again from the beginning.
  void RebuildTopic(size_t topic, const std::string& reason, const std::string& why);
  // retain_beyond_log: when `position` is below the partition's log start, moves the
  // partition to the log start keeping the topic's data; false (nothing done) otherwise.
  bool KeepBeyondLog(const store::PartitionKey& key, int64_t position);
  // Deletes a resetting topic's remaining keys, a bounded transaction per chunk, retrying
  // failures; returns early only when stopping.
  void FinishReset(size_t topic);
  // A consumer error that may mean the topic was deleted: asks the broker.
  void CheckTopicExists(size_t topic);
  void SetStoreFailure(const Status& st);
  // Tells every observer (the tracker first).
  template <typename Fn>
  void ForEachObserver(Fn fn) {
    fn(static_cast<store::CommitObserver*>(tracker_));
    for (store::CommitObserver* o : options_.observers) fn(o);
  }
  PartitionMetrics& MetricsFor(size_t topic, int32_t partition);
  // Waits up to `d` unless stopping. Returns false if stopping.
  bool WaitFor(std::chrono::milliseconds d);

  const MaterializerOptions options_;
  store::Store* const store_;
  RecordSource* const source_;
  health::CatchUpTracker* const tracker_;
  MaterializerStats stats_;
  std::vector<prometheus::Counter*> consumed_;  // by topic
  std::vector<prometheus::Counter*> applied_;
  prometheus::Histogram* commit_duration_;
  prometheus::Histogram* batch_delay_;

  // Writer-thread state.
  std::thread thread_;
  // Records of transformed topics waiting for FlushTransforms, with their own copies.
  struct Queued {
    SourceEvent ev;  // its views point into the strings below once flushed
    std::string key, value, headers_json;
  };
  std::vector<Queued> queued_;
  size_t queued_bytes_ = 0;
  // Records sent to the worker, with their checks, until their results are applied. On
  // the heap: the inputs' views point into `records`, which must never move.
  struct TransformBatch {
    std::vector<Queued> records;
    std::vector<RejectReason> reasons;       // CheckRecord's verdict per record
    std::vector<transform::Input> inputs;    // the records that go through the filter
    std::vector<size_t> input_of;            // record -> its input, SIZE_MAX none
    size_t max_output = 0;
    std::chrono::steady_clock::time_point submitted;
  };
  std::unique_ptr<TransformBatch> in_flight_;
  // Set when stopping while no worker could be started: nothing more of a transformed
  // topic is applied by this process.
  bool transforms_abandoned_ = false;
  std::vector<int> filter_of_;  // by topic: its filter in the sandbox, -1 none
  int filter_count_ = 0;
  prometheus::Histogram* transform_duration_ = nullptr;
  // merge-patch: (topic, key) -> index in batch_.mutations of the key's latest mutation;
  // and a snapshot of the store for keys the batch has not touched. Both end at commit.
  std::unordered_map<std::string, size_t> batch_latest_;  // key: LatestKey(topic, key)
  std::optional<store::Snapshot> merge_snapshot_;
  // Views: by topic, the indices into options_.views of its views; and how many of the
  // batch's mutations have their view keys.
  std::vector<std::vector<size_t>> views_of_;
  size_t view_keys_done_ = 0;
  // By view: its key as an in-process projection ({k: .a.b}) when the key is a plain path
  // (.email, .user.id), else null. A projection cannot loop or recurse: it runs on this
  // thread, and only what it cannot decide goes to the worker.
  std::vector<std::unique_ptr<transform::JqFilter>> view_paths_;
  prometheus::Histogram* view_keys_duration_ = nullptr;
  // By view: entries left out, by reason (error, budget_exceeded, crashed, too_many_keys,
  // too_many_entries).
  std::vector<std::map<std::string, prometheus::Counter*>> view_key_errors_;
  PartitionSet partitions_;
  InvalidRecords invalid_;
  OffsetReporter offsets_;
  std::map<store::PartitionKey, PartitionMetrics> partition_metrics_;
  store::WriteBatch batch_;
  std::vector<store::RejectedOffset> rejected_;  // refused records the batch moves past
  std::chrono::steady_clock::time_point batch_started_;
  std::chrono::steady_clock::time_point last_refresh_;
  std::chrono::steady_clock::time_point last_metadata_refresh_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_halt_check_;
  std::string store_failure_;  // reason of the failing commits, empty when none
  uint32_t resize_waits_ = 0;  // commits in a row that could not grow the map
  std::map<size_t, std::chrono::steady_clock::time_point> last_topic_check_;
  std::chrono::steady_clock::time_point run_started_;
  std::set<size_t> ever_assigned_;    // topics assigned since this process started
  std::set<size_t> outage_decided_;   // topics the outage policy was applied to
  std::set<size_t> serving_stored_;   // topics serving their stored state (stale)
  std::set<size_t> caught_up_recorded_;  // topics whose caught-up time has been recorded
  std::chrono::steady_clock::time_point last_caught_up_record_;

  // Writer: steady_clock time of the last loop iteration (0 before Start).
  std::atomic<int64_t> heartbeat_{0};
  void Beat() {
    heartbeat_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                     std::memory_order_relaxed);
  }

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;  // guards nothing but stop_cv_ waits
  std::condition_variable stop_cv_;

  mutable std::mutex counters_mu_;  // guards counters_
  std::vector<TopicCounters> counters_;
};

}  // namespace cachecar::kafka
