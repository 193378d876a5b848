// Offline access to a copy of a store (Store::CopyTo's output, or a downloaded snapshot):
// what it holds, and making it the store of this sidecar.
//
// These open the copy's environment without a lock file: only for a copy that no other
// process has open (a temporary directory of this process). Not thread-safe on one copy.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace cachecar::store {

// The on-disk format this build reads and writes (the store's "format" meta value).
inline constexpr char kStoreFormat[] = "cachecar-store-1";
// Where Linux keeps this boot's identity (a random UUID per boot).
inline constexpr char kBootIdPath[] = "/proc/sys/kernel/random/boot_id";

struct TopicFacts {
  std::string name;
  std::map<int32_t, int64_t> positions;  // next offset to read, by partition
  uint64_t keys = 0;                     // live keys
};

struct StoreFacts {
  std::string format;
  std::string store_id;
  uint64_t revision = 0;
  std::vector<TopicFacts> topics;  // every topic database in the copy, by name
};

// Reads the format, identity, revision, and each topic's positions and key count of the
// store in `dir` (its data.mdb). DATA_LOSS (STORE_CORRUPT) if it is not a readable store,
// STORE_INCOMPATIBLE if it has another format.
Result<StoreFacts> InspectStoreCopy(const std::string& dir);

// Makes the copy in `dir` a new store of this sidecar: a fresh store id (its revisions and
// history stay: they describe how its data came to be), and the databases, positions and
// caught-up marks of topics not in `topics` dropped. Not synced: see MarkWrittenThisBoot.
Status AdoptStoreCopy(const std::string& dir, const std::vector<std::string>& topics);

// Marks the store directory `dir` as written, unsynced, in this boot (the marker
// store.sync: none keeps, read from `boot_id_path`), durably, before a data.mdb written
// without fsync is put there: if the machine restarts before the data reaches the disk,
// Store::Open refuses the store (STORE_UNSYNCED) rather than serve it; if it opens in this
// boot with store.sync data or full, it is synced then. False (nothing written) when the
// boot cannot be told: the caller must fsync the data instead.
Result<bool> MarkWrittenThisBoot(const std::string& dir, const std::string& boot_id_path);

}  // namespace cachecar::store
