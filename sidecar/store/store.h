// Store: the materialized topics, in one LMDB environment on the pod's volume.
//
// Per configured topic, one LMDB database maps key -> (value, partition, offset, Kafka
// timestamp, revision). Beside them: each partition's next offset to consume, and the
// store's revision and identity. Apply() writes data, offsets and revision in ONE write
// transaction, so after any crash the data and the offsets agree and consumption resumes
// exactly where the data ends.
//
// Revision: a counter that increases by one for every change applied (a put, or a delete
// of a key that existed), across topics, and survives restarts. store_id() changes only
// when the store is created from scratch, so a revision is meaningful only with its id.
//
// History: every change is also written, in the same transaction, to a log keyed by its
// revision (topic, key, new value or delete, and the previous value), so Watch can replay
// what a client missed — also after a restart. The log keeps the last
// Options::history_events changes; older ones are trimmed as new ones are applied.
//
// Threads: exactly one thread may call Apply() (the materializer). Any number of threads
// may take Snapshots concurrently (snapshot.h: they must be short). Everything else is
// safe from any thread.
//
// Files: store.cc (open, apply, grow), snapshot.cc (reads), read_txn_pool.cc (reader
// slots and the map lock), history_codec.cc and record_codec.cc (on-disk layouts),
// lmdb_util.cc (LMDB errors).
#pragma once

#include <lmdb.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/entry.h"
#include "store/lmdb_util.h"
#include "store/read_txn_pool.h"
#include "store/record_codec.h"
#include "store/snapshot.h"
#include "store/store_file.h"
#include "store/write_batch.h"

namespace cachecar::store {

// How commits reach the disk (config::StoreConfig::sync explains the choice to operators).
enum class SyncMode {
  // No fsync per commit (MDB_NOSYNC). A process crash loses nothing (the page cache keeps
  // every write); a machine crash may lose writes out of order, so a store left unclosed
  // by an earlier boot is recreated at open (STORE_UNSYNCED) and rebuilt from Kafka.
  // Falls back to kData where the boot cannot be told (no boot id).
  kNone,
  // One fsync of the data per commit, none of the meta page (MDB_NOMETASYNC): integrity
  // kept through any crash; a machine crash may undo the last commit.
  kData,
  // Data and meta page synced at every commit.
  kFull,
};

struct Options {
  // Directory of the environment; created if missing.
  std::string path;
  // Topics this process serves. Each gets a database (created if missing).
  std::vector<std::string> topics;
  // See config::StoreConfig. The map starts at map_size_bytes (or the file's size, if
  // larger) and doubles when a commit does not fit, up to max_map_size_bytes.
  uint64_t map_size_bytes = 1ull << 30;
  uint64_t max_map_size_bytes = 1ull << 40;
  SyncMode sync = SyncMode::kData;
  // This boot's identity (Linux: a random UUID per boot), for SyncMode::kNone.
  std::string boot_id_path = kBootIdPath;
  // Concurrent read transactions allowed (LMDB reader slots). Default 1024.
  unsigned max_readers = 1024;
  // Changes kept in the history log (see above). At least 1.
  uint64_t history_events = 100000;
  // Views (README "Views"): tables of `topics` that are maintained from another's changes
  // in the same transaction, never written by a Mutation of their own. A reset of the topic
  // empties its views with it.
  struct ViewOf {
    size_t view = 0;   // index into topics
    size_t topic = 0;  // the topic it indexes
    // Most entries one view key holds: an entry that would be one more is left out of that
    // view key (ApplyResult::view_overflows), so a change costs at most this many.
    size_t max_entries_per_key = 1000;
  };
  std::vector<ViewOf> views;
  // Keys a topic reset deletes per transaction (WriteBatch::reset_topics). At least 1.
  size_t reset_chunk_keys = 10000;
};

class Store {
 public:
  // Opens (or creates) the store. Errors: INVALID_ARGUMENT for an unusable path,
  // DATA_LOSS for a store of another format (STORE_INCOMPATIBLE) or a corrupt one
  // (STORE_CORRUPT), RESOURCE_EXHAUSTED (DISK_FULL), INTERNAL otherwise.
  static Result<std::unique_ptr<Store>> Open(const Options& options);
  // As Open, but a store that is corrupt or of another format is deleted and created
  // anew (it is a cache: the topics rebuild it). `recreated` gets the reason, if so.
  static Result<std::unique_ptr<Store>> OpenOrRecreate(const Options& options,
                                                       Status* recreated);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies the batch in one transaction. Writer thread only. When the batch does not fit
  // the map, the map grows (waiting up to a second for readers to finish their snapshots)
  // and the batch is retried. Errors: RESOURCE_EXHAUSTED with STORE_FULL (the map is at
  // max_map_size_bytes), DISK_FULL (the filesystem is full) or STORE_BUSY (readers held
  // snapshots too long for the map to grow; try again); the store is unchanged.
  Result<ApplyResult> Apply(const WriteBatch& batch);

  // Next offsets stored for a topic, by partition (absent: never consumed).
  Result<std::map<int32_t, int64_t>> LoadPositions(size_t topic) const;
  // Deletes the next chunk of a resetting topic's keys (WriteBatch::continue_resets); true
  // once it is empty and no longer resetting (also if it was not). Writer thread only.
  Result<bool> ContinueReset(size_t topic);
  // Whether the topic is being emptied (a reset not finished, also across a restart).
  Result<bool> Resetting(size_t topic) const;
  // When the topic was last recorded caught up with Kafka (WriteBatch::caught_up_ms), in
  // Unix ms; nullopt if never (or not since it was last reset).
  Result<std::optional<int64_t>> LoadCaughtUp(size_t topic) const;
  // The definition the topic's values were stored under (WriteBatch::definitions);
  // nullopt if none was ever written.
  Result<std::optional<std::string>> LoadDefinition(size_t topic) const;
  // Every WriteBatch::registry_schemas entry stored so far (key -> value).
  Result<std::map<std::string, std::string>> LoadRegistrySchemas() const;

  // A consistent read-only view (see snapshot.h for how long it may be held). Any thread.
  // RESOURCE_EXHAUSTED (STORE_BUSY) when LMDB has no reader slot left. Blocks while the
  // map is being grown (at most about a second).
  Result<Snapshot> NewSnapshot() const;

  // Writes a compacted copy of the store, as of one read transaction (data, positions,
  // revision and history agree), to `fd` (an empty file open for writing; through the
  // page cache, unlike mdb_env_copy2's O_DIRECT, so the copy is read back from memory).
  // Any thread. For the copy's duration it holds a reader slot and the map lock shared, so
  // the writer cannot grow the map meanwhile (a commit that needs a bigger map waits, and
  // says so: STORE_RESIZE_WAITING); the copy runs at disk speed, never at a client's pace.
  // Errors as LmdbError (DISK_FULL when the volume is full).
  Status CopyTo(int fd) const;

  // Last committed revision. Any thread.
  uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  // The sync mode in effect: Options::sync, or kData where kNone cannot tell a machine
  // restart.
  SyncMode sync_mode() const { return sync_mode_; }
  const std::string& store_id() const { return store_id_; }
  // The oldest revision the history log still holds; revision() + 1 when it holds none.
  // A resume after revision r is complete iff r + 1 >= oldest_history_revision().
  uint64_t oldest_history_revision() const {
    return oldest_history_.load(std::memory_order_acquire);
  }
  const Options& options() const { return options_; }
  // The LMDB environment's flags (MDB_NOMETASYNC, ...), for diagnostics and tests.
  unsigned lmdb_flags() const;

  // Live keys of a topic (LMDB's entry count; cheap).
  Result<uint64_t> KeyCount(size_t topic) const;
  // Bytes of the map in use, and the map size.
  struct Usage {
    uint64_t used_bytes = 0;
    uint64_t map_size_bytes = 0;
    uint64_t map_resizes = 0;  // times the map grew since open
  };
  Usage GetUsage() const;

 private:
  explicit Store(Options options) : options_(std::move(options)) {}
  Status Init();
  Result<ApplyResult> ApplyOnce(const WriteBatch& batch);
  // A value of the meta table, in its own read transaction; nullopt if absent.
  Result<std::optional<std::string>> GetMeta(const std::string& key) const;
  // Deletes up to reset_chunk_keys keys of a resetting topic in `txn`, and its mark once
  // the topic is empty; true then.
  Result<bool> DeleteResetChunk(MDB_txn* txn, size_t topic);
  // Appends history_scratch_ to the log as the next revision: one more change.
  Status AppendHistory(MDB_cursor* history, uint64_t* rev, ApplyResult* result);
  // Moves the topic key `m.key` to the view keys `keys` (none: out of the view) in view
  // `v` of its topic, with its new value; one history record per view key changed.
  Status UpdateView(MDB_txn* txn, MDB_cursor* history, size_t v, const Mutation& m,
                    std::vector<std::string> keys, uint64_t* rev, ApplyResult* result);
  // Doubles the map (capped at max_map_size_bytes) once no read transaction is open.
  Status Grow();
  // SyncMode::kNone's marker (kSyncStateFile): refuses a store an earlier boot left
  // unsynced, before the environment opens.
  Status CheckSyncState(const std::string& boot_id) const;

  Options options_;
  SyncMode sync_mode_ = SyncMode::kData;
  std::string boot_id_;
  MDB_env* env_ = nullptr;
  StoreTables tables_;
  // By topic index: indices into options_.views of the topic's views, in that order.
  std::vector<std::vector<size_t>> views_of_;
  std::vector<MDB_dbi> view_keys_;  // by index into options_.views: its reverse table
  std::string store_id_;
  std::atomic<uint64_t> revision_{0};
  std::atomic<uint64_t> oldest_history_{1};
  std::string scratch_;          // writer-only encode buffers
  std::string history_scratch_;
  // Oldest revision held, read from the log (writer thread or Init).
  Status LoadOldestHistory(MDB_txn* txn, uint64_t revision);

  // Created once the environment is; every read transaction comes from it.
  mutable std::unique_ptr<ReadTxnPool> read_pool_;
  std::atomic<uint64_t> map_resizes_{0};
  uint64_t map_size_ = 0;  // writer thread
};

}  // namespace cachecar::store
