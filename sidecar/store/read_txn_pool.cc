#include "store/read_txn_pool.h"

namespace cachecar::store {

ReadTxnPool::~ReadTxnPool() {
  for (MDB_txn* txn : parked_) mdb_txn_abort(txn);
}

MDB_txn* ReadTxnPool::Acquire() {
  map_lock_.LockShared();
  MDB_txn* txn = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!parked_.empty()) {
      txn = parked_.back();
      parked_.pop_back();
    }
  }
  if (txn != nullptr) {
    if (mdb_txn_renew(txn) == 0) return txn;
    mdb_txn_abort(txn);
    txn = nullptr;
  }
  if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) != 0) {
    map_lock_.UnlockShared();
    return nullptr;
  }
  return txn;
}

void ReadTxnPool::Release(MDB_txn* txn) {
  mdb_txn_reset(txn);
  map_lock_.UnlockShared();
  std::lock_guard<std::mutex> lock(mu_);
  // Keep at most half the reader slots parked, so new readers always find one.
  if (parked_.size() < max_readers_ / 2) {
    parked_.push_back(txn);
    return;
  }
  mdb_txn_abort(txn);
}

}  // namespace cachecar::store
