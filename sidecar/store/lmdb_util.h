// Small helpers for calling LMDB, internal to the store: byte views, RAII guards for
// transactions and cursors, and the mapping of LMDB error codes to Status. A guard belongs
// to the thread that owns its transaction.
#pragma once

#include <lmdb.h>

#include <memory>
#include <vector>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cachecar::store {

inline MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

// An LMDB failure as a Status: RESOURCE_EXHAUSTED (STORE_FULL: the map is full;
// DISK_FULL), DATA_LOSS (STORE_CORRUPT) for a damaged or foreign file, INTERNAL otherwise.
Status LmdbError(const char* what, int rc);

// A failed commit. LMDB reports a short write (the filesystem filled up part-way) as EIO,
// so EIO on a nearly full filesystem at `path` is DISK_FULL too.
Status CommitError(int rc, const std::string& path);

// Aborts a transaction unless released.
struct TxnGuard {
  MDB_txn* txn;
  ~TxnGuard() {
    if (txn != nullptr) mdb_txn_abort(txn);
  }
  MDB_txn* Release() {
    MDB_txn* t = txn;
    txn = nullptr;
    return t;
  }
};

// The databases of one store environment, opened once at start and fixed after.
struct StoreTables {
  MDB_dbi meta = 0;       // format, identity, revision
  MDB_dbi positions = 0;  // (topic, partition) -> next offset
  MDB_dbi history = 0;    // revision -> change (history_codec.h)
  std::vector<MDB_dbi> topics;  // by topic index: store key -> record (record_codec.h)
};

// Closes a cursor when it goes out of scope (reset() closes it earlier).
using CursorGuard = std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)>;
inline CursorGuard GuardCursor(MDB_cursor* cur) { return CursorGuard(cur, mdb_cursor_close); }

}  // namespace cachecar::store
