// JqFilter: one compiled jq filter, run in-process on one record at a time. Backed by the
// Rust `jaq` crates through the same static library as the JSON Schema validator
// (schema/jsonschema_ffi/src/jq.rs says what a filter can reach).
//
// Not bounded in time, stack or memory: a filter may loop forever or recurse until the
// stack overflows. Only the transform worker process (worker.h) runs these; the sidecar
// talks to it through the Sandbox (sandbox.h), which can kill it.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "common/status.h"
#include "transform/transform.h"

struct Jq;  // the Rust side's handle

namespace cachecar::transform {

class JqFilter {
 public:
  // INVALID_ARGUMENT with the compiler's message ("line 1, column 4: expected term...").
  static cachecar::Result<std::unique_ptr<JqFilter>> Compile(std::string_view code);
  ~JqFilter();
  JqFilter(const JqFilter&) = delete;
  JqFilter& operator=(const JqFilter&) = delete;

  // True for a filter that only builds an object from paths of its input
  // (`{id, name: .profile.name}`): it runs without the interpreter on inputs whose paths
  // meet only objects and null, with the interpreter's result (jq.rs Projection).
  bool is_projection() const;

  // Runs the filter on `in` (its `filter` field is ignored). Never kBudgetExceeded or
  // kCrashed: those are the sandbox's verdicts.
  Result Run(const Input& in, size_t max_output) const;

 private:
  explicit JqFilter(Jq* jq) : jq_(jq) {}
  Jq* jq_;
};

}  // namespace cachecar::transform
