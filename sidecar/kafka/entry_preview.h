// EntryPreview: what a record's value would make of its key, computed exactly as the
// materializer does (transform, then merge-patch onto the current value, then the topic's
// entry_schema), without producing or storing anything. A Put checks it before producing
// (rpc/write_handler.h); `cachecarctl transform` and `validate` print it.
//
// What it cannot know at write time: a merge is computed onto the value stored now, and
// records produced between this check and the Put's own record (by others, or queued
// before it) may change that value; the materializer checks the entry again when it
// applies the record, and refuses it then under the topic's on_invalid.
//
// Thread-safe: the transform sandbox is used under a lock (one record at a time).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"
#include "schema/schema_set.h"
#include "store/store.h"
#include "transform/sandbox.h"

namespace cachecar::kafka {

class EntryPreview {
 public:
  // None owned; each may be null (no topic has a transform / entry_schema; no store:
  // merges are onto `current` given to Preview, or onto nothing).
  EntryPreview(const config::Config* config, transform::Sandbox* sandbox,
               const schema::SchemaSet* entry_schemas, const store::Store* store);

  // True when the topic's records are more than their value: a transform, merge-patch or
  // an entry_schema.
  bool Applies(size_t topic) const;

  struct Entry {
    enum class Kind { kStore, kDelete, kSkip } kind = Kind::kStore;
    std::string value;     // kStore: the value the key would hold
    std::string patched;   // the transform's value (what merge-patch merges), if any
  };

  // The entry `value` would lead to for `key`. `current`: the key's value to merge onto
  // (instead of the store's). INVALID_ARGUMENT with reason TRANSFORM_FAILED (the filter's
  // error, budget, crash or output size) or ENTRY_SCHEMA_VIOLATION (one violation per
  // schema error, field "entry/<JSON Pointer>"); UNAVAILABLE when no transform worker
  // can be started or the store cannot be read.
  Result<Entry> Preview(size_t topic, std::string_view key, std::string_view value,
                        std::optional<std::optional<std::string>> current = std::nullopt) const;

 private:
  const config::Config* config_;
  transform::Sandbox* sandbox_;
  const schema::SchemaSet* entry_schemas_;
  const store::Store* store_;
  std::vector<int> filter_of_;  // by topic: its filter in the sandbox, -1 none
  mutable std::mutex sandbox_mu_;
};

}  // namespace cachecar::kafka
