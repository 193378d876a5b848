// ReadTxnPool: LMDB read transactions for any thread, and the lock that keeps the memory
// map still while they are open. Internal to the store.
//
// Transactions are reset rather than aborted when released: renewing one keeps its reader
// slot, so a read takes no lock in LMDB's reader table. At most half of max_readers are
// parked, so new readers always find a slot.
//
// Every transaction handed out holds the MapLock shared until it is released; the store's
// writer takes it exclusively to grow the map (map_lock.h). So a transaction held long
// blocks map growth: callers keep them short.
//
// Thread-safe. The environment must outlive the pool.
#pragma once

#include <lmdb.h>

#include <mutex>
#include <vector>

#include "store/map_lock.h"

namespace cachecar::store {

class ReadTxnPool {
 public:
  ReadTxnPool(MDB_env* env, unsigned max_readers) : env_(env), max_readers_(max_readers) {}
  ~ReadTxnPool();  // aborts the parked transactions
  ReadTxnPool(const ReadTxnPool&) = delete;
  ReadTxnPool& operator=(const ReadTxnPool&) = delete;

  // A read transaction holding the map lock shared, or nullptr when LMDB has no reader
  // slot left (the lock is then not held). Give it back with Release.
  MDB_txn* Acquire();
  // Releases the transaction and its share of the map lock. Any thread.
  void Release(MDB_txn* txn);

  MapLock& map_lock() { return map_lock_; }

 private:
  MDB_env* const env_;
  const unsigned max_readers_;
  std::mutex mu_;  // guards parked_
  std::vector<MDB_txn*> parked_;
  MapLock map_lock_;
};

// Holds a MapLock shared for a scope (a read that uses its own transaction).
class SharedMapLock {
 public:
  explicit SharedMapLock(MapLock* lock) : lock_(lock) { lock_->LockShared(); }
  ~SharedMapLock() { lock_->UnlockShared(); }
  SharedMapLock(const SharedMapLock&) = delete;
  SharedMapLock& operator=(const SharedMapLock&) = delete;

 private:
  MapLock* lock_;
};

}  // namespace cachecar::store
