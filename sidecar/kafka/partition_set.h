// PartitionSet: the writer's book of which partitions it reads and how far each one has
// been consumed. Writer thread only; not thread-safe.
//
// A topic is pending until the writer has read its metadata and assigned its partitions
// (at start, and again after a rebuild). A partition's position is the next offset to
// consume: it moves as records and partition ends are handled, ahead of the store until
// the batch holding them commits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "kafka/record_source.h"
#include "store/write_batch.h"

namespace cachecar::kafka {

class PartitionSet {
 public:
  // Every topic starts pending.
  explicit PartitionSet(size_t topics);

  const std::set<size_t>& pending() const { return pending_; }
  bool assigned_any() const { return !assignments_.empty(); }
  // Topics with at least one partition assigned.
  std::set<size_t> AssignedTopics() const;
  // Partitions of the topic assigned (0 .. count-1).
  int32_t PartitionCount(size_t topic) const;

  // Adds a partition of a pending topic, starting at `stored` (the position found in the
  // store) or, without one, at the beginning of the log.
  void Add(size_t topic, int32_t partition, std::optional<int64_t> stored);
  // The topic's partitions have all been added: it is no longer pending.
  void MarkAssigned(size_t topic) { pending_.erase(topic); }
  // Forgets the topic's partitions and positions; it is pending again.
  void Reset(size_t topic);

  // The next offset to consume, if known.
  std::optional<int64_t> Position(const store::PartitionKey& key) const;
  void SetPosition(const store::PartitionKey& key, int64_t next) { positions_[key] = next; }

  // Every assigned partition, each at its current position (or where it started).
  std::vector<Assignment> Assignments() const;
  // The assigned partitions whose position is durable: known, and not moved by
  // `unflushed` (the positions of a batch not yet committed).
  std::vector<Assignment> Durable(const std::map<store::PartitionKey, int64_t>& unflushed) const;

 private:
  std::set<size_t> pending_;
  std::vector<Assignment> assignments_;  // offsets as first assigned
  std::map<store::PartitionKey, int64_t> positions_;
};

}  // namespace cachecar::kafka
