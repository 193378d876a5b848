// TaskPool: a few threads that run posted tasks in order, so that a thread that must not
// wait on others (the ApplyNotifier's, the Watch hub's) hands them work instead of doing
// it: reads deferred until a min_revision (rpc/cache_service.cc), and Watch streams'
// turns to build and start their next write (watch/hub.cc).
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

namespace cachecar {

class TaskPool {
 public:
  explicit TaskPool(size_t threads);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

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

}  // namespace cachecar
