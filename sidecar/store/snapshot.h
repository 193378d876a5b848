// Snapshot: a consistent read-only view of the store at one revision (one LMDB read
// transaction).
//
// Lifetime: a Snapshot holds a reader slot and a share of the store's map lock until it
// is destroyed. While any Snapshot is open the map cannot grow and LMDB cannot reuse the
// pages it sees, so a Snapshot must be short: never hold one across a wait on a client
// (read a long scan as several Snapshots, each continuing from the last page's cursor).
// It must not outlive its Store.
//
// Threads: a Snapshot may be used by one thread at a time, and moved and destroyed on
// another thread than the one that created it.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/entry.h"
#include "store/lmdb_util.h"
#include "store/record_codec.h"

namespace cachecar::store {

class ReadTxnPool;

// One page of a prefix scan.
struct ScanPage {
  std::vector<Entry> entries;
  // Where to continue: the whole key of the last entry (so as long as that key); empty if
  // the scan is complete.
  std::string next_cursor;
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

class Snapshot {
 public:
  Snapshot(Snapshot&& other) noexcept;
  Snapshot& operator=(Snapshot&&) = delete;
  ~Snapshot();

  uint64_t revision() const { return revision_; }

  // The entry for a key, or nullopt on a miss. DATA_LOSS (STORE_CORRUPT) for a record
  // that does not decode.
  Result<std::optional<Entry>> Get(size_t topic, std::string_view key) const;

  // As Get, without copying: the views point into the store's memory map and stay valid
  // only while this Snapshot lives.
  Result<std::optional<DecodedRecord>> GetView(size_t topic, std::string_view key) const;

  // Entries whose keys start with `prefix`, after `cursor` (a ScanPage::next_cursor from a
  // scan with the same prefix, or empty), at most `limit` entries and about `max_bytes`
  // of keys and values (always at least one entry if any remain), in byte order of the whole
  // keys. A cursor stays valid across snapshots, even if its key was deleted meanwhile.
  // Keys of kLongKeyPrefix bytes or more that share those bytes are ordered by reading all
  // of them for each page that touches them (memory stays bounded by `limit`).
  Result<ScanPage> Scan(size_t topic, std::string_view prefix, std::string_view cursor,
                        size_t limit, size_t max_bytes) const;

  // Changes with revisions above `after`, oldest first, up to this snapshot's revision: at
  // most `limit` events and about `max_bytes` of keys and values (at least one event if
  // any remain). compacted if revision after + 1 is no longer held.
  // With a filter, only wanted entries are decoded and returned (and every topic reset);
  // `limit` still bounds the entries looked at.
  Result<HistoryPage> ReadHistory(uint64_t after, size_t limit, size_t max_bytes,
                                  const HistoryFilter& filter = nullptr) const;

 private:
  friend class Store;
  Snapshot(const StoreTables* tables, ReadTxnPool* pool, MDB_txn* txn, uint64_t revision)
      : tables_(tables), pool_(pool), txn_(txn), revision_(revision) {}
  const StoreTables* tables_;
  ReadTxnPool* pool_;
  MDB_txn* txn_;
  uint64_t revision_;
};

}  // namespace cachecar::store
