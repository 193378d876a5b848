#include "kafka/entry_preview.h"

#include "transform/merge_patch.h"

namespace cachecar::kafka {

namespace {

constexpr size_t kMaxViolations = 100;

}  // namespace

EntryPreview::EntryPreview(const config::Config* config, transform::Sandbox* sandbox,
                           const schema::SchemaSet* entry_schemas, const store::Store* store)
    : config_(config), sandbox_(sandbox), entry_schemas_(entry_schemas), store_(store) {
  int next = 0;
  for (const auto& t : config_->topics) filter_of_.push_back(t.transform.empty() ? -1 : next++);
}

bool EntryPreview::Applies(size_t topic) const {
  const config::TopicConfig& t = config_->topics[topic];
  return !t.transform.empty() || t.apply == config::ApplyMode::kMergePatch ||
         !t.entry_schema_path.empty();
}

Result<EntryPreview::Entry> EntryPreview::Preview(
    size_t topic, std::string_view key, std::string_view value,
    std::optional<std::optional<std::string>> current) const {
  const config::TopicConfig& t = config_->topics[topic];
  Entry entry;
  std::string transformed(value);
  if (filter_of_[topic] >= 0 && sandbox_ != nullptr) {
    transform::Input in;
    in.filter = static_cast<uint32_t>(filter_of_[topic]);
    in.key = key;
    in.value = value;
    in.partition = -1;  // not known before the record is produced
    in.offset = -1;
    in.timestamp_ms = -1;
    in.headers_json = "{}";
    Result<std::vector<transform::Result>> r = [&] {
      std::lock_guard<std::mutex> lock(sandbox_mu_);
      return sandbox_->Run({in}, t.max_value_bytes);
    }();
    if (!r.ok()) return r.status();
    const transform::Result& tr = (*r)[0];
    switch (tr.outcome) {
      case transform::Outcome::kValue:
        transformed = tr.text;
        break;
      case transform::Outcome::kDelete:
        entry.kind = Entry::Kind::kDelete;
        return entry;
      case transform::Outcome::kSkip:
        entry.kind = Entry::Kind::kSkip;
        return entry;
      default:
        return Status(Code::kInvalidArgument,
                      "the transform of topic " + t.name + " fails on this value (" +
                          transform::OutcomeName(tr.outcome) + "; nothing was produced)",
                      "TRANSFORM_FAILED",
                      {{"value", tr.text, transform::OutcomeName(tr.outcome)}})
            .With("topic", t.name);
    }
  }
  entry.patched = transformed;
  if (t.apply == config::ApplyMode::kMergePatch) {
    std::optional<std::string> now;
    if (current) {
      now = *current;
    } else if (store_ != nullptr) {
      Result<store::Snapshot> snap = store_->NewSnapshot();
      if (!snap.ok()) return snap.status();
      Result<std::optional<store::Entry>> got = snap->Get(topic, key);
      if (!got.ok()) return got.status();
      if (got->has_value()) now = (*got)->value;
    }
    std::optional<std::string> merged = transform::MergePatch(
        now ? std::optional<std::string_view>(*now) : std::nullopt, transformed);
    if (!merged) {
      entry.kind = Entry::Kind::kDelete;
      return entry;
    }
    entry.value = std::move(*merged);
  } else {
    entry.value = std::move(transformed);
  }
  std::shared_ptr<const schema::JsonSchema> schema =
      entry_schemas_ != nullptr ? entry_schemas_->Get(topic) : nullptr;
  if (schema == nullptr) return entry;
  schema::Verdict verdict = schema->Check(entry.value);
  if (verdict == schema::Verdict::kValid) return entry;
  std::vector<schema::Violation> found = schema->Explain(entry.value, kMaxViolations);
  std::vector<FieldViolation> violations;
  violations.reserve(found.size());
  for (auto& v : found) {
    violations.push_back({"entry" + v.pointer, std::move(v.message), std::move(v.keyword)});
  }
  const size_t n = violations.size();
  return Status(Code::kInvalidArgument,
                "the value the key would hold breaks the entry_schema of topic " + t.name +
                    " (" + std::to_string(n) + (n == 1 ? " violation" : " violations") +
                    "; nothing was produced)",
                "ENTRY_SCHEMA_VIOLATION", std::move(violations))
      .With("topic", t.name);
}

}  // namespace cachecar::kafka
