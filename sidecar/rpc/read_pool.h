// ReadPool: a few threads that run the reads deferred until the store has reached a
// revision (min_revision). The ApplyNotifier answers every waiter on its one thread;
// running the read there (a BatchGet of 1000 keys, a List page of 3 MiB) would hold up
// every other waiter behind it, Puts' read-your-writes answers among them. The number of
// deferred reads is bounded by grpc.max_waiting_calls, and so is this queue.
//
// Thread-safe. The destructor runs what is queued, then joins.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cachecar::rpc {

class ReadPool {
 public:
  explicit ReadPool(size_t threads);
  ~ReadPool();
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // Runs `task` on one of the pool's threads, in order of posting.
  void Post(std::function<void()> task);

  size_t threads() const { return threads_.size(); }
  // Tasks run to completion so far.
  uint64_t executed() const;

 private:
  void Run();

  mutable std::mutex mu_;  // guards queue_, stopping_, executed_
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  uint64_t executed_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace cachecar::rpc
