#include "health/catch_up.h"

namespace cachecar::health {

CatchUpTracker::CatchUpTracker(std::vector<std::string> topics) {
  for (auto& t : topics) {
    TopicProgress tp;
    tp.topic = std::move(t);
    topics_.push_back(std::move(tp));
  }
}

void CatchUpTracker::AddListener(Listener listener) { listeners_.push_back(std::move(listener)); }

void CatchUpTracker::SetAssigned(size_t topic, std::vector<PartitionProgress> partitions) {
  std::vector<std::pair<std::optional<size_t>, bool>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TopicProgress& t = topics_.at(topic);
    t.assigned = true;
    t.partitions = std::move(partitions);
    for (auto& p : t.partitions) p.ready = p.ready || p.applied >= p.start_end_offset;
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
  }
  Notify(changes);
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

void CatchUpTracker::Recompute(size_t topic,
                               std::vector<std::pair<std::optional<size_t>, bool>>* changes) {
  TopicProgress& t = topics_[topic];
  bool topic_ready = t.assigned;
  for (const auto& p : t.partitions) topic_ready = topic_ready && p.ready && !p.halted;
  if (topic_ready != t.ready) {
    t.ready = topic_ready;
    changes->push_back({topic, topic_ready});
  }
  bool all = true;
  for (const auto& tp : topics_) all = all && tp.ready;
  if (all != ready_) {
    ready_ = all;
    changes->push_back({std::nullopt, all});
    ready_cv_.notify_all();
  }
}

std::string CatchUpTracker::NotReadyReason() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_) return {};
  for (const auto& t : topics_) {
    for (const auto& p : t.partitions) {
      if (p.halted) return p.halt_reason;
    }
  }
  return "catching up";
}

void CatchUpTracker::Notify(const std::vector<std::pair<std::optional<size_t>, bool>>& changes) {
  for (const auto& [topic, ready] : changes) {
    for (const auto& l : listeners_) l(topic, ready);
  }
}

bool CatchUpTracker::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

bool CatchUpTracker::TopicReady(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return topics_.at(topic).ready;
}

std::vector<TopicProgress> CatchUpTracker::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return topics_;
}

bool CatchUpTracker::WaitReady(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  ready_cv_.wait_until(lock, deadline, [&] { return ready_; });
  return ready_;
}

}  // namespace cachecar::health
