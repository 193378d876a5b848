// ApplyNotifier: lets a caller wait until a Kafka offset has been applied to the store, or
// the store has reached a revision, with a deadline. It is how Put keeps its read-your-
// writes promise and how reads honour min_revision.
//
// The materializer calls Published() (as a CommitObserver) after every commit (data first, then the news, so a
// satisfied waiter's data is already readable). Published() only records the new state and
// wakes the notifier's own thread, which runs the callbacks: no waiter, however slow its
// callback, can delay the materializer.
//
// Every callback runs exactly once, on the notifier's thread (or inline, when the answer
// is known at once), with:
//   OK                   and the store revision at which the wait was satisfied (for
//                        WaitForReady: the sidecar is ready);
//   DEADLINE_EXCEEDED    the deadline passed first;
//   FAILED_PRECONDITION  (PARTITION_HALTED) the partition was halted by on_invalid: fail;
//                        (REJECTED_ON_APPLY) the record at the offset was consumed but
//                        refused when read back (e.g. the schema changed after a Put was
//                        checked): the key kept its previous value;
//   UNAVAILABLE          (SHUTTING_DOWN) the notifier is shutting down;
//   RESOURCE_EXHAUSTED   (TOO_MANY_WAITING_CALLS) max_pending waits are pending already.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "common/status.h"
#include "metrics/stats.h"
#include "store/commit_observer.h"

namespace cachecar::store {

class ApplyNotifier final : public CommitObserver {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(const Status& status, uint64_t revision)>;

  // `revision`: the store's revision at start. With a registry, the number of pending
  // waits is exported as cachecar_rpc_waiting_calls.
  // `max_pending`: at most this many waits; WaitForRevision and WaitForReady past it answer
  // RESOURCE_EXHAUSTED (TOO_MANY_WAITING_CALLS) at once. WaitForOffset is not capped: a
  // Put's wait for its apply replaces its deadline timer, so it adds nothing.
  explicit ApplyNotifier(uint64_t revision, prometheus::Registry* registry = nullptr,
                         size_t max_pending = SIZE_MAX);
  ~ApplyNotifier() override;  // Shutdown()

  // Waits until everything below `offset` + 1 of the partition is applied (the record at
  // `offset` is readable). Returns an id for Cancel (0 if answered inline).
  uint64_t WaitForOffset(size_t topic, int32_t partition, int64_t offset,
                         Clock::time_point deadline, Callback callback);
  // Waits until the store revision is at least `revision`. UINT64_MAX makes a plain
  // timer (answered DEADLINE_EXCEEDED at the deadline, unless cancelled).
  uint64_t WaitForRevision(uint64_t revision, Clock::time_point deadline, Callback callback);
  // Waits until the sidecar is ready (SetReady). At the deadline the callback gets
  // DEADLINE_EXCEEDED with the reason it is not ready as the message.
  uint64_t WaitForReady(Clock::time_point deadline, Callback callback);
  // Drops a pending wait without calling it; no-op if it was answered already.
  void Cancel(uint64_t id);

  // Readiness, as the CatchUpTracker reports it (`reason`: why not, when not ready).
  void SetReady(bool ready, std::string reason);
  // Store commits fail with `status` (nothing is being applied), or succeed again (OK).
  void SetStoreFailure(Status status);
  // OK, or the status commits fail with: writes refuse at once rather than wait.
  Status StoreFailure() const;
  // The topic is being rebuilt: its partitions' applied offsets start over.
  void ForgetTopic(size_t topic);

  // Materializer: a commit made the store `revision` and moved these partitions' next
  // offsets. Also called at start with the stored positions.
  void Published(uint64_t revision, const std::map<PartitionKey, int64_t>& positions);
  // Materializer: the partition stopped applying (non-empty reason) or resumed (empty).
  void SetHalted(size_t topic, int32_t partition, std::string reason);

  // CommitObserver: the same, as the writer reports them.
  void OnCommit(const CommitInfo& commit) override;
  void OnStoreFailure(const Status& status) override { SetStoreFailure(status); }
  void OnPartitionHalted(size_t topic, int32_t partition, const std::string& reason) override {
    SetHalted(topic, partition, reason);
  }
  void OnTopicReset(size_t topic, const std::string&) override { ForgetTopic(topic); }

  // Fails every pending wait with UNAVAILABLE and stops the thread. Idempotent.
  void Shutdown();

  size_t pending() const;

 private:
  struct Waiter {
    bool by_revision = false;
    bool by_ready = false;
    PartitionKey partition;
    int64_t offset = 0;       // by offset: satisfied when next offset > offset
    uint64_t revision = 0;    // by revision
    Clock::time_point deadline;
    Callback callback;
  };
  using Ready = std::vector<std::pair<Callback, std::pair<Status, uint64_t>>>;
  // Registers `w` unless it can be answered now, or `capped` and max_pending_ are waiting.
  uint64_t Add(Waiter w, bool capped);

  // The answer for `w` now, if there is one. Needs mu_.
  bool Settle(const Waiter& w, Clock::time_point now, Ready* ready) const;
  void Run();

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  uint64_t revision_;
  std::map<PartitionKey, int64_t> applied_;  // next offset to apply
  std::map<PartitionKey, std::string> halted_;
  // Offsets refused when read back, by partition, with the reason: the last
  // kRememberedRejections of each (a Put's acknowledgement may arrive after its record
  // was read back, so the answer must wait for it).
  static constexpr size_t kRememberedRejections = 1024;
  std::map<PartitionKey, std::map<int64_t, std::string>> rejected_;
  bool ready_ = false;
  std::string not_ready_reason_ = "catching up";
  Status store_failure_;
  std::map<uint64_t, Waiter> waiters_;  // by id
  uint64_t next_id_ = 1;
  bool changed_ = false;
  bool stopping_ = false;
  std::thread thread_;
  prometheus::Gauge* waiting_ = nullptr;  // null without a registry
  const size_t max_pending_;
};

}  // namespace cachecar::store
