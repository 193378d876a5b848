// CatchUpTracker: how far each partition has been applied, against the end offset read at
// start, and so whether the sidecar is ready to serve.
//
// A partition is ready once its applied position (the next offset to apply, which also
// moves past transaction markers and aborted records) reaches the end offset read when
// it was assigned. Positions are compared, never the offset of the last record, so empty,
// compacted and transactional topics become ready. A topic is ready when it has been
// assigned and all its partitions are; the sidecar when every required topic is (an
// optional one is named in the reasons but never takes the pod out of service). Once
// caught up, a partition stays caught up (the cache then only gets fresher). A topic may
// also be served from its stored state while Kafka is unreachable at start (ServeStored):
// ready, and stale until it has caught up again. A topic is not ready again only while a
// partition is halted (a record refused under on_invalid: fail, or a dead letter the
// broker does not take), while it is rebuilt (SetRebuilding) until it has caught up
// again, and, when a lag policy is set, while a partition lags more than max_records for
// longer than max_for (evaluated on Tick). Failing store commits (SetStoreFailure) make
// the sidecar not ready until one succeeds.
//
// Threads: the materializer writes; any thread reads. Listeners are called on the
// writer's thread, with no lock held, in the order transitions happen.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/commit_observer.h"

namespace cachecar::health {

struct PartitionProgress {
  int32_t partition = 0;
  int64_t applied = -1;          // next offset to apply; -1 before anything is known
  int64_t start_end_offset = 0;  // end offset read at assignment
  int64_t end_offset = -1;       // latest end offset seen, -1 if none
  bool ready = false;     // caught up once (stays true)
  bool halted = false;    // on_invalid: fail stopped it; the sidecar is not ready
  std::string halt_reason;
  bool lagging = false;   // over the lag policy's bound for too long
  // Added to the topic while it was served (AddPartitions): until caught up it makes the
  // topic not ready, but does not stop reads of what the other partitions hold.
  bool added_late = false;
  std::optional<std::chrono::steady_clock::time_point> over_since;  // over the bound since
};

// A topic served from the state its store held at start, Kafka being unreachable.
struct Staleness {
  int64_t caught_up_ms = 0;  // when that state was last caught up with Kafka (Unix ms)
  std::string reason;        // why Kafka is not being read ("kafka unreachable since start")
};

struct TopicProgress {
  std::string topic;
  bool assigned = false;
  bool ready = false;
  bool required = true;  // counts in the sidecar's readiness (topics[].readiness)
  std::vector<PartitionProgress> partitions;
  std::optional<Staleness> stale;  // set while serving the stored state (ServeStored)
  std::string not_ready_reason;    // in Progress()'s copies: TopicNotReadyReason
};

// Readiness lost by lag (see above). max_records 0: never.
struct LagPolicy {
  int64_t max_records = 0;
  std::chrono::milliseconds max_for{30000};
};

class CatchUpTracker final : public store::CommitObserver {
 public:
  // `topics` in configuration order; indices below refer to it. The `optional` ones do not
  // count in Ready() (topics[].readiness: optional).
  explicit CatchUpTracker(std::vector<std::string> topics, LagPolicy lag = {},
                          const std::set<size_t>& optional = {});

  // nullopt topic: the sidecar as a whole.
  using Listener = std::function<void(std::optional<size_t> topic, bool ready)>;
  // Registers a listener. Any thread, any time: it hears the transitions that happen
  // after it was added.
  void AddListener(Listener listener);

  // The topic's partitions are assigned; `applied` and `start_end_offset` per partition.
  void SetAssigned(size_t topic, std::vector<PartitionProgress> partitions);
  // Partitions added to an assigned topic (kafka-topics --alter): read from their
  // beginning, the topic is not ready until they have caught up too.
  void AddPartitions(size_t topic, std::vector<PartitionProgress> partitions);
  // A partition's applied position moved (after a commit).
  void SetApplied(size_t topic, int32_t partition, int64_t applied);
  // A fresher end offset was seen (for lag only; does not affect readiness).
  void SetEndOffset(size_t topic, int32_t partition, int64_t end_offset);
  // The partition stopped applying (`reason` says where and why), or resumed (empty).
  void SetHalted(size_t topic, int32_t partition, std::string reason);
  // Why a topic is not assigned yet ("topic x does not exist in Kafka (yet)"), for the
  // not-ready reason; SetAssigned clears it.
  void SetWaiting(size_t topic, std::string reason);
  // Kafka cannot be reached at start and the store holds a state of the topic that was
  // caught up at `caught_up_ms`: serve it (ready, servable), stale, with `partitions` at
  // their stored positions. Ignored once the topic is assigned. When SetAssigned follows
  // (Kafka answers), the topic stays ready while it catches up and is stale until every
  // partition has reached the end offset read then.
  void ServeStored(size_t topic, std::vector<PartitionProgress> partitions, int64_t caught_up_ms,
                   std::string reason);
  // The topic is emptied and read again: not ready until SetAssigned and caught up.
  void SetRebuilding(size_t topic, std::string reason);
  // Store commits fail (`reason` says why), or succeed again (empty).
  void SetStoreFailure(std::string reason);
  // Applies the lag policy at time `now` (the writer calls it periodically).
  void Tick(std::chrono::steady_clock::time_point now);

  // CommitObserver: the writer's news, as the setters above.
  void OnCommit(const store::CommitInfo& commit) override;
  void OnStoreFailure(const Status& status) override;
  void OnPartitionHalted(size_t topic, int32_t partition, const std::string& reason) override {
    SetHalted(topic, partition, reason);
  }
  void OnTopicReset(size_t topic, const std::string& reason) override {
    SetRebuilding(topic, reason);
  }

  bool Ready() const;
  // Whether reads of the topic may be served: it has caught up and is not halted or being
  // rebuilt. Unlike TopicReady, lag and failing store commits do not count: the data is
  // complete, only less fresh, and refusing reads would turn slowness into an outage.
  bool TopicServable(size_t topic) const;
  // As TopicServable, and sets `stale` to the topic's TopicStaleness, under one lock (the
  // read path asks both for every call).
  bool TopicServable(size_t topic, std::optional<Staleness>* stale) const;
  bool Servable() const;  // every topic
  // Empty when ready; otherwise why not, for people: failing store commits, else the
  // TopicNotReadyReason of each required topic that is not ready, joined by "; " (at most
  // four, then "and N more topics").
  std::string NotReadyReason() const;
  // Why the topic is not ready (a halt, a rebuild, missing from Kafka, lag, catching up
  // with the records to go); empty when it is.
  std::string TopicNotReadyReason(size_t topic) const;
  // Set while the topic serves its stored state (ServeStored).
  std::optional<Staleness> TopicStaleness(size_t topic) const;
  bool TopicReady(size_t topic) const;
  // A copy of every topic's progress.
  std::vector<TopicProgress> Progress() const;

  // Blocks until ready or the deadline; returns Ready().
  bool WaitReady(std::chrono::steady_clock::time_point deadline) const;

 private:
  // Recomputes readiness of `topic` and the whole; appends transitions. Needs mu_.
  void Recompute(size_t topic, std::vector<std::pair<std::optional<size_t>, bool>>* changes);
  void Notify(const std::vector<std::pair<std::optional<size_t>, bool>>& changes);
  std::string TopicReasonLocked(size_t topic) const;  // needs mu_

  std::mutex listeners_mu_;  // guards listeners_ (never held while calling one)
  std::vector<std::shared_ptr<const Listener>> listeners_;
  mutable std::mutex mu_;            // guards topics_, ready_
  mutable std::condition_variable ready_cv_;
  std::vector<TopicProgress> topics_;
  bool ready_ = false;
  const LagPolicy lag_;
  std::vector<std::string> rebuild_reasons_;  // per topic; non-empty while rebuilding
  std::vector<std::string> waiting_reasons_;  // per topic; why not assigned yet
  std::string store_failure_;
};

}  // namespace cachecar::health
