// The transform worker: a child process that runs jq filters (jq_filter.h) for the
// sidecar, so that a filter that loops, recurses without bound or eats memory costs a
// killed child, never a stalled partition or a crashed sidecar (sandbox.h).
//
// It is this same executable started again as `<exe> __cachecar-transform-worker
// MAX_MEMORY_BYTES` with a socket as its stdin, no environment, and the sidecar's stderr.
// It limits its own address space to MAX_MEMORY_BYTES (0: no limit), writes no core
// file, dies with its parent (PR_SET_PDEATHSIG), and speaks wire.h's frames until its
// stdin closes.
#pragma once

#include <optional>

namespace cachecar::transform {

inline constexpr const char kWorkerArg[] = "__cachecar-transform-worker";

// Call first in main(): when argv asks for the worker, runs it and returns its exit code.
std::optional<int> MaybeRunWorker(int argc, char** argv);

}  // namespace cachecar::transform
