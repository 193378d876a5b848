// CommitObserver: the one way the rest of the sidecar learns what the writer did to the
// store. The materializer calls its observers after every commit, in the order they were
// given (materializer.h fixes it: readiness, then Put/min_revision waiters, then Watch),
// and likewise when commits start or stop failing, a partition halts or resumes, or a
// topic is emptied to be read again.
//
// Contract for implementations: every method is called on the writer's thread, after the
// fact (a commit's data is durable and readable before OnCommit runs), never with a lock
// of the writer held. It must not block and must not call back into the writer: record
// the news and wake whoever waits for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/write_batch.h"

namespace cachecar::store {

// A record that was consumed but not applied (refused when read back: not JSON, against
// the schema, ...): its position moved past it, its key kept its previous value.
struct RejectedOffset {
  PartitionKey partition;
  int64_t offset = 0;
  std::string reason;  // e.g. "schema_violation"
};

struct CommitInfo {
  uint64_t revision = 0;  // the store's revision after the commit
  size_t changes = 0;     // puts and deletes that changed an entry (0: positions only)
  // Partitions whose next offset to apply moved, with the new value. At start, and after
  // a topic was set up again, the positions found in the store (changes 0).
  const std::map<PartitionKey, int64_t>* positions = nullptr;
  // Records refused since the last commit (may be null).
  const std::vector<RejectedOffset>* rejected = nullptr;
};

class CommitObserver {
 public:
  virtual ~CommitObserver() = default;

  // A commit is durable and readable.
  virtual void OnCommit(const CommitInfo& commit) = 0;
  // Commits fail with `status` (nothing is applied; the writer retries), or succeed again
  // (OK).
  virtual void OnStoreFailure(const Status& status) {}
  // The partition stopped applying at an offset (non-empty `reason` says where and why),
  // or resumed (empty).
  virtual void OnPartitionHalted(size_t topic, int32_t partition, const std::string& reason) {}
  // The topic was emptied and its positions forgotten: it is read again from the start.
  virtual void OnTopicReset(size_t topic, const std::string& reason) {}
};

}  // namespace cachecar::store
