#include "kafka/rejected_log.h"

namespace cachecar::kafka {

RejectedLog::RejectedLog(std::vector<size_t> capacities)
    : capacities_(std::move(capacities)), rings_(capacities_.size()) {}

void RejectedLog::Add(size_t topic, RejectedRecord record) {
  if (topic >= rings_.size() || capacities_[topic] == 0) return;
  if (record.key.size() > kMaxKeyBytes) record.key.resize(kMaxKeyBytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto& ring = rings_[topic];
  ring.push_front(std::move(record));
  while (ring.size() > capacities_[topic]) ring.pop_back();
}

std::vector<RejectedRecord> RejectedLog::List(size_t topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (topic >= rings_.size()) return {};
  return {rings_[topic].begin(), rings_[topic].end()};
}

}  // namespace cachecar::kafka
