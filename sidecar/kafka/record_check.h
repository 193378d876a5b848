// What the materializer accepts from a topic. A record that fails is counted by reason,
// logged, and skipped: the key keeps its previous value and the record is never served.
#pragma once

#include <string_view>

#include "config/config.h"

namespace cachecar::kafka {

enum class RejectReason {
  kNone = 0,
  kMissingKey,    // a record with a null key cannot be cached by key
  kEmptyKey,      // a zero-length key
  kInvalidUtf8Key,
  kInvalidJson,
};

// Metric label / log value: "missing_key", "empty_key", "invalid_utf8_key", "invalid_json".
const char* RejectReasonName(RejectReason r);

// Checks a record against its topic's encodings. A tombstone (no value) is checked only
// for its key.
RejectReason CheckRecord(const config::TopicConfig& topic, bool has_key, std::string_view key,
                         bool has_value, std::string_view value);

}  // namespace cachecar::kafka
