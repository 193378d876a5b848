#include "kafka/record_check.h"


#include "common/utf8.h"

namespace cachecar::kafka {

const char* RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kNone: return "none";
    case RejectReason::kMissingKey: return "missing_key";
    case RejectReason::kEmptyKey: return "empty_key";
    case RejectReason::kInvalidUtf8Key: return "invalid_utf8_key";
    case RejectReason::kInvalidJson: return "invalid_json";
    case RejectReason::kSchemaViolation: return "schema_violation";
    case RejectReason::kSchemaBudgetExceeded: return "schema_budget_exceeded";
    case RejectReason::kTransformError: return "transform_error";
    case RejectReason::kTransformTooLarge: return "transform_too_large";
    case RejectReason::kTransformBudgetExceeded: return "transform_budget_exceeded";
    case RejectReason::kTransformCrashed: return "transform_crashed";
    case RejectReason::kEntrySchemaViolation: return "entry_schema_violation";
    case RejectReason::kNotRegistryFormat: return "not_registry_format";
    case RejectReason::kUnknownSchemaId: return "unknown_schema_id";
    case RejectReason::kUnsupportedSchema: return "unsupported_schema";
    case RejectReason::kUndecodablePayload: return "undecodable_payload";
  }
  return "unknown";
}

RejectReason CheckRecord(const config::TopicConfig& topic, const schema::JsonSchema* schema,
                         bool has_key, std::string_view key, bool has_value,
                         std::string_view value) {
  if (!has_key) return RejectReason::kMissingKey;
  if (key.empty()) return RejectReason::kEmptyKey;
  if (topic.key_encoding == config::KeyEncoding::kUtf8 && !IsValidUtf8(key)) {
    return RejectReason::kInvalidUtf8Key;
  }
  if (!has_value) return RejectReason::kNone;
  if (schema != nullptr) {
    switch (schema->Check(value)) {
      case schema::Verdict::kValid:
        return RejectReason::kNone;
      case schema::Verdict::kNotJson:
        return RejectReason::kInvalidJson;
      case schema::Verdict::kInvalid:
        return RejectReason::kSchemaViolation;
      case schema::Verdict::kBudgetExceeded:
        return RejectReason::kSchemaBudgetExceeded;
    }
  }
  // The parser the schema path uses, so JSON means one thing with or without a schema.
  if (topic.json_values() && !schema::IsJson(value).ok()) {
    return RejectReason::kInvalidJson;
  }
  return RejectReason::kNone;
}

std::string DescribeReject(RejectReason reason, const schema::JsonSchema* schema,
                           std::string_view value) {
  switch (reason) {
    case RejectReason::kNone:
      return "";
    case RejectReason::kMissingKey:
      return "the record has no key, so it cannot be cached by key";
    case RejectReason::kEmptyKey:
      return "the record's key is empty";
    case RejectReason::kInvalidUtf8Key:
      return "the key is not valid UTF-8 (the topic's key_encoding is utf-8)";
    case RejectReason::kInvalidJson: {
      Status json = schema::IsJson(value);  // says where, never quotes a value
      return "the value is not a JSON document (the topic's value_format is json): " +
             json.message();
    }
    case RejectReason::kSchemaBudgetExceeded: {
      std::vector<schema::Violation> v = schema->Explain(value, 1, true);
      std::string at = v.empty() || v[0].pointer.empty() ? "(root)" : v[0].pointer;
      return "the schema could not decide the value within its budget, at " + at + ": " +
             (v.empty() ? std::string("undecided") : v[0].message) + " [budget]";
    }
    case RejectReason::kTransformError:
    case RejectReason::kTransformTooLarge:
    case RejectReason::kTransformBudgetExceeded:
    case RejectReason::kTransformCrashed:
      return std::string("the topic's transform failed on the record (") +
             RejectReasonName(reason) + ")";
    case RejectReason::kEntrySchemaViolation:  // `schema` and `value`: the entry's
    case RejectReason::kSchemaViolation: {
      constexpr size_t kShown = 3;
      std::vector<schema::Violation> v = schema->Explain(value, kShown + 1, true);
      std::string out;
      for (size_t i = 0; i < v.size() && i < kShown; ++i) {
        if (!out.empty()) out += "; ";
        out += (v[i].pointer.empty() ? std::string("(root)") : v[i].pointer) + ": " +
               v[i].message + " [" + v[i].keyword + "]";
      }
      if (v.size() > kShown) out += "; and more";
      return out;
    }
    case RejectReason::kNotRegistryFormat:
      return "the value is not in the schema registry's wire format (a zero byte, then a "
             "4-byte schema id; the topic's value_format is registry)";
    case RejectReason::kUnknownSchemaId:
      return "the value's schema id is not in the schema registry";
    case RejectReason::kUnsupportedSchema:
      return "the value's schema cannot be used by cachecar";
    case RejectReason::kUndecodablePayload:
      return "the value's payload does not decode with its schema";
  }
  return "";
}

}  // namespace cachecar::kafka
