#include "rpc/write_handler.h"

#include <atomic>
#include <limits>

#include "api/key_rules.h"
#include "registry/wire_format.h"

namespace cachecar::rpc {

namespace {

constexpr size_t kMaxViolations = 100;

// Runs `done` once, whichever of delivery, apply and deadline comes first.
struct OnceDone {
  explicit OnceDone(WriteHandler::Done d) : done(std::move(d)) {}
  bool Claim() { return !claimed.exchange(true); }
  std::atomic<bool> claimed{false};
  std::atomic<uint64_t> timer{0};
  std::atomic<uint64_t> apply{0};  // the wait for the apply, once acknowledged
  WriteHandler::Done done;
};

}  // namespace

WriteHandler::WriteHandler(const config::Config* config, const schema::SchemaSet* schemas,
                           kafka::RecordSink* sink, store::ApplyNotifier* notifier,
                           size_t max_key_bytes, prometheus::Registry* registry)
    : config_(config),
      schemas_(schemas),
      sink_(sink),
      notifier_(notifier),
      max_key_bytes_(max_key_bytes) {
  metrics_.resize(config_->topics.size());
  if (registry == nullptr) return;
  WriteStats stats = WriteStats::Register(*registry);
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30};
  // The stages are short: finer at the low end.
  static const prometheus::Histogram::BucketBoundaries kStageBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1, 5};
  for (size_t i = 0; i < config_->topics.size(); ++i) {
    if (config_->topics[i].read_only) continue;
    const std::string& name = config_->topics[i].name;
    auto stage = [&](const char* s) {
      return &stats.stage_duration->Add({{"topic", name}, {"stage", s}}, kStageBuckets);
    };
    metrics_[i] = {&stats.apply_duration->Add({{"topic", name}}, kBuckets), stage("check"),
                   stage("ack"), stage("apply")};
  }
}

namespace {

void ObserveSince(prometheus::Histogram* h, WriteHandler::Clock::time_point since,
                  WriteHandler::Clock::time_point now) {
  if (h != nullptr) h->Observe(std::chrono::duration<double>(now - since).count());
}

}  // namespace

Result<size_t> WriteHandler::ResolveWritable(const std::string& topic, const std::string& key,
                                             std::vector<FieldViolation>* violations) const {
  if (topic.empty()) {
    violations->push_back({"topic", "required"});
    if (key.empty()) violations->push_back({"key", "required"});
    return Status(Code::kInvalidArgument, "");
  }
  for (size_t i = 0; i < config_->topics.size(); ++i) {
    const config::TopicConfig& t = config_->topics[i];
    if (t.name != topic) continue;
    if (t.is_view()) {
      return Status(Code::kPermissionDenied,
                    topic + " is a view of topic " + config_->topics[*t.view_of].name +
                        ": it follows that topic and takes no writes of its own (write to "
                        "the topic)",
                    "VIEW_READ_ONLY")
          .With("topic", topic);
    }
    if (t.read_only || sink_ == nullptr) {
      return Status(Code::kPermissionDenied,
                    "topic " + topic + " is read-only in this sidecar (set read_only: false "
                    "in its configuration to allow writes)",
                    "TOPIC_READ_ONLY")
          .With("topic", topic);
    }
    std::string problem = api::ValidateKey(t, key, max_key_bytes_);
    if (!problem.empty()) violations->push_back({"key", std::move(problem)});
    return i;
  }
  std::string shown = topic.substr(0, 256);
  return NotFound("topic \"" + shown + "\" is not configured in this sidecar", "TOPIC_NOT_FOUND")
      .With("topic", shown);
}

namespace {

// `json` against `schema`: OK, or INVALID_ARGUMENT naming every problem (at most
// kMaxViolations) under `field` by JSON Pointer.
Status CheckAgainst(const schema::JsonSchema& schema, const std::string& json,
                    const std::string& field, const std::string& topic) {
  schema::Verdict verdict = schema.Check(json);
  if (verdict == schema::Verdict::kValid) return Status::Ok();
  std::vector<schema::Violation> found = schema.Explain(json, kMaxViolations);
  if (verdict == schema::Verdict::kNotJson) {
    return Status(Code::kInvalidArgument, "the " + field + " is not a JSON document",
                  "INVALID_JSON", {{field, found.empty() ? "not JSON" : found[0].message, "json"}});
  }
  if (verdict == schema::Verdict::kBudgetExceeded) {
    std::string at = found.empty() ? "" : found[0].pointer;
    return Status(Code::kInvalidArgument,
                  "the schema of topic " + topic + " could not decide the " + field +
                      " within its budget (nothing was produced)",
                  "SCHEMA_BUDGET_EXCEEDED",
                  {{field + at, found.empty() ? "undecided" : found[0].message, "budget"}})
        .With("topic", topic);
  }
  std::vector<FieldViolation> violations;
  violations.reserve(found.size());
  for (auto& v : found) {
    violations.push_back({field + v.pointer, std::move(v.message), std::move(v.keyword)});
  }
  size_t n = violations.size();
  return Status(Code::kInvalidArgument,
                "the " + field + " breaks the schema of topic " + topic + " (" +
                    std::to_string(n) + (n == 1 ? " violation)" : " violations)"),
                "SCHEMA_VIOLATION", std::move(violations))
      .With("topic", topic);
}

}  // namespace

Status WriteHandler::EncodeRegistry(
    const config::TopicConfig& t, const std::string& subject,
    const Result<std::shared_ptr<const registry::ResolvedSchema>>& latest,
    const std::string& json, const std::string& field, std::string* wire) const {
  if (!latest.ok()) {
    const Status& st = latest.status();
    Code code = st.code() == Code::kNotFound ? Code::kFailedPrecondition : Code::kUnavailable;
    return Status(code,
                  "cannot write to topic " + t.name + " (subject " + subject + "): " +
                      st.message() + " (nothing was produced)",
                  st.reason())
        .With("topic", t.name);
  }
  const registry::ResolvedSchema& schema = **latest;
  if (schema.avro != nullptr || schema.protobuf != nullptr) {
    Result<std::string> encoded =
        schema.avro != nullptr ? schema.avro->Encode(json) : schema.protobuf->Encode(json);
    if (!encoded.ok()) {
      const Status& bad = encoded.status();
      // The codecs name their problems under "value".
      std::vector<FieldViolation> violations = bad.violations();
      for (FieldViolation& v : violations) {
        if (v.field.compare(0, 5, "value") == 0) v.field = field + v.field.substr(5);
      }
      return Status(bad.code(),
                    bad.message() + ": subject " + subject + ", schema id " +
                        std::to_string(schema.id) + " (nothing was produced)",
                    bad.reason(), std::move(violations))
          .With("topic", t.name);
    }
    *wire = registry::EncodeWireValue(schema.id, *encoded);
    return Status::Ok();
  }
  if (schema.json == nullptr) {
    return Status(Code::kFailedPrecondition,
                  "cannot write to topic " + t.name + " (subject " + subject + "): " +
                      schema.unusable + " (nothing was produced)",
                  "REGISTRY_SCHEMA_UNSUPPORTED")
        .With("topic", t.name);
  }
  Status st = CheckAgainst(*schema.json, json, field, t.name);
  if (st.ok()) *wire = registry::EncodeWireValue(schema.id, json);
  return st;
}

Status WriteHandler::CheckValue(size_t topic, const std::string& value,
                                std::string* wire) const {
  const config::TopicConfig& t = config_->topics[topic];
  if (value.size() > t.max_value_bytes) {
    return Status(Code::kInvalidArgument,
                  "the value is " + std::to_string(value.size()) + " bytes; topic " + t.name +
                      " accepts at most " + std::to_string(t.max_value_bytes),
                  "VALUE_TOO_LARGE",
                  {{"value", "at most " + std::to_string(t.max_value_bytes) + " bytes"}})
        .With("max_value_bytes", std::to_string(t.max_value_bytes));
  }
  if (!t.json_values()) return Status::Ok();
  if (t.value_format == config::ValueFormat::kRegistry) {
    if (registry_ == nullptr) {
      return Status(Code::kFailedPrecondition,
                    "topic " + t.name + " has value_format: registry, and no schema registry "
                    "is configured here", "REGISTRY_UNAVAILABLE");
    }
    std::string encoded;
    Status st = EncodeRegistry(t, t.registry_subject, registry_->ForPuts(topic), value,
                               "value", &encoded);
    if (st.ok() && wire != nullptr) *wire = std::move(encoded);
    return st;
  }
  std::shared_ptr<const schema::JsonSchema> schema =
      schemas_ != nullptr ? schemas_->Get(topic) : nullptr;
  if (schema == nullptr) {
    // The parser the schema path uses: JSON means one thing with or without a schema.
    Status json = schema::IsJson(value);
    if (json.ok()) return Status::Ok();
    return Status(Code::kInvalidArgument, "the value is not a JSON document", "INVALID_JSON",
                  {{"value", json.message() + " (topic " + t.name + " is json)", "json"}});
  }
  return CheckAgainst(*schema, value, "value", t.name);
}

Status WriteHandler::EncodeKey(size_t topic, const std::string& key, std::string* wire) const {
  const config::TopicConfig& t = config_->topics[topic];
  if (!t.registry_keys) {
    *wire = key;
    return Status::Ok();
  }
  if (registry_ == nullptr) {
    return Status(Code::kFailedPrecondition,
                  "topic " + t.name + " has key_format: registry, and no schema registry is "
                  "configured here", "REGISTRY_UNAVAILABLE");
  }
  // Its canonical JSON (what the store keeps), so one key is one byte string in Kafka:
  // compaction and the partitioner see the same key however a client spaced it.
  return EncodeRegistry(t, t.registry_key_subject, registry_->ForPutKeys(topic),
                        api::StoredKey(t, key), "key", wire);
}

WriteHandler::Abandon WriteHandler::Put(const v1::PutRequest& req, Clock::time_point deadline,
                                        Done done) const {
  return Write(req.topic(), req.key(), &req.value(), req.ack_only(), deadline,
               std::move(done));
}

WriteHandler::Abandon WriteHandler::Delete(const v1::DeleteRequest& req,
                                           Clock::time_point deadline, Done done) const {
  return Write(req.topic(), req.key(), nullptr, req.ack_only(), deadline, std::move(done));
}

WriteHandler::Abandon WriteHandler::Write(const std::string& topic_name, const std::string& key,
                                          const std::string* value, bool ack_only,
                                          Clock::time_point deadline, Done done) const {
  const auto arrived = Clock::now();
  std::vector<FieldViolation> violations;
  Result<size_t> resolved = ResolveWritable(topic_name, key, &violations);
  if (!resolved.ok() && violations.empty()) {
    done(resolved.status(), {});
    return [] {};
  }
  if (!violations.empty()) {
    done(InvalidArgument("the request is invalid", std::move(violations)), {});
    return [] {};
  }
  std::string wire;  // a registry topic's record: the value in the wire format
  std::string wire_key;
  if (Status st = EncodeKey(*resolved, key, &wire_key); !st.ok()) {
    done(st, {});
    return [] {};
  }
  if (value != nullptr) {
    Status st = CheckValue(*resolved, *value, &wire);
    if (st.ok() && entries_ != nullptr && entries_->Applies(*resolved)) {
      // The entry the record would lead to (transform, merge, entry_schema), as far as
      // can be known before producing it.
      Result<kafka::EntryPreview::Entry> entry = entries_->Preview(*resolved, key, *value);
      if (!entry.ok()) st = entry.status();
    }
    if (!st.ok()) {
      done(st, {});
      return [] {};
    }
  }
  if (!ack_only) {
    // It could be produced but never applied: say so now rather than at the deadline.
    Status failing = notifier_->StoreFailure();
    if (!failing.ok()) {
      done(Status(Code::kResourceExhausted,
                  "the sidecar cannot apply writes now: " + failing.message(),
                  failing.reason().empty() ? "STORE_FULL" : failing.reason())
               .With("topic", topic_name),
           {});
      return [] {};
    }
  }
  return Produce(*resolved, wire_key, value != nullptr && !wire.empty() ? &wire : value,
                 ack_only, deadline, arrived, std::move(done));
}

WriteHandler::Abandon WriteHandler::Produce(size_t topic, const std::string& key,
                                            const std::string* value, bool ack_only,
                                            Clock::time_point deadline, Clock::time_point arrived,
                                            Done done) const {
  auto once = std::make_shared<OnceDone>(std::move(done));
  const std::string& name = config_->topics[topic].name;
  const TopicMetrics metrics = metrics_[topic];
  const auto produced = Clock::now();
  ObserveSince(metrics.check, arrived, produced);
  // The broker may not answer before the deadline: answer for it.
  uint64_t timer = notifier_->WaitForRevision(
      std::numeric_limits<uint64_t>::max(), deadline, [once, name](const Status& st, uint64_t) {
        if (!once->Claim()) return;
        Status out = st.code() == Code::kDeadlineExceeded
                         ? Status(Code::kDeadlineExceeded,
                                  "the broker did not acknowledge the record before the "
                                  "deadline; it may still be written",
                                  "KAFKA_TIMEOUT")
                               .With("topic", name)
                         : st;
        once->done(out, {});
      });
  once->timer = timer;
  // The deadline had passed already, or too many calls wait: produce nothing.
  if (once->claimed) return [] {};
  kafka::ProduceRequest pr;
  pr.topic = name;
  pr.key = key;
  if (value != nullptr) pr.value = *value;
  store::ApplyNotifier* notifier = notifier_;
  sink_->Produce(std::move(pr), [once, notifier, topic, ack_only, deadline, name, arrived,
                                 produced, metrics](const kafka::Delivery& d) {
    const auto acked = Clock::now();
    if (d.status.ok()) ObserveSince(metrics.ack, produced, acked);
    if (!d.status.ok() || ack_only) {
      if (!once->Claim()) return;
      notifier->Cancel(once->timer);
      WriteResult r;
      r.partition = d.partition;
      r.offset = d.offset;
      once->done(d.status, r);
      return;
    }
    // Acknowledged: from here the apply wait, with the same deadline, answers. Without
    // this the timer, which expires in the same sweep, could answer KAFKA_TIMEOUT for a
    // record the broker did acknowledge.
    notifier->Cancel(once->timer);
    if (once->claimed) return;  // the caller left: nothing waits for the apply
    uint64_t apply = notifier->WaitForOffset(
        topic, d.partition, d.offset, deadline,
        [once, d, name, arrived, acked, metrics](const Status& st, uint64_t revision) {
          if (!once->Claim()) return;
          if (st.ok()) {
            const auto applied = Clock::now();
            ObserveSince(metrics.apply, acked, applied);
            ObserveSince(metrics.total, arrived, applied);
          }
          WriteResult r;
          r.partition = d.partition;
          r.offset = d.offset;
          r.applied = st.ok();
          r.revision = st.ok() ? revision : 0;
          Status out = st;
          if (st.code() == Code::kDeadlineExceeded) {
            out = Status(Code::kDeadlineExceeded,
                         "written to partition " + std::to_string(d.partition) + " at offset " +
                             std::to_string(d.offset) +
                             " but not applied locally before the deadline",
                         "NOT_YET_APPLIED");
          }
          if (!out.ok()) {
            out.SetMetadata("topic", name);
            out.SetMetadata("partition", std::to_string(d.partition));
            out.SetMetadata("offset", std::to_string(d.offset));
          }
          once->done(out, r);
        });
    once->apply = apply;
    if (once->claimed) notifier->Cancel(apply);  // abandoned while it was being registered
  });
  return [once, notifier] {
    if (!once->Claim()) return;
    notifier->Cancel(once->timer);
    notifier->Cancel(once->apply);
  };
}

}  // namespace cachecar::rpc
