#include "health/catch_up.h"

#include <algorithm>

namespace cachecar::health {

namespace {

// Every partition has reached the end offset read when it was assigned.
bool CaughtUp(const TopicProgress& t) {
  for (const auto& p : t.partitions) {
    if (p.applied < p.start_end_offset) return false;
  }
  return true;
}

}  // namespace

CatchUpTracker::CatchUpTracker(std::vector<std::string> topics, LagPolicy lag,
                               const std::set<size_t>& optional)
    : lag_(lag) {
  for (size_t i = 0; i < topics.size(); ++i) {
    TopicProgress tp;
    tp.topic = std::move(topics[i]);
    tp.required = optional.count(i) == 0;
    topics_.push_back(std::move(tp));
  }
  rebuild_reasons_.resize(topics_.size());
  waiting_reasons_.resize(topics_.size());
  // Nothing required to wait for: ready now (as NotReadyReason already says).
  ready_ = std::none_of(topics_.begin(), topics_.end(),
                        [](const TopicProgress& tp) { return tp.required; });
}

void CatchUpTracker::AddListener(Listener listener) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.push_back(std::make_shared<const Listener>(std::move(listener)));
}

void CatchUpTracker::SetAssigned(size_t topic, std::vector<PartitionProgress> partitions) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TopicProgress& t = topics_.at(topic);
    t.assigned = true;
    t.partitions = std::move(partitions);
    rebuild_reasons_[topic].clear();
    waiting_reasons_[topic].clear();
    // A topic served from its stored state stays ready: that state was caught up once.
    for (auto& p : t.partitions) {
      p.ready = p.ready || t.stale.has_value() || p.applied >= p.start_end_offset;
    }
    if (t.stale && CaughtUp(t)) t.stale.reset();
    Recompute(topic, &changes);
  }
  Notify(changes);
}

void CatchUpTracker::AddPartitions(size_t topic, std::vector<PartitionProgress> partitions) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TopicProgress& t = topics_.at(topic);
    for (auto& p : partitions) {
      p.ready = p.applied >= p.start_end_offset;
      p.added_late = true;
      t.partitions.push_back(std::move(p));
    }
    Recompute(topic, &changes);
  }
  Notify(changes);
}

void CatchUpTracker::SetApplied(size_t topic, int32_t partition, int64_t applied) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TopicProgress& t = topics_.at(topic);
    for (auto& p : t.partitions) {
      if (p.partition != partition) continue;
      p.applied = applied;
      if (!p.ready && applied >= p.start_end_offset) {
        p.ready = true;
        Recompute(topic, &changes);
      }
      break;
    }
    if (t.stale && t.assigned && CaughtUp(t)) t.stale.reset();
  }
  Notify(changes);
}

void CatchUpTracker::OnCommit(const store::CommitInfo& commit) {
  if (commit.positions == nullptr) return;
  for (const auto& [tp, next] : *commit.positions) SetApplied(tp.first, tp.second, next);
}

void CatchUpTracker::OnStoreFailure(const Status& status) {
  SetStoreFailure(status.ok() ? "" : "store commits fail: " + status.message());
}

void CatchUpTracker::SetEndOffset(size_t topic, int32_t partition, int64_t end_offset) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& p : topics_.at(topic).partitions) {
    if (p.partition == partition) p.end_offset = end_offset;
  }
}

void CatchUpTracker::SetHalted(size_t topic, int32_t partition, std::string reason) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& p : topics_.at(topic).partitions) {
      if (p.partition != partition) continue;
      p.halted = !reason.empty();
      p.halt_reason = std::move(reason);
      break;
    }
    Recompute(topic, &changes);
  }
  Notify(changes);
}

void CatchUpTracker::SetWaiting(size_t topic, std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!topics_.at(topic).assigned) waiting_reasons_[topic] = std::move(reason);
}

void CatchUpTracker::ServeStored(size_t topic, std::vector<PartitionProgress> partitions,
                                 int64_t caught_up_ms, std::string reason) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TopicProgress& t = topics_.at(topic);
    if (t.assigned) return;
    t.partitions = std::move(partitions);
    for (auto& p : t.partitions) p.ready = true;
    t.stale = Staleness{caught_up_ms, std::move(reason)};
    Recompute(topic, &changes);
  }
  Notify(changes);
}

void CatchUpTracker::SetRebuilding(size_t topic, std::string reason) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TopicProgress& t = topics_.at(topic);
    t.assigned = false;
    t.stale.reset();
    t.partitions.clear();
    rebuild_reasons_[topic] = "topic " + t.topic + " is being rebuilt (" + std::move(reason) + ")";
    Recompute(topic, &changes);
  }
  Notify(changes);
}

void CatchUpTracker::SetStoreFailure(std::string reason) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    store_failure_ = std::move(reason);
    for (size_t t = 0; t < topics_.size(); ++t) Recompute(t, &changes);
  }
  Notify(changes);
}

void CatchUpTracker::Tick(std::chrono::steady_clock::time_point now) {
  if (lag_.max_records <= 0) return;
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t t = 0; t < topics_.size(); ++t) {
      bool changed = false;
      for (auto& p : topics_[t].partitions) {
        // Only after the first catch-up: before it, readiness waits anyway.
        bool over = p.ready && p.end_offset >= 0 && p.applied >= 0 &&
                    p.end_offset - p.applied > lag_.max_records;
        if (!over) {
          p.over_since.reset();
          changed = changed || p.lagging;
          p.lagging = false;
          continue;
        }
        if (!p.over_since) p.over_since = now;
        if (!p.lagging && now - *p.over_since >= lag_.max_for) {
          p.lagging = true;
          changed = true;
        }
      }
      if (changed) Recompute(t, &changes);
    }
  }
  Notify(changes);
}

void CatchUpTracker::Recompute(size_t topic,
                               std::vector<std::pair<std::optional<size_t>, bool>>* changes) {
  TopicProgress& t = topics_[topic];
  bool topic_ready = t.assigned || t.stale.has_value();
  for (const auto& p : t.partitions) {
    topic_ready = topic_ready && p.ready && !p.halted && !p.lagging;
  }
  if (topic_ready != t.ready) {
    t.ready = topic_ready;
    changes->push_back({topic, topic_ready});
  }
  bool all = store_failure_.empty();
  for (const auto& tp : topics_) all = all && (tp.ready || !tp.required);
  if (all != ready_) {
    ready_ = all;
    changes->push_back({std::nullopt, all});
    ready_cv_.notify_all();
  }
}

std::string CatchUpTracker::TopicReasonLocked(size_t topic) const {
  const TopicProgress& t = topics_[topic];
  if (t.ready) return {};
  for (const auto& p : t.partitions) {
    if (p.halted) return p.halt_reason;
  }
  if (!rebuild_reasons_[topic].empty()) return rebuild_reasons_[topic];
  if (!t.assigned && !t.stale) {
    return waiting_reasons_[topic].empty() ? "topic " + t.topic + " is not assigned yet"
                                           : waiting_reasons_[topic];
  }
  for (const auto& p : t.partitions) {
    if (p.lagging) {
      return "topic " + t.topic + " partition " + std::to_string(p.partition) + " lags " +
             std::to_string(p.end_offset - p.applied) + " records (more than " +
             std::to_string(lag_.max_records) + " for over " +
             std::to_string(lag_.max_for.count()) + " ms)";
    }
  }
  int64_t to_go = 0;
  for (const auto& p : t.partitions) {
    if (!p.ready) to_go += p.start_end_offset - std::max<int64_t>(p.applied, 0);
  }
  return "topic " + t.topic + " is catching up (" + std::to_string(to_go) + " records to go)";
}

std::string CatchUpTracker::NotReadyReason() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_) return {};
  if (!store_failure_.empty()) return store_failure_;
  constexpr size_t kNamed = 4;
  std::string out;
  size_t named = 0, more = 0;
  for (size_t i = 0; i < topics_.size(); ++i) {
    if (!topics_[i].required) continue;
    std::string r = TopicReasonLocked(i);
    if (r.empty()) continue;
    if (named == kNamed) {
      ++more;
      continue;
    }
    if (!out.empty()) out += "; ";
    out += r;
    ++named;
  }
  if (more > 0) out += "; and " + std::to_string(more) + " more topics";
  return out;
}

std::string CatchUpTracker::TopicNotReadyReason(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (topic >= topics_.size()) return {};
  return TopicReasonLocked(topic);
}

std::optional<Staleness> CatchUpTracker::TopicStaleness(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return topics_.at(topic).stale;
}

void CatchUpTracker::Notify(const std::vector<std::pair<std::optional<size_t>, bool>>& changes) {
  if (changes.empty()) return;
  std::vector<std::shared_ptr<const Listener>> listeners;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    listeners = listeners_;
  }
  for (const auto& [topic, ready] : changes) {
    for (const auto& l : listeners) (*l)(topic, ready);
  }
}

bool CatchUpTracker::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

namespace {
bool IsServable(const TopicProgress& t) {
  if (!t.assigned && !t.stale) return false;
  for (const auto& p : t.partitions) {
    if ((!p.ready && !p.added_late) || p.halted) return false;
  }
  return true;
}
}  // namespace

bool CatchUpTracker::TopicServable(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return IsServable(topics_.at(topic));
}

bool CatchUpTracker::TopicServable(size_t topic, std::optional<Staleness>* stale) const {
  std::lock_guard<std::mutex> lock(mu_);
  const TopicProgress& t = topics_.at(topic);
  *stale = t.stale;
  return IsServable(t);
}

bool CatchUpTracker::Servable() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& t : topics_) {
    if (!IsServable(t)) return false;
  }
  return true;
}

bool CatchUpTracker::TopicReady(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return topics_.at(topic).ready;
}

std::vector<TopicProgress> CatchUpTracker::Progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TopicProgress> out = topics_;
  for (size_t i = 0; i < out.size(); ++i) out[i].not_ready_reason = TopicReasonLocked(i);
  return out;
}

bool CatchUpTracker::WaitReady(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  ready_cv_.wait_until(lock, deadline, [&] { return ready_; });
  return ready_;
}

}  // namespace cachecar::health
