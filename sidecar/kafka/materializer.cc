#include "kafka/materializer.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/canonical_json.h"
#include "common/log.h"
#include "registry/wire_format.h"
#include "transform/merge_patch.h"

namespace cachecar::kafka {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

InvalidRecords::Options InvalidOptions(const MaterializerOptions& o) {
  InvalidRecords::Options io;
  io.topics = &o.topics;
  io.schemas = o.schemas;
  io.dead_letters = o.dead_letters;
  io.dead_letter_timeout = o.dead_letter_timeout;
  io.rejected = o.rejected;
  io.dead_letter_retry = o.retry_backoff;
  return io;
}

// Records of transformed topics queued before a batch goes to the worker: enough to
// make the round trip cheap, few enough to bound the memory they hold.
constexpr size_t kTransformBatchRecords = 2000;
constexpr size_t kTransformBatchBytes = 8u << 20;

// {"name": "value", ...} of a record's headers (last of a repeated name; null without value).
std::string HeadersJson(const SourceEvent& ev) {
  if (ev.headers.empty()) return "{}";
  nlohmann::json h = nlohmann::json::object();
  for (const auto& [name, value] : ev.headers) {
    h[std::string(name)] = value ? nlohmann::json(std::string(*value)) : nlohmann::json();
  }
  // Header values are bytes: not UTF-8 ones become U+FFFD rather than failing the record.
  return h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// batch_latest_'s key: the topic index, a separator, the record's key.
std::string LatestKey(size_t topic, std::string_view key) {
  std::string k = std::to_string(topic);
  k.push_back('\0');
  k.append(key);
  return k;
}

// A view key that is a plain path (`.email`, `.user.id`, whitespace around it) as the
// projection {k: PATH}; null for any other expression.
std::unique_ptr<transform::JqFilter> PathProjection(const std::string& key) {
  const size_t first = key.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return nullptr;
  const std::string path = key.substr(first, key.find_last_not_of(" \t\r\n") + 1 - first);
  bool ok = !path.empty();
  for (size_t i = 0; ok && i < path.size();) {
    ok = path[i] == '.' && i + 1 < path.size() &&
         (std::isalpha(static_cast<unsigned char>(path[i + 1])) || path[i + 1] == '_');
    for (++i; ok && i < path.size() && path[i] != '.'; ++i) {
      ok = std::isalnum(static_cast<unsigned char>(path[i])) || path[i] == '_';
    }
  }
  if (!ok) return nullptr;
  auto f = transform::JqFilter::Compile("{k: " + path + "}");
  if (!f.ok() || !(*f)->is_projection()) return nullptr;
  return std::move(*f);
}

// The view keys of a path projection's output {"k": X}, when they are certain without
// jq's own printing: a string, null (none), a boolean, an integer exactly held by a
// double. nullopt for anything else (the worker decides).
std::optional<std::vector<std::string>> PathKeys(const transform::Result& r) {
  if (r.outcome != transform::Outcome::kValue) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(r.text, nullptr, false);
  if (!j.is_object() || !j.contains("k")) return std::nullopt;
  const nlohmann::json& k = j["k"];
  if (k.is_string()) return std::vector<std::string>{k.get<std::string>()};
  if (k.is_null()) return std::vector<std::string>{};
  if (k.is_boolean()) return std::vector<std::string>{k.get<bool>() ? "true" : "false"};
  constexpr int64_t kExact = int64_t{1} << 53;
  if (k.is_number_integer() && k.get<int64_t>() > -kExact && k.get<int64_t>() < kExact &&
      (!k.is_number_unsigned() || k.get<uint64_t>() < uint64_t{kExact})) {
    return std::vector<std::string>{std::to_string(k.get<int64_t>())};
  }
  return std::nullopt;
}

RejectReason TransformReject(transform::Outcome o) {
  switch (o) {
    case transform::Outcome::kTooLarge: return RejectReason::kTransformTooLarge;
    case transform::Outcome::kBudgetExceeded: return RejectReason::kTransformBudgetExceeded;
    case transform::Outcome::kCrashed: return RejectReason::kTransformCrashed;
    default: return RejectReason::kTransformError;
  }
}

}  // namespace

std::vector<std::string> TransformFilters(const std::vector<config::TopicConfig>& topics) {
  std::vector<std::string> filters;
  for (const auto& t : topics) {
    if (!t.transform.empty()) filters.push_back(t.transform);
  }
  return filters;
}

std::string TopicDefinition(const config::TopicConfig& topic,
                            const std::vector<const config::TopicConfig*>& views) {
  std::string d = std::string("apply=") + config::ApplyModeName(topic.apply) +
                  "\ntransform=" + topic.transform;
  // Only where a registry topic keeps its records' original bytes: turning that on or off
  // makes the topic again, so every entry has them or none does.
  if (topic.value_format == config::ValueFormat::kRegistry && topic.keep_original) {
    d += "\noriginal=kept";
  }
  for (const config::TopicConfig* v : views) {
    d += "\nview=" + std::to_string(v->name.size()) + ":" + v->name + "=" + v->view_key;
  }
  return d;
}

std::vector<std::string> ViewKeyFilters(const config::Config& config) {
  std::vector<std::string> filters;
  for (const auto& t : config.topics) {
    if (!t.is_view()) continue;
    // Every output a key: strings as they are, numbers and booleans as their JSON text,
    // null none; anything else fails the entry's keys. At most kMaxViewKeysPerEntry + 1
    // outputs are taken, so an endless generator ends. The expression is on lines of its
    // own, so a comment at its end cannot reach the rest.
    filters.push_back("[limit(" + std::to_string(kMaxViewKeysPerEntry + 1) + "; (\n" +
                      t.view_key +
                      "\n) | if type == \"string\" then . "
                      "elif type == \"number\" or type == \"boolean\" then tojson "
                      "elif type == \"null\" then empty "
                      "else error(\"a view key must be a string, number, boolean or null, not \" "
                      "+ type) end)]");
  }
  return filters;
}

namespace {

// A sandbox for `filters`; compile errors named by their place in the config: topics[i]'s
// `field` at `place`, `shown` the filters as the user wrote them (compiled again, in a
// worker of their own, only when one of `filters` does not compile).
Result<std::unique_ptr<transform::Sandbox>> StartNamedSandbox(
    std::vector<std::string> filters, const std::vector<std::string>& shown,
    const std::vector<std::pair<std::string, std::string>>& field_place,
    const transform::SandboxOptions& so) {
  auto sandbox = transform::Sandbox::Start(std::move(filters), so);
  if (sandbox.ok() || sandbox.status().code() != Code::kInvalidArgument) return sandbox;
  if (!shown.empty()) {
    auto plain = transform::Sandbox::Start(shown, so);
    if (!plain.ok() && plain.status().code() == Code::kInvalidArgument) sandbox = std::move(plain);
  }
  std::vector<FieldViolation> violations;
  std::string message;
  for (const FieldViolation& v : sandbox.status().violations()) {
    const size_t i = std::stoul(v.field.substr(v.field.find('[') + 1));
    const auto& [field, place] = field_place.at(i);
    if (!message.empty()) message += "\n";
    std::string where = place;
    where += ": ";
    message += where + field + ": " + v.description;
    violations.push_back({field, where + v.description});
  }
  return Status(Code::kInvalidArgument, message, "TRANSFORM_INVALID", std::move(violations));
}

transform::SandboxOptions SandboxOptionsOf(const config::Config& config,
                                           prometheus::Registry* registry,
                                           std::string worker_path) {
  transform::SandboxOptions so;
  so.worker_path = std::move(worker_path);
  so.max_memory_bytes = config.transforms.max_memory_bytes;
  so.record_budget = milliseconds(config.transforms.record_budget_ms);
  so.registry = registry;
  return so;
}

}  // namespace

Result<std::unique_ptr<transform::Sandbox>> StartViewKeys(const config::Config& config,
                                                          prometheus::Registry* registry,
                                                          std::string worker_path) {
  std::vector<std::string> filters = ViewKeyFilters(config);
  if (filters.empty()) return std::unique_ptr<transform::Sandbox>();
  std::vector<std::string> shown;
  std::vector<std::pair<std::string, std::string>> field_place;
  for (const auto& t : config.topics) {
    if (!t.is_view()) continue;
    const config::TopicConfig& source = config.topics[*t.view_of];
    size_t j = 0;
    while (j < source.views.size() && config.topics[source.views[j]].name != t.name) ++j;
    field_place.emplace_back(
        "topics[" + std::to_string(*t.view_of) + "].views[" + std::to_string(j) + "].key",
        t.view_key_place);
    shown.push_back(t.view_key);
  }
  return StartNamedSandbox(std::move(filters), shown, field_place,
                           SandboxOptionsOf(config, registry, std::move(worker_path)));
}

Result<std::unique_ptr<transform::Sandbox>> StartTransforms(const config::Config& config,
                                                            prometheus::Registry* registry,
                                                            std::string worker_path) {
  std::vector<std::string> filters = TransformFilters(config.topics);
  if (filters.empty()) return std::unique_ptr<transform::Sandbox>();
  std::vector<std::pair<std::string, std::string>> field_place;
  for (size_t t = 0; t < config.topics.size(); ++t) {
    if (config.topics[t].transform.empty()) continue;
    field_place.emplace_back("topics[" + std::to_string(t) + "].transform",
                             config.topics[t].transform_place);
  }
  return StartNamedSandbox(std::move(filters), {}, field_place,
                           SandboxOptionsOf(config, registry, std::move(worker_path)));
}

Materializer::Materializer(MaterializerOptions options, store::Store* store,
                           RecordSource* source, health::CatchUpTracker* tracker,
                           prometheus::Registry* registry)
    : options_(std::move(options)),
      store_(store),
      source_(source),
      tracker_(tracker),
      stats_(MaterializerStats::Register(*registry)),
      partitions_(options_.topics.size()),
      invalid_(InvalidOptions(options_), &stats_),
      offsets_(source, options_.commit_interval, options_.group_id, &stats_) {
  // Every series whose labels are known now exists at 0 from the start, so that an alert
  // on one needs no `or vector(0)`. (Partitions' series appear when they are assigned.)
  for (const auto& t : options_.topics) {
    consumed_.push_back(&stats_.consumed->Add({{"topic", t.name}}));
    applied_.push_back(&stats_.applied->Add({{"topic", t.name}}));
    stats_.serving_stored->Add({{"topic", t.name}}).Set(0);
    for (int r = static_cast<int>(RejectReason::kNone) + 1;
         r <= static_cast<int>(RejectReason::kLast); ++r) {
      const bool transform_reason = r >= static_cast<int>(RejectReason::kTransformError) &&
                                    r <= static_cast<int>(RejectReason::kTransformCrashed);
      if (transform_reason && t.transform.empty()) continue;
      if (RejectReason(r) == RejectReason::kEntrySchemaViolation && t.entry_schema_path.empty()) {
        continue;
      }
      stats_.rejected->Add({{"topic", t.name}, {"reason", RejectReasonName(RejectReason(r))}});
    }
    filter_of_.push_back(t.transform.empty() ? -1 : filter_count_++);
    if (!t.transform.empty()) stats_.transform_skipped->Add({{"topic", t.name}});
    for (const char* reason : {"offset_out_of_range", "topic_deleted", "definition_changed"}) {
      stats_.rebuilds->Add({{"topic", t.name}, {"reason", reason}});
    }
    if (t.retain_beyond_log) stats_.retention_skipped->Add({{"topic", t.name}});
    if (t.on_invalid == config::InvalidPolicy::kDeadLetter) {
      for (const char* result : {"ok", "failed"}) {
        stats_.dead_letters->Add({{"topic", t.name}, {"result", result}});
      }
    }
  }
  for (const char* reason : {"KAFKA_UNAVAILABLE", "KAFKA_TOPIC_NOT_FOUND", "KAFKA_ERROR"}) {
    stats_.consumer_errors->Add({{"reason", reason}});
  }
  for (const char* reason : {"DISK_FULL", "STORE_FULL", "STORE_RESIZE_WAITING"}) {
    stats_.write_failing->Add({{"reason", reason}});
  }
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1, 5};
  commit_duration_ = &stats_.commit_duration->Add({}, kBuckets);
  batch_delay_ = &stats_.batch_delay->Add({}, kBuckets);
  if (filter_count_ > 0) transform_duration_ = &stats_.transform_duration->Add({}, kBuckets);
  views_of_.resize(options_.topics.size());
  for (size_t v = 0; v < options_.views.size(); ++v) {
    const config::TopicConfig& view = options_.views[v];
    if (view.view_of && *view.view_of < views_of_.size()) views_of_[*view.view_of].push_back(v);
    view_paths_.push_back(PathProjection(view.view_key));
    auto& errors = view_key_errors_.emplace_back();
    for (const char* reason :
         {"error", "budget_exceeded", "crashed", "too_many_keys", "too_many_entries"}) {
      errors[reason] = &stats_.view_key_errors->Add({{"view", view.name}, {"reason", reason}});
    }
  }
  if (!options_.views.empty()) view_keys_duration_ = &stats_.view_keys_duration->Add({}, kBuckets);
  counters_.resize(options_.topics.size());
  stats_.revision->Set(static_cast<double>(store_->revision()));
}

Materializer::~Materializer() { Stop(); }

void Materializer::Start() {
  Beat();
  thread_ = std::thread([this] { Run(); });
}

std::chrono::steady_clock::duration Materializer::SinceProgress() const {
  int64_t beat = heartbeat_.load(std::memory_order_relaxed);
  if (beat == 0) return std::chrono::steady_clock::duration::zero();
  return steady_clock::now() - steady_clock::time_point(steady_clock::duration(beat));
}

void Materializer::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<TopicCounters> Materializer::Counters() const {
  std::lock_guard<std::mutex> lock(counters_mu_);
  return counters_;
}

bool Materializer::WaitFor(milliseconds d) {
  std::unique_lock<std::mutex> lock(stop_mu_);
  stop_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
  return !stopping_;
}

Materializer::PartitionMetrics& Materializer::MetricsFor(size_t topic, int32_t partition) {
  auto key = std::make_pair(topic, partition);
  auto it = partition_metrics_.find(key);
  if (it != partition_metrics_.end()) return it->second;
  std::map<std::string, std::string> labels = {{"topic", options_.topics[topic].name},
                                               {"partition", std::to_string(partition)}};
  PartitionMetrics m{&stats_.applied_offset->Add(labels), &stats_.end_offset->Add(labels),
                     &stats_.lag->Add(labels), &stats_.start_offset->Add(labels),
                     &stats_.lag_seconds->Add(labels)};
  stats_.halted->Add(labels);  // 0 until on_invalid: fail halts it (kept if it already has)
  return partition_metrics_.emplace(key, m).first->second;
}

void Materializer::Run() {
  run_started_ = steady_clock::now();
  auto last_setup = steady_clock::now() - options_.retry_backoff;
  while (!stopping_) {
    Beat();
    if (!partitions_.pending().empty() &&
        steady_clock::now() - last_setup >= options_.retry_backoff) {
      SetUpPendingTopics();
      last_setup = steady_clock::now();
    }
    milliseconds wait = options_.idle_poll;
    if (!partitions_.assigned_any()) {
      // Nothing assigned yet: wait for the next setup attempt.
      if (!WaitFor(options_.retry_backoff)) break;
      continue;
    }
    const bool transforming = !queued_.empty() || in_flight_ != nullptr;
    if (!batch_.empty() || transforming) wait = milliseconds(0);
    SourceEvent ev;
    if (source_->Poll(wait, &ev)) {
      Handle(ev);
      if (queued_.size() >= kTransformBatchRecords || queued_bytes_ >= kTransformBatchBytes) {
        AdvanceTransforms();
      }
    } else if (!batch_.empty() || transforming) {
      CommitWithRetry();  // the source is idle: make what we have readable now
    }
    // Queued and in-flight transforms need not be in this commit: positions move only as
    // records are applied.
    if (!batch_.empty() &&
        (batch_.mutations.size() >= options_.batch_max_records ||
         batch_.bytes >= options_.batch_max_bytes ||
         steady_clock::now() - batch_started_ >= options_.batch_max_delay)) {
      CommitWithRetry(/*flush_transforms=*/false);
    }
    if (steady_clock::now() - last_refresh_ >= milliseconds(500)) RefreshEndOffsets();
    if (steady_clock::now() - last_metadata_refresh_ >= options_.metadata_refresh) {
      RefreshPartitions();
    }
    if (invalid_.any_halted() &&
        steady_clock::now() - last_halt_check_ >= options_.retry_backoff) {
      RetryHalted();
    }
    if (auto now = steady_clock::now(); offsets_.Due(now)) {
      offsets_.Report(now, partitions_.Durable(batch_.positions));
    }
    RecordCaughtUpIfDue();
  }
  FlushTransforms();
  NoteCaughtUp();  // a clean stop records how current the topics were
  if (!batch_.empty()) {
    Status st = Commit();
    if (!st.ok()) log::Error("final commit failed", {{"error", st.ToString()}});
  }
}

void Materializer::Reassign() {
  // Re-assigning restarts every partition at the given offset, so first make the
  // in-memory positions durable and hand the consumer exactly those.
  CommitWithRetry();
  Status st = source_->Assign(partitions_.Assignments());
  if (!st.ok()) log::Error("assign failed", {{"error", st.ToString()}});
  for (const auto& key : invalid_.Halted()) source_->Pause(key.first, key.second);
}

void Materializer::HaltPartition(const SourceEvent& ev, InvalidRecords::Halting halting,
                                 std::shared_ptr<const schema::JsonSchema> schema) {
  const std::string& name = options_.topics[ev.topic].name;
  const std::string why = halting.reason;
  invalid_.Halt(ev, std::move(halting), std::move(schema));
  Status st = source_->Pause(ev.topic, ev.partition);
  if (!st.ok()) log::Warn("pause failed", {{"topic", name}, {"error", st.ToString()}});
  std::string reason = "topic " + name + " partition " + std::to_string(ev.partition) +
                       " halted at offset " + std::to_string(ev.offset) + ": " + why;
  ForEachObserver([&](store::CommitObserver* o) {
    o->OnPartitionHalted(ev.topic, ev.partition, reason);
  });
}

void Materializer::RetryHalted() {
  const auto now = steady_clock::now();
  last_halt_check_ = now;
  std::vector<store::PartitionKey> lifted = invalid_.LiftReplaced();
  if (options_.registry != nullptr) RetryRegistryWaits(&lifted);
  for (const auto& [key, offset] : invalid_.RetryDeadLetters(now)) {
    // The broker took the dead letter at last: the record is consumed.
    if (batch_.empty()) batch_started_ = now;
    partitions_.SetPosition(key, offset + 1);
    batch_.positions[key] = offset + 1;
    rejected_.push_back({key, offset, "dead-lettered"});
    consumed_[key.first]->Increment();
    {
      std::lock_guard<std::mutex> lock(counters_mu_);
      ++counters_[key.first].consumed;
      ++counters_[key.first].rejected;
    }
    lifted.push_back(key);
  }
  if (lifted.empty()) return;
  for (const auto& key : lifted) {
    ForEachObserver(
        [&](store::CommitObserver* o) { o->OnPartitionHalted(key.first, key.second, ""); });
  }
  Reassign();
}

void Materializer::Handle(const SourceEvent& ev) {
  if (ev.kind == SourceEvent::Kind::kError && ev.topic >= options_.topics.size()) {
    stats_.consumer_errors->Add({{"reason", ev.error.reason()}}).Increment();
    log::Warn("kafka consumer error", {{"error", ev.error.message()}});
    if (ev.error.reason() == "KAFKA_TOPIC_NOT_FOUND") {
      for (size_t t : partitions_.AssignedTopics()) CheckTopicExists(t);
    }
    return;
  }
  if (ev.topic >= options_.topics.size()) return;
  const config::TopicConfig& topic = options_.topics[ev.topic];
  auto key = std::make_pair(ev.topic, ev.partition);
  if (ev.kind != SourceEvent::Kind::kError && invalid_.IsHalted(key)) return;  // fetched before Pause
  if (ev.kind == SourceEvent::Kind::kRecord && filter_of_[ev.topic] >= 0) {
    if (transforms_abandoned_) return;  // stopping; read again at the next start
    // Queued whole (tombstones and bad records too), so the topic's records keep their order.
    if (batch_.empty() && queued_.empty()) batch_started_ = steady_clock::now();
    Queued q{ev, std::string(ev.key), std::string(ev.value), HeadersJson(ev)};
    q.ev.headers.clear();  // their views die at the next Poll; headers_json has them
    queued_bytes_ += q.key.size() + q.value.size() + q.headers_json.size();
    queued_.push_back(std::move(q));
    return;
  }
  // Anything else may move positions: the queued records go first.
  FlushTransforms();
  switch (ev.kind) {
    case SourceEvent::Kind::kError:
      stats_.consumer_errors->Add({{"reason", ev.error.reason()}}).Increment();
      log::Warn("kafka consumer error", {{"topic", topic.name}, {"error", ev.error.message()}});
      if (ev.error.reason() == "KAFKA_TOPIC_NOT_FOUND") CheckTopicExists(ev.topic);
      return;
    case SourceEvent::Kind::kOffsetOutOfRange: {
      if (partitions_.pending().count(ev.topic)) return;  // being rebuilt already
      std::optional<int64_t> position = partitions_.Position(key);
      if (topic.retain_beyond_log && position && KeepBeyondLog(key, *position)) return;
      RebuildTopic(ev.topic, "offset_out_of_range",
                   "partition " + std::to_string(ev.partition) + " position " +
                       (position ? std::to_string(*position) : "?") +
                       " is not in the log any more (" + ev.error.message() + ")");
      return;
    }
    case SourceEvent::Kind::kPartitionEnd: {
      // Everything below ev.offset has been delivered: transaction markers and aborted
      // records at the tail count as consumed.
      std::optional<int64_t> position = partitions_.Position(key);
      if (position && *position >= ev.offset) return;
      partitions_.SetPosition(key, ev.offset);
      if (batch_.empty()) batch_started_ = steady_clock::now();
      batch_.positions[key] = ev.offset;
      return;
    }
    case SourceEvent::Kind::kRecord:
      break;
  }
  if (topic.registry_keys && ev.has_key && !ev.key.empty()) {
    std::string key;
    if (!DecodeRegistryKey(ev, &key)) return;
    SourceEvent decoded = ev;  // the record as if its key were the decoded one
    decoded.key = key;
    HandleDecodedKey(decoded);
    return;
  }
  HandleDecodedKey(ev);
}

void Materializer::HandleDecodedKey(const SourceEvent& ev) {
  const config::TopicConfig& topic = options_.topics[ev.topic];
  if (topic.value_format == config::ValueFormat::kRegistry) {
    HandleRegistryRecord(ev);
    return;
  }
  std::shared_ptr<const schema::JsonSchema> schema =
      options_.schemas != nullptr ? options_.schemas->Get(ev.topic) : nullptr;
  HandleRecord(ev, CheckRecord(topic, schema.get(), ev.has_key, ev.key, ev.has_value, ev.value),
               nullptr);
}

void Materializer::HandleRegistryRecord(const SourceEvent& ev) {
  const config::TopicConfig& topic = options_.topics[ev.topic];
  RejectReason keys = CheckRecord(topic, nullptr, ev.has_key, ev.key, false, {});
  if (keys != RejectReason::kNone || !ev.has_value) {  // a bad key, or a tombstone
    HandleRecord(ev, keys, nullptr);
    return;
  }
  Decoded d;
  std::optional<registry::WireValue> wire = registry::ParseWireValue(ev.value);
  if (!wire) {
    HandleRecord(ev, RejectReason::kNotRegistryFormat, nullptr, &d);
    return;
  }
  d.schema_id = wire->schema_id;
  auto id = [&] { return std::to_string(wire->schema_id); };  // for messages only
  std::shared_ptr<const registry::ResolvedSchema> resolved =
      RegistrySchemaFor(ev, wire->schema_id, "value");
  if (resolved == nullptr) return;
  const registry::ResolvedSchema& rs = *resolved;
  d.payload = wire->payload;
  if (rs.avro != nullptr || rs.protobuf != nullptr) {
    Result<std::string> json = rs.avro != nullptr
                                   ? rs.avro->Decode(wire->payload, topic.max_value_bytes)
                                   : rs.protobuf->Decode(wire->payload, topic.max_value_bytes);
    if (!json.ok()) {
      d.detail = "schema id " + id() + ": " + json.status().message();
      HandleRecord(ev, RejectReason::kUndecodablePayload, nullptr, &d);
      return;
    }
    d.json = std::move(*json);
    d.payload = d.json;
    // The key was checked above, and the decoders write JSON: nothing left to check.
    HandleRecord(ev, RejectReason::kNone, nullptr, &d);
    return;
  }
  if (rs.json == nullptr) {
    d.detail = rs.unusable;
    HandleRecord(ev, RejectReason::kUnsupportedSchema, nullptr, &d);
    return;
  }
  d.schema = rs.json;
  HandleRecord(ev, CheckRecord(topic, rs.json.get(), true, ev.key, true, d.payload), nullptr,
               &d);
}

// The longest decoded key (the API's longest key: a longer one could not be asked for).
constexpr size_t kMaxRegistryKeyBytes = 1 << 20;

std::shared_ptr<const registry::ResolvedSchema> Materializer::RegistrySchemaFor(
    const SourceEvent& ev, int32_t id, const char* part) {
  const config::TopicConfig& topic = options_.topics[ev.topic];
  Result<std::shared_ptr<const registry::ResolvedSchema>> resolved =
      options_.registry->ForRecord(ev.topic, id);
  if (resolved.ok()) return *resolved;
  const std::string of = std::string(std::strcmp(part, "key") == 0 ? "the key's " : "") +
                         "schema id " + std::to_string(id);
  if (resolved.status().code() == Code::kNotFound) {
    Decoded d;
    d.detail = of + " is not in the schema registry: " + resolved.status().message();
    HandleRecord(ev, RejectReason::kUnknownSchemaId, nullptr, &d);
    return nullptr;
  }
  // Not the record's fault: the partition waits here (not ready, saying why) and goes on
  // once the registry answers. A record is never skipped for the registry's absence.
  InvalidRecords::Halting halting;
  halting.reason = "waiting for the schema registry to give " + of + ": " +
                   resolved.status().message();
  halting.registry_schema_id = id;
  log::Warn("schema registry unavailable; the partition waits for it",
            {{"topic", topic.name}, {"partition", static_cast<int64_t>(ev.partition)},
             {"offset", ev.offset}, {"schema_id", static_cast<int64_t>(id)}, {"of", part},
             {"error", resolved.status().message()}});
  HaltPartition(ev, std::move(halting), nullptr);
  return nullptr;
}

bool Materializer::DecodeRegistryKey(const SourceEvent& ev, std::string* key) {
  Decoded d;
  auto reject = [&](RejectReason reason, std::string detail) {
    d.detail = "key: " + std::move(detail);
    HandleRecord(ev, reason, nullptr, &d);
    return false;
  };
  std::optional<registry::WireValue> wire = registry::ParseWireValue(ev.key);
  if (!wire) {
    return reject(RejectReason::kNotRegistryFormat,
                  "not the schema registry wire format (a zero byte, then a 4-byte schema id)");
  }
  std::shared_ptr<const registry::ResolvedSchema> rs =
      RegistrySchemaFor(ev, wire->schema_id, "key");
  if (rs == nullptr) return false;
  const std::string id = std::to_string(wire->schema_id);
  std::string json;
  if (rs->avro != nullptr || rs->protobuf != nullptr) {
    Result<std::string> decoded =
        rs->avro != nullptr ? rs->avro->Decode(wire->payload, kMaxRegistryKeyBytes)
                            : rs->protobuf->Decode(wire->payload, kMaxRegistryKeyBytes);
    if (!decoded.ok()) {
      return reject(RejectReason::kUndecodablePayload,
                    "schema id " + id + ": " + decoded.status().message());
    }
    json = std::move(*decoded);
  } else if (rs->json != nullptr) {
    switch (rs->json->Check(wire->payload)) {
      case schema::Verdict::kValid:
        break;
      case schema::Verdict::kNotJson:
        return reject(RejectReason::kInvalidJson, "schema id " + id + ": not JSON");
      default:
        return reject(RejectReason::kSchemaViolation,
                      "schema id " + id + ": " +
                          DescribeReject(RejectReason::kSchemaViolation, rs->json.get(),
                                         wire->payload));
    }
    json.assign(wire->payload);
  } else {
    return reject(RejectReason::kUnsupportedSchema, rs->unusable);
  }
  // One form for a key however its producer spaced or ordered it: the form Get looks up.
  std::optional<std::string> canonical = CanonicalJson(json);
  if (!canonical || canonical->empty() || canonical->size() > kMaxRegistryKeyBytes) {
    return reject(RejectReason::kUndecodablePayload,
                  "schema id " + id + ": the decoded key is not JSON of at most " +
                      std::to_string(kMaxRegistryKeyBytes) + " bytes, nested at most " +
                      std::to_string(kMaxCanonicalJsonDepth) + " deep");
  }
  *key = std::move(*canonical);
  return true;
}

void Materializer::RetryRegistryWaits(std::vector<store::PartitionKey>* lifted) {
  const auto now = steady_clock::now();
  for (const auto& [key, id] : invalid_.DueRegistryWaits(now)) {
    Result<std::shared_ptr<const registry::ResolvedSchema>> r =
        options_.registry->ForRecord(key.first, id);
    if (r.ok() || r.status().code() == Code::kNotFound) {
      invalid_.LiftRegistryWait(key);
      lifted->push_back(key);  // the record is read again, and decoded or rejected
    } else {
      invalid_.RegistryStillAway(key, now);
    }
  }
}

void Materializer::FlushTransforms() {
  if (transforms_abandoned_) return;
  if (!queued_.empty()) AdvanceTransforms();
  if (in_flight_ == nullptr) return;
  std::unique_ptr<TransformBatch> batch = std::move(in_flight_);
  std::vector<transform::Result> results;
  if (CollectTransforms(*batch, &results)) HandleTransformed(*batch, results);
}

void Materializer::AdvanceTransforms() {
  if (transforms_abandoned_) return;
  // The batch in flight comes back first; the queued one goes out before the first is
  // applied, so the worker filters while this thread applies.
  std::unique_ptr<TransformBatch> done = std::move(in_flight_);
  std::vector<transform::Result> results;
  if (done != nullptr && !CollectTransforms(*done, &results)) return;  // stopping
  auto next = std::make_unique<TransformBatch>();
  next->records = std::move(queued_);
  queued_.clear();
  queued_bytes_ = 0;
  // Check each record first (key, JSON, the message's schema); only the good ones with a
  // value go to the worker. The views point into `next`, which stays where it is.
  TransformBatch& b = *next;
  b.reasons.resize(b.records.size());
  b.input_of.assign(b.records.size(), SIZE_MAX);
  for (size_t i = 0; i < b.records.size(); ++i) {
    Queued& q = b.records[i];
    q.ev.key = q.key;
    q.ev.value = q.value;
    const config::TopicConfig& topic = options_.topics[q.ev.topic];
    std::shared_ptr<const schema::JsonSchema> schema =
        options_.schemas != nullptr ? options_.schemas->Get(q.ev.topic) : nullptr;
    b.reasons[i] = CheckRecord(topic, schema.get(), q.ev.has_key, q.ev.key, q.ev.has_value,
                               q.ev.value);
    if (b.reasons[i] != RejectReason::kNone || !q.ev.has_value) continue;
    transform::Input in;
    in.filter = static_cast<uint32_t>(filter_of_[q.ev.topic]);
    in.key = q.key;
    in.value = q.value;
    in.partition = q.ev.partition;
    in.offset = q.ev.offset;
    in.timestamp_ms = q.ev.timestamp_ms;
    in.headers_json = q.headers_json;
    b.input_of[i] = b.inputs.size();
    b.inputs.push_back(in);
    b.max_output = std::max<size_t>(b.max_output, topic.max_value_bytes);
  }
  b.submitted = steady_clock::now();
  options_.transforms->Submit(&b.inputs, b.max_output);
  in_flight_ = std::move(next);
  if (done != nullptr) HandleTransformed(*done, results);
}

bool Materializer::CollectTransforms(const TransformBatch& batch,
                                     std::vector<transform::Result>* results) {
  for (;;) {
    auto r = options_.transforms->Collect();
    if (r.ok()) {
      transform_duration_->Observe(
          std::chrono::duration<double>(steady_clock::now() - batch.submitted).count());
      *results = std::move(*r);
      return true;
    }
    // No worker can be started (out of processes or memory): nothing is lost, the records
    // wait; the heartbeat says the writer is alive and retrying.
    log::Error("transform worker cannot be started; retrying", {{"error", r.status().ToString()}});
    if (!WaitFor(options_.retry_backoff)) {
      // Stopping: none of the records waiting for a transform may be applied now (later
      // ones would move positions past these); all are read again at the next start.
      transforms_abandoned_ = true;
      queued_.clear();
      in_flight_.reset();
      return false;
    }
    Beat();
  }
}

void Materializer::HandleTransformed(TransformBatch& batch,
                                     const std::vector<transform::Result>& results) {
  for (size_t i = 0; i < batch.records.size(); ++i) {
    const size_t in = batch.input_of[i];
    HandleRecord(batch.records[i].ev, batch.reasons[i], in == SIZE_MAX ? nullptr : &results[in]);
  }
}

std::optional<std::string> Materializer::MergeOntoCurrent(size_t topic, std::string_view key,
                                                          std::string_view patch) {
  auto latest = batch_latest_.find(LatestKey(topic, key));
  if (latest != batch_latest_.end()) {
    const auto& m = batch_.mutations[latest->second];
    return transform::MergePatch(m.value ? std::optional<std::string_view>(*m.value)
                                         : std::nullopt,
                                 patch);
  }
  if (!merge_snapshot_) {
    auto snap = store_->NewSnapshot();
    if (snap.ok()) merge_snapshot_.emplace(std::move(*snap));
  }
  std::optional<std::string_view> current;
  if (merge_snapshot_) {
    auto got = merge_snapshot_->GetView(topic, key);
    if (got.ok() && got->has_value()) {
      current = (*got)->value;
    } else if (!got.ok()) {
      log::Error("merge-patch: the key's stored value cannot be read; merging onto null",
                 {{"topic", options_.topics[topic].name}, {"error", got.status().ToString()}});
    }
  }
  return transform::MergePatch(current, patch);
}

void Materializer::HandleRecord(const SourceEvent& ev, RejectReason reason,
                                const transform::Result* tr, const Decoded* decoded) {
  const config::TopicConfig& topic = options_.topics[ev.topic];
  auto key = std::make_pair(ev.topic, ev.partition);
  if (invalid_.IsHalted(key)) return;  // queued behind a record that halted the partition
  std::shared_ptr<const schema::JsonSchema> schema =
      decoded != nullptr      ? decoded->schema
      : options_.schemas != nullptr ? options_.schemas->Get(ev.topic)
                                    : nullptr;
  std::string detail = decoded != nullptr ? decoded->detail : std::string();
  bool has_value = ev.has_value;
  // A registry record's dead letter and listing keep its original bytes (`ev`).
  std::string_view value = decoded != nullptr ? decoded->payload : ev.value;
  bool skip = false;
  if (reason == RejectReason::kNone && tr != nullptr) {
    switch (tr->outcome) {
      case transform::Outcome::kValue:
        value = tr->text;  // JSON as cachecar's parser reads it: the worker checked
        break;
      case transform::Outcome::kDelete:
        has_value = false;
        value = {};
        break;
      case transform::Outcome::kSkip:
        skip = true;
        break;
      default:
        reason = TransformReject(tr->outcome);
        detail = std::string(transform::OutcomeName(tr->outcome)) + ": " + tr->text;
        break;
    }
  }
  // The value to store: the record's (or its transform's), or merged onto the current one.
  std::optional<std::string> stored;
  if (reason == RejectReason::kNone && !skip && has_value) {
    if (topic.apply == config::ApplyMode::kMergePatch) {
      stored = MergeOntoCurrent(ev.topic, ev.key, value);
    } else {
      stored.emplace(value);
    }
    std::shared_ptr<const schema::JsonSchema> entry =
        stored && options_.entry_schemas != nullptr ? options_.entry_schemas->Get(ev.topic)
                                                    : nullptr;
    if (entry != nullptr && entry->Check(*stored) != schema::Verdict::kValid) {
      reason = RejectReason::kEntrySchemaViolation;
      detail = "the value to store breaks the topic's entry_schema: " +
               DescribeReject(RejectReason::kSchemaViolation, entry.get(), *stored);
    }
  }
  if (reason != RejectReason::kNone && detail.empty() && decoded != nullptr) {
    detail = DescribeReject(reason, schema.get(), value);  // of the payload, not the bytes
  }
  if (reason != RejectReason::kNone) {
    InvalidRecords::Halting halting;
    if (invalid_.Handle(ev, reason, schema, &halting, detail) == InvalidRecords::Verdict::kHalt) {
      HaltPartition(ev, std::move(halting), schema);
      return;
    }
    rejected_.push_back({key, ev.offset, RejectReasonName(reason)});
    std::lock_guard<std::mutex> lock(counters_mu_);
    ++counters_[ev.topic].consumed;
    ++counters_[ev.topic].rejected;
  }
  if (batch_.empty()) batch_started_ = steady_clock::now();
  partitions_.SetPosition(key, ev.offset + 1);
  batch_.positions[key] = ev.offset + 1;
  consumed_[ev.topic]->Increment();
  if (reason != RejectReason::kNone) return;
  if (skip) {
    stats_.transform_skipped->Add({{"topic", topic.name}}).Increment();
    std::lock_guard<std::mutex> lock(counters_mu_);
    ++counters_[ev.topic].consumed;
    return;
  }
  store::Mutation m;
  m.topic = ev.topic;
  m.key.assign(ev.key);
  m.value = std::move(stored);
  m.partition = ev.partition;
  m.offset = ev.offset;
  m.timestamp_ms = ev.timestamp_ms;
  if (decoded != nullptr && m.value) {
    m.schema_id = decoded->schema_id;
    if (topic.keep_original) m.original.emplace(ev.value);
  }
  batch_.bytes += m.key.size() + (m.value ? m.value->size() : 0) +
                  (m.original ? m.original->size() : 0);
  if (topic.apply == config::ApplyMode::kMergePatch) {
    batch_latest_[LatestKey(ev.topic, m.key)] = batch_.mutations.size();
  }
  batch_.mutations.push_back(std::move(m));
}

void Materializer::CommitWithRetry(bool flush_transforms) {
  // Positions cover only applied records, so a reassignment after this commit resumes
  // right after them: records still queued for their transform would then be read and
  // applied twice. Flushed first, except by the loop's own batch commits.
  if (flush_transforms) FlushTransforms();
  while (!batch_.empty()) {
    Status st = Commit();
    if (st.ok()) {
      resize_waits_ = 0;
      if (!store_failure_.empty()) SetStoreFailure(Status::Ok());
      return;
    }
    if (st.reason() != "STORE_RESIZE_WAITING") {
      SetStoreFailure(st);
    } else if (++resize_waits_ >= options_.resize_waits_before_failure) {
      // Once is a reader finishing late; again and again is a stream of reads that keeps
      // the writer from applying anything: say so.
      SetStoreFailure(Status(Code::kUnavailable,
                             "the store's map is full and cannot grow while read "
                             "transactions stay open (" + std::to_string(resize_waits_) +
                                 " commits in a row): nothing is applied",
                             "STORE_RESIZE_WAITING"));
    }
    log::Error("store commit failed; retrying", {{"error", st.ToString()}});
    if (!WaitFor(options_.retry_backoff)) return;  // Run() tries once more on the way out
    Beat();  // retrying, and saying why (readiness): alive
  }
}

void Materializer::SetStoreFailure(const Status& st) {
  std::string reason = st.ok() ? "" : (st.reason().empty() ? "STORE_ERROR" : st.reason());
  if (reason == store_failure_) return;
  if (!store_failure_.empty()) stats_.write_failing->Add({{"reason", store_failure_}}).Set(0);
  store_failure_ = reason;
  if (!reason.empty()) {
    stats_.write_failing->Add({{"reason", reason}}).Set(1);
  } else {
    log::Info("store commits succeed again");
  }
  ForEachObserver([&](store::CommitObserver* o) { o->OnStoreFailure(st); });
}

Status Materializer::ComputeViewKeys() {
  if (options_.views.empty() || view_keys_done_ >= batch_.mutations.size()) return Status::Ok();
  const auto began = steady_clock::now();
  std::vector<transform::Input> inputs;
  std::vector<std::pair<size_t, size_t>> target;  // input -> (mutation, view of its topic)
  for (size_t i = view_keys_done_; i < batch_.mutations.size(); ++i) {
    const store::Mutation& m = batch_.mutations[i];
    if (!m.value || views_of_[m.topic].empty()) continue;
    for (size_t j = 0; j < views_of_[m.topic].size(); ++j) {
      const size_t view = views_of_[m.topic][j];
      transform::Input in;
      in.filter = static_cast<uint32_t>(view);
      in.key = m.key;
      in.value = *m.value;
      in.partition = m.partition;
      in.offset = m.offset;
      in.timestamp_ms = m.timestamp_ms;
      in.headers_json = "{}";
      if (view_paths_[view] != nullptr) {
        std::optional<std::vector<std::string>> keys =
            PathKeys(view_paths_[view]->Run(in, m.value->size() + 16));
        if (keys) {
          batch_.mutations[i].view_keys.resize(views_of_[m.topic].size());
          batch_.mutations[i].view_keys[j] = std::move(*keys);
          continue;
        }
      }
      inputs.push_back(in);
      target.emplace_back(i, j);
    }
  }
  if (!inputs.empty()) {
    if (options_.view_keys == nullptr) {
      return Status(Code::kInternal, "views configured without a view keys worker");
    }
    Result<std::vector<transform::Result>> results =
        options_.view_keys->Run(inputs, kMaxViewKeysBytes);
    if (!results.ok()) return results.status();
    std::set<size_t> logged;
    for (size_t k = 0; k < results->size(); ++k) {
      const auto& [mi, j] = target[k];
      store::Mutation& m = batch_.mutations[mi];
      const size_t view = views_of_[m.topic][j];
      const transform::Result& res = (*results)[k];
      m.view_keys.resize(views_of_[m.topic].size());
      std::string problem;
      const char* reason = res.outcome == transform::Outcome::kBudgetExceeded ? "budget_exceeded"
                           : res.outcome == transform::Outcome::kCrashed      ? "crashed"
                                                                              : "error";
      if (res.outcome == transform::Outcome::kValue) {
        try {
          m.view_keys[j] = nlohmann::json::parse(res.text).get<std::vector<std::string>>();
        } catch (const nlohmann::json::exception& e) {
          problem = e.what();
        }
        if (m.view_keys[j].size() > kMaxViewKeysPerEntry) {
          m.view_keys[j].clear();
          problem = "the key expression gave more than " +
                    std::to_string(kMaxViewKeysPerEntry) + " view keys for one entry";
          reason = "too_many_keys";
        }
      } else {
        problem = res.text.empty() ? transform::OutcomeName(res.outcome) : res.text;
      }
      if (problem.empty()) continue;
      view_key_errors_[view].at(reason)->Increment();
      // One line per view and commit: a key that fails on every entry must not flood the log.
      if (!logged.insert(view).second) continue;
      log::Warn("a view's key expression failed on an entry; it is left out of the view "
                "(cachecar_view_key_errors_total counts every one)",
                {{"view", options_.views[view].name},
                 {"topic", options_.topics[m.topic].name},
                 {"partition", std::to_string(m.partition)},
                 {"offset", std::to_string(m.offset)},
                 {"reason", reason},
                 {"error", problem.substr(0, 512)}});
    }
  }
  view_keys_duration_->Observe(std::chrono::duration<double>(steady_clock::now() - began).count());
  view_keys_done_ = batch_.mutations.size();
  return Status::Ok();
}

Status Materializer::Commit() {
  NoteCaughtUp();
  merge_snapshot_.reset();  // read transactions end before the write
  Status keys = ComputeViewKeys();
  if (!keys.ok()) return keys;
  if (options_.registry != nullptr) {
    // The schemas these records were decoded with, stored with them.
    for (auto& [k, v] : options_.registry->TakeFetched()) batch_.registry_schemas[k] = std::move(v);
  }
  const auto began = steady_clock::now();
  Result<store::ApplyResult> r = store_->Apply(batch_);
  if (!r.ok()) return r.status();
  for (const auto& [view, overflow] : r->view_overflows) {
    view_key_errors_[view].at("too_many_entries")->Increment(static_cast<double>(overflow.first));
    log::Warn("a view key holds views[].max_entries_per_key entries already; entries past it "
              "are left out of it (cachecar_view_key_errors_total{reason=\"too_many_entries\"})",
              {{"view", options_.views[view].name},
               {"view_key", overflow.second.first.substr(0, 256)},
               {"key", overflow.second.second.substr(0, 256)},
               {"max_entries_per_key",
                static_cast<int64_t>(options_.views[view].view_max_entries_per_key)},
               {"left_out", static_cast<int64_t>(overflow.first)}});
  }
  const auto committed = steady_clock::now();
  commit_duration_->Observe(std::chrono::duration<double>(committed - began).count());
  if (!batch_.positions.empty()) {
    batch_delay_->Observe(std::chrono::duration<double>(committed - batch_started_).count());
  }
  stats_.commits->Increment();
  stats_.revision->Set(static_cast<double>(r->revision));
  std::vector<uint64_t> applied(options_.topics.size(), 0);
  bool schema_ids = false;
  for (const auto& m : batch_.mutations) {
    ++applied[m.topic];
    schema_ids = schema_ids || m.schema_id.has_value();
  }
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    for (size_t t = 0; t < applied.size(); ++t) {
      counters_[t].applied += applied[t];
      counters_[t].consumed += applied[t];
    }
    if (schema_ids) {
      for (const auto& m : batch_.mutations) {
        if (m.schema_id) ++counters_[m.topic].schema_ids[*m.schema_id];
      }
    }
  }
  for (size_t t = 0; t < applied.size(); ++t) {
    if (applied[t] > 0) applied_[t]->Increment(static_cast<double>(applied[t]));
  }
  for (const auto& [tp, next] : batch_.positions) {
    MetricsFor(tp.first, tp.second).applied_offset->Set(static_cast<double>(next));
  }
  for (const auto& m : batch_.mutations) {
    PartitionMetrics& pm = MetricsFor(m.topic, m.partition);
    pm.last_applied_timestamp_ms = std::max(pm.last_applied_timestamp_ms, m.timestamp_ms);
  }
  store::CommitInfo info{r->revision, r->changes, &batch_.positions, &rejected_};
  ForEachObserver([&](store::CommitObserver* o) { o->OnCommit(info); });
  batch_.Clear();
  batch_latest_.clear();
  view_keys_done_ = 0;
  rejected_.clear();
  for (auto it = serving_stored_.begin(); it != serving_stored_.end();) {
    if (tracker_->TopicStaleness(*it)) {
      ++it;
      continue;
    }
    const std::string& name = options_.topics[*it].name;
    log::Info("topic caught up with Kafka again; reads are no longer stale", {{"topic", name}});
    stats_.serving_stored->Add({{"topic", name}}).Set(0);
    it = serving_stored_.erase(it);
  }
  return Status::Ok();
}

void Materializer::RecordCaughtUpIfDue() {
  // Commits carry the caught-up time (NoteCaughtUp); a quiet topic has none, so record it
  // when a topic has newly caught up, and at least every kCaughtUpRefresh.
  constexpr auto kCaughtUpRefresh = std::chrono::seconds(30);
  const auto now = steady_clock::now();
  bool due = now - last_caught_up_record_ >= kCaughtUpRefresh;
  for (size_t t = 0; t < options_.topics.size() && !due; ++t) {
    due = !caught_up_recorded_.count(t) && tracker_->TopicReady(t) && !tracker_->TopicStaleness(t);
  }
  if (!due) return;
  last_caught_up_record_ = now;
  NoteCaughtUp();
  if (!batch_.empty()) CommitWithRetry();
}

void Materializer::NoteCaughtUp() {
  const int64_t now_ms = std::chrono::duration_cast<milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  for (size_t t = 0; t < options_.topics.size(); ++t) {
    if (tracker_->TopicReady(t) && !tracker_->TopicStaleness(t)) {
      if (batch_.empty()) batch_started_ = steady_clock::now();
      batch_.caught_up_ms[t] = now_ms;
      caught_up_recorded_.insert(t);
    }
  }
}

void Materializer::RefreshEndOffsets() {
  last_refresh_ = steady_clock::now();
  const int64_t now_ms = std::chrono::duration_cast<milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  for (const auto& a : partitions_.Assignments()) {
    int64_t end = source_->CachedEndOffset(a.topic, a.partition);
    if (end < 0) continue;
    PartitionMetrics& m = MetricsFor(a.topic, a.partition);
    m.end_offset->Set(static_cast<double>(end));
    std::optional<int64_t> position = partitions_.Position({a.topic, a.partition});
    if (position) {
      const int64_t lag = std::max<int64_t>(0, end - *position);
      m.lag->Set(static_cast<double>(lag));
      // Behind, the records not yet applied are younger than the last one applied. With
      // none applied in this run yet, the age is unknown: the gauge keeps its last value
      // (0 at start; lag_records says how far behind).
      if (lag == 0) {
        m.lag_seconds->Set(0);
      } else if (m.last_applied_timestamp_ms > 0) {
        m.lag_seconds->Set(
            static_cast<double>(std::max<int64_t>(0, now_ms - m.last_applied_timestamp_ms)) / 1000.0);
      }
    }
    tracker_->SetEndOffset(a.topic, a.partition, end);
  }
  tracker_->Tick(last_refresh_);
}

}  // namespace cachecar::kafka
