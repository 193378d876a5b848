#include "transform/worker.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "transform/jq_filter.h"
#include "transform/wire.h"

// Sanitizer runtimes reserve terabytes of address space up front: under them the worker
// cannot limit its own (tests/sanitize.sh builds).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CACHECAR_WORKER_CAN_LIMIT_MEMORY 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CACHECAR_WORKER_CAN_LIMIT_MEMORY 0
#endif
#endif
#ifndef CACHECAR_WORKER_CAN_LIMIT_MEMORY
#define CACHECAR_WORKER_CAN_LIMIT_MEMORY 1
#endif

namespace cachecar::transform {

namespace {

constexpr size_t kFlushBytes = 64u << 10;
constexpr auto kFlushInterval = std::chrono::milliseconds(5);

class Worker {
 public:
  explicit Worker(int fd) : fd_(fd) {}

  int Run() {
    std::string payload;
    for (;;) {
      Status st = wire::ReadFrame(fd_, &payload, -1);
      if (!st.ok()) return st.reason() == "WORKER_EXITED" ? 0 : 2;  // the sidecar closed it
      wire::Reader in(payload);
      const uint8_t kind = in.U8();
      bool ok = false;
      if (kind == 'C') ok = Compile(in);
      if (kind == 'B') ok = Batch(in);
      if (!ok) {
        std::fprintf(stderr, "transform worker: malformed request\n");
        return 2;
      }
    }
  }

 private:
  bool Compile(wire::Reader& in) {
    const uint32_t n = in.U32();
    filters_.clear();
    wire::Writer out;
    out.U8('c');
    for (uint32_t i = 0; i < n && !in.failed(); ++i) {
      auto f = JqFilter::Compile(in.Str());
      out.U8(f.ok() ? 1 : 0);
      out.Str(f.ok() ? std::string_view() : f.status().message());
      filters_.push_back(f.ok() ? std::move(*f) : nullptr);
    }
    return !in.failed() && in.done() && wire::WriteAll(fd_, out.Frame()).ok();
  }

  bool Batch(wire::Reader& in) {
    const uint32_t max_output = in.U32();
    const bool flush_each = in.U8() != 0;
    const uint32_t n = in.U32();
    std::vector<Input> inputs;
    for (uint32_t i = 0; i < n && !in.failed(); ++i) {
      Input r;
      r.filter = in.U32();
      r.key = in.Str();
      r.value = in.Str();
      r.partition = in.I32();
      r.offset = in.I64();
      r.timestamp_ms = in.I64();
      r.headers_json = in.Str();
      inputs.push_back(r);
    }
    if (in.failed() || !in.done()) return false;
    wire::Writer results;
    uint32_t pending = 0;
    auto last_flush = std::chrono::steady_clock::now();
    auto flush = [&]() {
      wire::Writer frame;
      frame.U8('r');
      frame.U32(pending);
      frame.Raw(results.Take());
      pending = 0;
      last_flush = std::chrono::steady_clock::now();
      return wire::WriteAll(fd_, frame.Frame()).ok();
    };
    for (const Input& r : inputs) {
      Result res;
      if (r.filter >= filters_.size() || filters_[r.filter] == nullptr) {
        res = {Outcome::kError, "no such filter"};
      } else {
        res = filters_[r.filter]->Run(r, max_output);
      }
      results.U8(static_cast<uint8_t>(res.outcome));
      results.Str(res.text);
      ++pending;
      if (flush_each || results.size() >= kFlushBytes ||
          std::chrono::steady_clock::now() - last_flush >= kFlushInterval) {
        if (!flush()) return false;
      }
    }
    return pending == 0 || flush();
  }

  int fd_;
  std::vector<std::unique_ptr<JqFilter>> filters_;
};

}  // namespace

std::optional<int> MaybeRunWorker(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], kWorkerArg) != 0) return std::nullopt;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 1;  // the sidecar died before the line above took effect
  rlimit core{0, 0};
  ::setrlimit(RLIMIT_CORE, &core);
  if (argc >= 3) {
    const unsigned long long max_memory = std::strtoull(argv[2], nullptr, 10);
    if (max_memory > 0 && CACHECAR_WORKER_CAN_LIMIT_MEMORY) {
      rlimit as{max_memory, max_memory};
      ::setrlimit(RLIMIT_AS, &as);
    }
  }
  return Worker(STDIN_FILENO).Run();
}

}  // namespace cachecar::transform
