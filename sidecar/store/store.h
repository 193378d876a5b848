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
// may take Snapshots concurrently; a Snapshot is a short LMDB read transaction and must
// be released promptly (it pins the pages it can see).
#pragma once

#include <lmdb.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/map_lock.h"
#include "store/record_codec.h"

namespace cachecar::store {

struct Options {
  // Directory of the environment; created if missing.
  std::string path;
  // Topics this process serves. Each gets a database (created if missing).
  std::vector<std::string> topics;
  // See config::StoreConfig. The map starts at map_size_bytes (or the file's size, if
  // larger) and doubles when a commit does not fit, up to max_map_size_bytes.
  uint64_t map_size_bytes = 1ull << 30;
  uint64_t max_map_size_bytes = 1ull << 40;
  bool sync = false;
  // Concurrent read transactions allowed (LMDB reader slots). Default 1024.
  unsigned max_readers = 1024;
  // Changes kept in the history log (see above). At least 1.
  uint64_t history_events = 100000;
};

// One entry as returned to readers (owned copies).
struct Entry {
  std::string key;
  std::string value;
  EntryMeta meta;
};

// A change for Apply(). `value` nullopt means delete (a tombstone).
struct Mutation {
  size_t topic = 0;  // index into Options::topics
  std::string key;
  std::optional<std::string> value;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
};

// Everything one write transaction applies.
struct WriteBatch {
  std::vector<Mutation> mutations;
  // (topic index, partition) -> next offset to consume.
  std::map<std::pair<size_t, int32_t>, int64_t> positions;
  // Topics to empty before the mutations: every key is deleted (each a change in the
  // history log, so watchers see the deletes) and the topic's positions are forgotten.
  std::set<size_t> reset_topics;
  size_t bytes = 0;  // payload bytes, for the caller's batching decisions

  void Clear() {
    mutations.clear();
    positions.clear();
    reset_topics.clear();
    bytes = 0;
  }
  bool empty() const { return mutations.empty() && positions.empty() && reset_topics.empty(); }
};

struct ApplyResult {
  uint64_t revision = 0;      // the store revision after the batch
  size_t changes = 0;         // puts, and deletes that removed a key
};

// One change from the history log (owned copies).
struct HistoryEvent {
  uint64_t revision = 0;
  std::string topic;                  // topic name (stable across config changes)
  std::string key;
  std::optional<std::string> value;   // nullopt: the key was deleted
  EntryMeta meta;                     // of the record that made the change
  std::optional<Entry> prev;          // the entry this change replaced or deleted, if any
};

// One page of the history log.
struct HistoryPage {
  std::vector<HistoryEvent> events;
  // The snapshot's revision: when `events` ends below it, call again after the last one.
  uint64_t revision = 0;
  // The revisions asked for are no longer held (trimmed): `events` is empty and
  // `oldest` is the oldest revision still held.
  bool compacted = false;
  uint64_t oldest = 0;
  // The last revision looked at (with a filter, events may end earlier); continue after it.
  uint64_t last = 0;
};

// Which history entries to decode: (topic name, key) -> wanted. Others are skipped without
// copying their values.
using HistoryFilter = std::function<bool(std::string_view topic, std::string_view key)>;

// One page of a prefix scan.
struct ScanPage {
  std::vector<Entry> entries;
  // Opaque cursor to continue after the last entry; empty if the scan is complete.
  std::string next_cursor;
};

class Snapshot;

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

  // A consistent read-only view. Any thread.
  Result<Snapshot> NewSnapshot() const;

  // Last committed revision. Any thread.
  uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  const std::string& store_id() const { return store_id_; }
  // The oldest revision the history log still holds; revision() + 1 when it holds none.
  // A resume after revision r is complete iff r + 1 >= oldest_history_revision().
  uint64_t oldest_history_revision() const {
    return oldest_history_.load(std::memory_order_acquire);
  }
  const Options& options() const { return options_; }

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
  friend class Snapshot;
  explicit Store(Options options) : options_(std::move(options)) {}
  Status Init();
  Result<ApplyResult> ApplyOnce(const WriteBatch& batch);
  // Doubles the map (capped at max_map_size_bytes) once no read transaction is open.
  Status Grow();

  Options options_;
  MDB_env* env_ = nullptr;
  MDB_dbi meta_dbi_ = 0;
  MDB_dbi positions_dbi_ = 0;
  MDB_dbi history_dbi_ = 0;
  std::vector<MDB_dbi> topic_dbis_;
  std::string store_id_;
  std::atomic<uint64_t> revision_{0};
  std::atomic<uint64_t> oldest_history_{1};
  std::string scratch_;          // writer-only encode buffers
  std::string history_scratch_;
  // Oldest revision held, read from the log (writer thread or Init).
  Status LoadOldestHistory(MDB_txn* txn, uint64_t revision);

  // Read transactions that were reset rather than aborted: renewing one keeps its reader
  // slot, so a read takes no lock in LMDB's reader table. Bounded by max_readers.
  MDB_txn* AcquireReadTxn() const;
  void ReleaseReadTxn(MDB_txn* txn) const;
  mutable std::mutex pool_mu_;  // guards read_pool_
  mutable std::vector<MDB_txn*> read_pool_;

  // Every read transaction holds this shared; Grow() takes it exclusively (map_lock.h).
  mutable MapLock map_lock_;
  std::atomic<uint64_t> map_resizes_{0};
  uint64_t map_size_ = 0;  // writer thread
};

// A read-only view of the store at one revision. Movable, not copyable; releases its
// LMDB read transaction when destroyed.
class Snapshot {
 public:
  Snapshot(Snapshot&& other) noexcept;
  Snapshot& operator=(Snapshot&&) = delete;
  ~Snapshot();

  uint64_t revision() const { return revision_; }

  // The entry for a key, or nullopt on a miss.
  Result<std::optional<Entry>> Get(size_t topic, std::string_view key) const;

  // As Get, without copying: the views point into the store's memory map and stay valid
  // only while this Snapshot lives.
  Result<std::optional<DecodedRecord>> GetView(size_t topic, std::string_view key) const;

  // Entries whose keys start with `prefix`, after `cursor` (a ScanPage::next_cursor from a
  // scan with the same prefix, or empty), at most `limit` entries and about `max_bytes`
  // of keys and values (always at least one entry if any remain).
  Result<ScanPage> Scan(size_t topic, std::string_view prefix, std::string_view cursor,
                        size_t limit, size_t max_bytes) const;

  // Changes with revisions above `after`, oldest first, up to this snapshot's revision: at
  // most `limit` events and about `max_bytes` of keys and values (at least one event if
  // any remain). compacted if revision after + 1 is no longer held.
  // With a filter, only wanted entries are decoded and returned; `limit` still bounds the
  // entries looked at.
  Result<HistoryPage> ReadHistory(uint64_t after, size_t limit, size_t max_bytes,
                                  const HistoryFilter& filter = nullptr) const;

 private:
  friend class Store;
  Snapshot(const Store* store, MDB_txn* txn, uint64_t revision)
      : store_(store), txn_(txn), revision_(revision) {}
  const Store* store_;
  MDB_txn* txn_;
  uint64_t revision_;
};

}  // namespace cachecar::store
