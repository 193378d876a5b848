#include "store/apply_notifier.h"

namespace cachecar::store {

#define CACHECAR_NOTIFIER_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY,             \
                                  HISTOGRAM_FAMILY)                                         \
  GAUGE(waiting, "cachecar_rpc_waiting_calls",                                              \
        "Calls waiting for their record to be applied, a revision or readiness (Puts, "     \
        "reads with min_revision, WaitReady).")
CACHECAR_STATS_STRUCT(NotifierStats, CACHECAR_NOTIFIER_METRICS);

ApplyNotifier::ApplyNotifier(uint64_t revision, prometheus::Registry* registry,
                             size_t max_pending)
    : revision_(revision), max_pending_(max_pending) {
  if (registry != nullptr) waiting_ = NotifierStats::Register(*registry).waiting;
  thread_ = std::thread([this] { Run(); });
}

ApplyNotifier::~ApplyNotifier() { Shutdown(); }

size_t ApplyNotifier::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

bool ApplyNotifier::Settle(const Waiter& w, Clock::time_point now, Ready* ready) const {
  if (stopping_) {
    ready->push_back({w.callback, {Unavailable("cachecar is shutting down", "SHUTTING_DOWN"), 0}});
    return true;
  }
  if (w.by_ready) {
    if (ready_) {
      ready->push_back({w.callback, {Status::Ok(), revision_}});
      return true;
    }
    if (now >= w.deadline) {
      ready->push_back(
          {w.callback, {Status(Code::kDeadlineExceeded, not_ready_reason_), revision_}});
      return true;
    }
    return false;
  }
  if (w.by_revision) {
    if (revision_ >= w.revision) {
      ready->push_back({w.callback, {Status::Ok(), revision_}});
      return true;
    }
  } else {
    auto it = applied_.find(w.partition);
    if (it != applied_.end() && it->second > w.offset) {
      auto r = rejected_.find(w.partition);
      if (r != rejected_.end()) {
        if (auto o = r->second.find(w.offset); o != r->second.end()) {
          ready->push_back(
              {w.callback,
               {Status(Code::kFailedPrecondition,
                       "the record was written (partition " + std::to_string(w.partition.second) +
                           ", offset " + std::to_string(w.offset) +
                           ") but refused when read back (" + o->second +
                           "; e.g. the topic's schema changed in between): the key keeps "
                           "its previous value",
                       "REJECTED_ON_APPLY"),
                revision_}});
          return true;
        }
      }
      ready->push_back({w.callback, {Status::Ok(), revision_}});
      return true;
    }
    auto h = halted_.find(w.partition);
    if (h != halted_.end()) {
      ready->push_back(
          {w.callback,
           {Status(Code::kFailedPrecondition, "the partition is halted: " + h->second,
                   "PARTITION_HALTED"),
            revision_}});
      return true;
    }
  }
  if (now >= w.deadline) {
    ready->push_back({w.callback,
                      {Status(Code::kDeadlineExceeded, "not applied before the deadline"),
                       revision_}});
    return true;
  }
  return false;
}

uint64_t ApplyNotifier::Add(Waiter w, bool capped) {
  Ready ready;
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Settle(w, Clock::now(), &ready)) {
      // answered at once
    } else if (capped && waiters_.size() >= max_pending_) {
      ready.push_back({w.callback,
                       {Status(Code::kResourceExhausted,
                               std::to_string(waiters_.size()) +
                                   " calls are already waiting (grpc.max_waiting_calls); "
                                   "retry later",
                               "TOO_MANY_WAITING_CALLS"),
                        revision_}});
    } else {
      id = next_id_++;
      waiters_.emplace(id, std::move(w));
      if (waiting_ != nullptr) waiting_->Set(static_cast<double>(waiters_.size()));
      changed_ = true;  // the thread may need an earlier wake-up for this deadline
    }
  }
  if (id != 0) cv_.notify_one();
  for (auto& [cb, result] : ready) cb(result.first, result.second);
  return id;
}

uint64_t ApplyNotifier::WaitForOffset(size_t topic, int32_t partition, int64_t offset,
                                      Clock::time_point deadline, Callback callback) {
  Waiter w;
  w.partition = {topic, partition};
  w.offset = offset;
  w.deadline = deadline;
  w.callback = std::move(callback);
  return Add(std::move(w), /*capped=*/false);
}

uint64_t ApplyNotifier::WaitForRevision(uint64_t revision, Clock::time_point deadline,
                                        Callback callback) {
  Waiter w;
  w.by_revision = true;
  w.revision = revision;
  w.deadline = deadline;
  w.callback = std::move(callback);
  return Add(std::move(w), /*capped=*/true);
}

uint64_t ApplyNotifier::WaitForReady(Clock::time_point deadline, Callback callback) {
  Waiter w;
  w.by_ready = true;
  w.deadline = deadline;
  w.callback = std::move(callback);
  return Add(std::move(w), /*capped=*/true);
}

void ApplyNotifier::SetReady(bool ready, std::string reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = ready;
    not_ready_reason_ = std::move(reason);
    changed_ = true;
  }
  cv_.notify_one();
}

void ApplyNotifier::SetStoreFailure(Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  store_failure_ = std::move(status);
}

Status ApplyNotifier::StoreFailure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return store_failure_;
}

void ApplyNotifier::ForgetTopic(size_t topic) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = applied_.begin(); it != applied_.end();) {
    it = it->first.first == topic ? applied_.erase(it) : std::next(it);
  }
  for (auto it = rejected_.begin(); it != rejected_.end();) {
    it = it->first.first == topic ? rejected_.erase(it) : std::next(it);
  }
}

void ApplyNotifier::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  waiters_.erase(id);
  if (waiting_ != nullptr) waiting_->Set(static_cast<double>(waiters_.size()));
}

void ApplyNotifier::OnCommit(const CommitInfo& commit) {
  static const std::map<PartitionKey, int64_t> kNone;
  if (commit.rejected != nullptr && !commit.rejected->empty()) {
    std::lock_guard<std::mutex> lock(mu_);  // before the positions that settle waiters
    for (const RejectedOffset& r : *commit.rejected) {
      auto& offsets = rejected_[r.partition];
      offsets[r.offset] = r.reason;
      if (offsets.size() > kRememberedRejections) offsets.erase(offsets.begin());
    }
  }
  Published(commit.revision, commit.positions != nullptr ? *commit.positions : kNone);
}

void ApplyNotifier::Published(uint64_t revision, const std::map<PartitionKey, int64_t>& positions) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    revision_ = std::max(revision_, revision);
    for (const auto& [key, next] : positions) {
      int64_t& a = applied_[key];
      a = std::max(a, next);
    }
    if (waiters_.empty()) return;
    changed_ = true;
  }
  cv_.notify_one();
}

void ApplyNotifier::SetHalted(size_t topic, int32_t partition, std::string reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reason.empty()) {
      halted_.erase({topic, partition});
    } else {
      halted_[{topic, partition}] = std::move(reason);
    }
    changed_ = true;
  }
  cv_.notify_one();
}

void ApplyNotifier::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ApplyNotifier::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    Clock::time_point next = Clock::time_point::max();
    for (const auto& [id, w] : waiters_) next = std::min(next, w.deadline);
    cv_.wait_until(lock, next, [&] { return changed_ || stopping_; });
    changed_ = false;
    Ready ready;
    auto now = Clock::now();
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      it = Settle(it->second, now, &ready) ? waiters_.erase(it) : std::next(it);
    }
    if (waiting_ != nullptr) waiting_->Set(static_cast<double>(waiters_.size()));
    bool stop = stopping_;
    lock.unlock();
    for (auto& [cb, result] : ready) cb(result.first, result.second);
    lock.lock();
    if (stop && waiters_.empty()) return;
  }
}

}  // namespace cachecar::store
