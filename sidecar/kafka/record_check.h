// What the materializer accepts from a topic. A record that fails is counted by reason,
// logged, and skipped: the key keeps its previous value and the record is never served.
// Pure functions; thread-safe (the schema is immutable once compiled).
#pragma once

#include <string_view>

#include <string>

#include "config/config.h"
#include "schema/json_schema.h"

namespace cachecar::kafka {

enum class RejectReason {
  kNone = 0,
  kMissingKey,    // a record with a null key cannot be cached by key
  kEmptyKey,      // a zero-length key
  kInvalidUtf8Key,
  kInvalidJson,
  kSchemaViolation,  // JSON, but not valid under the topic's schema
  // The schema's backtracking patterns could not decide it within their budget.
  kSchemaBudgetExceeded,
  // The topic's transform (transform/transform.h) failed on the record: an error, more
  // than one value, or a value that is not JSON; a value over max_value_bytes; past its
  // time budget; or its worker died on it (stack or memory limit).
  kTransformError,
  kTransformTooLarge,
  kTransformBudgetExceeded,
  kTransformCrashed,
  // The value to store (after the transform and merge) breaks the topic's entry_schema.
  kEntrySchemaViolation,
  // value_format: registry topics (registry/): the value is not in the wire format; its
  // schema id is not in the registry; or its schema cannot be used here (not JSON Schema,
  // references, or it does not compile).
  kNotRegistryFormat,
  kUnknownSchemaId,
  kUnsupportedSchema,
  // The payload does not decode with its (Avro) schema, or its JSON is over
  // max_value_bytes.
  kUndecodablePayload,
  kLast = kUndecodablePayload,  // keep last: metrics enumerate the reasons up to it
};

// Metric label / log value: "missing_key", "empty_key", "invalid_utf8_key", "invalid_json",
// "schema_violation", "schema_budget_exceeded", "transform_error", "transform_too_large",
// "transform_budget_exceeded", "transform_crashed", "entry_schema_violation",
// "not_registry_format", "unknown_schema_id", "unsupported_schema", "undecodable_payload".
const char* RejectReasonName(RejectReason r);

// Checks a record against its topic's encodings and, when `schema` is not null, its
// schema. A tombstone (no value) is a delete: only its key is checked.
RejectReason CheckRecord(const config::TopicConfig& topic, const schema::JsonSchema* schema,
                         bool has_key, std::string_view key, bool has_value,
                         std::string_view value);

// What exactly is wrong, for the rejected-records list, logs and dead-letter headers.
// Never quotes the record's values (they may be personal data).
std::string DescribeReject(RejectReason reason, const schema::JsonSchema* schema,
                           std::string_view value);

}  // namespace cachecar::kafka
