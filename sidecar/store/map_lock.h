// MapLock: keeps LMDB's memory map still while read transactions use it.
//
// Growing the map (mdb_env_set_mapsize) remaps the file, so no read transaction of this
// process may be open meanwhile. Every read transaction holds the lock shared; the one
// writer takes it exclusively, with a timeout, only to grow the map.
//
// Readers cost two atomic operations and never touch the mutex unless a resize is waiting.
// A waiting resize holds back new readers (so a stream of short reads cannot starve it);
// if old readers do not finish in time it gives up and lets the new ones through.
// Unlike pthread_rwlock, shared ownership may be released on another thread (a Snapshot
// may be created on one gRPC thread and destroyed on another).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace cachecar::store {

class MapLock {
 public:
  void LockShared() {
    for (;;) {
      if (resize_pending_.load()) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !resize_pending_.load(); });
      }
      readers_.fetch_add(1);
      if (!resize_pending_.load()) return;
      UnlockShared();  // a resize started between the check and the count: let it run
    }
  }

  void UnlockShared() {
    if (readers_.fetch_sub(1) == 1 && resize_pending_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }

  // Waits up to `timeout` for every reader to leave. True: held exclusively until Unlock.
  bool TryLockFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    resize_pending_.store(true);
    if (cv_.wait_for(lock, timeout, [&] { return readers_.load() == 0; })) return true;
    resize_pending_.store(false);
    cv_.notify_all();
    return false;
  }

  // Whether a resize is waiting for readers to leave (new readers wait behind it).
  bool resize_pending() const { return resize_pending_.load(); }

  void Unlock() {
    std::lock_guard<std::mutex> lock(mu_);
    resize_pending_.store(false);
    cv_.notify_all();
  }

 private:
  // Sequentially consistent: a reader counts itself then checks for a resize, the resize
  // announces itself then checks for readers, so at least one of them sees the other.
  std::atomic<int> readers_{0};
  std::atomic<bool> resize_pending_{false};
  std::mutex mu_;  // guards nothing but cv_ waits
  std::condition_variable cv_;
};

}  // namespace cachecar::store
