#include "kafka/record_check.h"

#include <nlohmann/json.hpp>

#include "common/utf8.h"

namespace cachecar::kafka {

const char* RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kNone: return "none";
    case RejectReason::kMissingKey: return "missing_key";
    case RejectReason::kEmptyKey: return "empty_key";
    case RejectReason::kInvalidUtf8Key: return "invalid_utf8_key";
    case RejectReason::kInvalidJson: return "invalid_json";
  }
  return "unknown";
}

RejectReason CheckRecord(const config::TopicConfig& topic, bool has_key, std::string_view key,
                         bool has_value, std::string_view value) {
  if (!has_key) return RejectReason::kMissingKey;
  if (key.empty()) return RejectReason::kEmptyKey;
  if (topic.key_encoding == config::KeyEncoding::kUtf8 && !IsValidUtf8(key)) {
    return RejectReason::kInvalidUtf8Key;
  }
  if (has_value && topic.value_format == config::ValueFormat::kJson &&
      !nlohmann::json::accept(value)) {
    return RejectReason::kInvalidJson;
  }
  return RejectReason::kNone;
}

}  // namespace cachecar::kafka
