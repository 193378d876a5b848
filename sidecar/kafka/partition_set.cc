#include "kafka/partition_set.h"

#include <algorithm>

namespace cachecar::kafka {

PartitionSet::PartitionSet(size_t topics) {
  for (size_t t = 0; t < topics; ++t) pending_.insert(t);
}

std::set<size_t> PartitionSet::AssignedTopics() const {
  std::set<size_t> topics;
  for (const auto& a : assignments_) topics.insert(a.topic);
  return topics;
}

int32_t PartitionSet::PartitionCount(size_t topic) const {
  return static_cast<int32_t>(std::count_if(assignments_.begin(), assignments_.end(),
                                            [&](const Assignment& a) { return a.topic == topic; }));
}

void PartitionSet::Add(size_t topic, int32_t partition, std::optional<int64_t> stored) {
  assignments_.push_back({topic, partition, stored.value_or(kOffsetBeginning)});
  if (stored) positions_[{topic, partition}] = *stored;
}

void PartitionSet::Reset(size_t topic) {
  for (auto it = positions_.begin(); it != positions_.end();) {
    it = it->first.first == topic ? positions_.erase(it) : std::next(it);
  }
  assignments_.erase(std::remove_if(assignments_.begin(), assignments_.end(),
                                    [&](const Assignment& a) { return a.topic == topic; }),
                     assignments_.end());
  pending_.insert(topic);
}

std::optional<int64_t> PartitionSet::Position(const store::PartitionKey& key) const {
  auto it = positions_.find(key);
  if (it == positions_.end()) return std::nullopt;
  return it->second;
}

std::vector<Assignment> PartitionSet::Assignments() const {
  std::vector<Assignment> out = assignments_;
  for (auto& a : out) {
    auto it = positions_.find({a.topic, a.partition});
    if (it != positions_.end()) a.offset = it->second;
  }
  return out;
}

std::vector<Assignment> PartitionSet::Durable(
    const std::map<store::PartitionKey, int64_t>& unflushed) const {
  std::vector<Assignment> out;
  for (const auto& a : assignments_) {
    auto it = positions_.find({a.topic, a.partition});
    if (it == positions_.end() || unflushed.count({a.topic, a.partition}) > 0) continue;
    out.push_back({a.topic, a.partition, it->second});
  }
  return out;
}

}  // namespace cachecar::kafka
