// Sandbox: runs the topics' jq filters in a worker process (worker.h) and gives each
// record's Result. What a filter does can cost that child, never the sidecar:
// - a record whose filter runs longer than `record_budget` is kBudgetExceeded: the worker
//   is killed (SIGKILL) and started again, and the records after it go on;
// - a worker that dies on a record (its stack overflowed, or it reached
//   `max_memory_bytes`) makes that record kCrashed, and is started again.
// Records go to the worker in batches and their results come back in batches, so a
// record costs the filter's own work plus a copy each way. After a failure the records
// not yet answered are sent again one answer at a time, to find the one to blame exactly;
// the others get their real result.
//
// Threads: one caller at a time (the materializer's thread, or cachecarctl).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "transform/transform.h"

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace cachecar::transform {

struct SandboxOptions {
  // The executable started as the worker: this same program (it calls MaybeRunWorker
  // first in main).
  std::string worker_path = "/proc/self/exe";
  // Address space the worker may use; 0 no limit. Default 1 GiB.
  uint64_t max_memory_bytes = 1ull << 30;
  // Longest one record's filter may run. Default 1 s.
  std::chrono::milliseconds record_budget{1000};
  // cachecar_transform_worker_restarts_total{reason} goes here when set.
  prometheus::Registry* registry = nullptr;
};

class Sandbox {
 public:
  // Starts the worker and compiles `filters` in it. A filter that does not compile is
  // INVALID_ARGUMENT with one violation per such filter, field "filters[i]"; a worker that
  // cannot be started, UNAVAILABLE.
  static cachecar::Result<std::unique_ptr<Sandbox>> Start(std::vector<std::string> filters,
                                                          SandboxOptions options);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // One Result per input, in order. Fails (UNAVAILABLE) only when no worker can be
  // started; the caller retries later, nothing was applied. Submit then Collect.
  cachecar::Result<std::vector<Result>> Run(const std::vector<Input>& inputs, size_t max_output);

  // The same in two steps, so the caller can work while the worker does: Submit sends the
  // batch and returns; Collect waits for its results. `inputs` (and what they point to)
  // must stay alive and unchanged until Collect has returned them. One batch at a time:
  // Submit again only after Collect succeeded. A Collect that fails (UNAVAILABLE: no worker
  // can be started) may be called again.
  void Submit(const std::vector<Input>* inputs, size_t max_output);
  cachecar::Result<std::vector<Result>> Collect();

  // Workers started again since Start (budget overruns and crashes).
  uint64_t restarts() const { return restarts_; }

 private:
  Sandbox(std::vector<std::string> filters, SandboxOptions options);
  // Starts a worker and compiles the filters in it; per-filter errors in `errors`.
  Status Spawn(std::vector<std::string>* errors);
  void Kill();
  // Sends the submitted inputs from next_ on to the worker.
  Status Send();
  // Reads results of what was sent into results_, advancing next_ past each one answered.
  // Not OK when the worker ran over its time or died.
  Status Receive();
  void CountRestart(const char* reason);

  const std::vector<std::string> filters_;
  const SandboxOptions options_;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string exit_description_;  // how the last killed or dead worker ended
  // The batch between Submit and Collect.
  const std::vector<Input>* pending_ = nullptr;
  size_t max_output_ = 0;
  std::vector<Result> results_;
  size_t next_ = 0;          // first input not answered yet
  bool sent_ = false;        // inputs from next_ on are with the current worker
  bool one_by_one_ = false;  // after a failure: one answer at a time, to blame exactly
  uint64_t restarts_ = 0;
  prometheus::Counter* restarts_budget_ = nullptr;
  prometheus::Counter* restarts_crashed_ = nullptr;
};

}  // namespace cachecar::transform
