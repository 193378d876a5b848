#include "kafka/materializer.h"

#include <sys/statvfs.h>

#include <algorithm>

#include "common/log.h"

namespace cachecar::kafka {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {
constexpr int kRejectLogsPerSecond = 10;
}  // namespace

Materializer::Materializer(MaterializerOptions options, store::Store* store,
                           RecordSource* source, health::CatchUpTracker* tracker,
                           prometheus::Registry* registry)
    : options_(std::move(options)), store_(store), source_(source), tracker_(tracker) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  consumed_family_ = &BuildCounter()
                          .Name("cachecar_materializer_records_consumed_total")
                          .Help("Records read from Kafka, valid or not.")
                          .Register(*registry);
  applied_family_ = &BuildCounter()
                         .Name("cachecar_materializer_records_applied_total")
                         .Help("Records applied to the store (puts and deletes).")
                         .Register(*registry);
  rejected_family_ = &BuildCounter()
                          .Name("cachecar_materializer_records_rejected_total")
                          .Help("Records skipped and never served, by reason.")
                          .Register(*registry);
  errors_family_ = &BuildCounter()
                        .Name("cachecar_kafka_consumer_errors_total")
                        .Help("Errors reported by the Kafka consumer (it keeps retrying).")
                        .Register(*registry);
  applied_offset_family_ = &BuildGauge()
                                .Name("cachecar_partition_applied_offset")
                                .Help("Next offset to apply: all below it is in the store.")
                                .Register(*registry);
  end_offset_family_ = &BuildGauge()
                            .Name("cachecar_partition_end_offset")
                            .Help("Latest end offset (high watermark) seen.")
                            .Register(*registry);
  lag_family_ = &BuildGauge()
                     .Name("cachecar_partition_lag_records")
                     .Help("End offset minus applied offset.")
                     .Register(*registry);
  start_offset_family_ = &BuildGauge()
                              .Name("cachecar_partition_start_offset")
                              .Help("Offset this process started consuming from: the stored "
                                    "position on a resume, the log start on a first run.")
                              .Register(*registry);
  halted_family_ = &BuildGauge()
                       .Name("cachecar_partition_halted")
                       .Help("1 while the partition is halted by on_invalid: fail.")
                       .Register(*registry);
  dead_letters_family_ = &BuildCounter()
                              .Name("cachecar_materializer_dead_letters_total")
                              .Help("Refused records produced to a dead-letter topic, by "
                                    "result (ok, failed).")
                              .Register(*registry);
  rebuilds_family_ = &BuildCounter()
                         .Name("cachecar_materializer_topic_rebuilds_total")
                         .Help("Topics emptied and read again from the beginning, by reason "
                               "(offset_out_of_range, topic_deleted).")
                         .Register(*registry);
  write_failing_family_ = &BuildGauge()
                               .Name("cachecar_store_write_failing")
                               .Help("1 while commits to the store fail, by reason (DISK_FULL, "
                                     "STORE_FULL, ...): nothing is applied, not ready.")
                               .Register(*registry);
  map_size_ = &BuildGauge()
                   .Name("cachecar_store_map_size_bytes")
                   .Help("LMDB map size: what the store can hold before it grows again.")
                   .Register(*registry)
                   .Add({});
  used_bytes_ = &BuildGauge()
                     .Name("cachecar_store_used_bytes")
                     .Help("Bytes of the LMDB map in use.")
                     .Register(*registry)
                     .Add({});
  disk_free_ = &BuildGauge()
                    .Name("cachecar_store_disk_free_bytes")
                    .Help("Free bytes on the store's filesystem (for unprivileged users).")
                    .Register(*registry)
                    .Add({});
  map_resizes_ = &BuildCounter()
                      .Name("cachecar_store_map_resizes_total")
                      .Help("Times the LMDB map grew.")
                      .Register(*registry)
                      .Add({});
  commits_ = &BuildCounter()
                  .Name("cachecar_store_commits_total")
                  .Help("Write transactions committed.")
                  .Register(*registry)
                  .Add({});
  revision_ = &BuildGauge()
                   .Name("cachecar_store_revision")
                   .Help("The store revision.")
                   .Register(*registry)
                   .Add({});
  for (const auto& t : options_.topics) {
    consumed_.push_back(&consumed_family_->Add({{"topic", t.name}}));
    applied_.push_back(&applied_family_->Add({{"topic", t.name}}));
    pending_topics_.insert(consumed_.size() - 1);
  }
  counters_.resize(options_.topics.size());
  reject_log_budget_.resize(options_.topics.size());
  revision_->Set(static_cast<double>(store_->revision()));
}

Materializer::~Materializer() { Stop(); }

void Materializer::Start() { thread_ = std::thread([this] { Run(); }); }

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
  PartitionMetrics m{&applied_offset_family_->Add(labels), &end_offset_family_->Add(labels),
                     &lag_family_->Add(labels), &start_offset_family_->Add(labels)};
  return partition_metrics_.emplace(key, m).first->second;
}

void Materializer::Run() {
  auto last_setup = steady_clock::now() - options_.retry_backoff;
  while (!stopping_) {
    if (!pending_topics_.empty() && steady_clock::now() - last_setup >= options_.retry_backoff) {
      SetUpPendingTopics();
      last_setup = steady_clock::now();
    }
    milliseconds wait = options_.idle_poll;
    if (assignments_.empty()) {
      // Nothing assigned yet: wait for the next setup attempt.
      if (!WaitFor(options_.retry_backoff)) break;
      continue;
    }
    if (!batch_.empty()) wait = milliseconds(0);
    SourceEvent ev;
    if (source_->Poll(wait, &ev)) {
      Handle(ev);
    } else if (!batch_.empty()) {
      CommitWithRetry();  // the source is idle: make what we have readable now
    }
    if (!batch_.empty() &&
        (batch_.mutations.size() >= options_.batch_max_records ||
         batch_.bytes >= options_.batch_max_bytes ||
         steady_clock::now() - batch_started_ >= options_.batch_max_delay)) {
      CommitWithRetry();
    }
    if (steady_clock::now() - last_refresh_ >= milliseconds(500)) RefreshEndOffsets();
    if (!halted_.empty() && steady_clock::now() - last_halt_check_ >= options_.retry_backoff) {
      RetryHalted();
    }
    if (steady_clock::now() - last_store_report_ >= std::chrono::seconds(1)) ReportStore();
  }
  if (!batch_.empty()) {
    Status st = Commit();
    if (!st.ok()) log::Error("final commit failed", {{"error", st.ToString()}});
  }
}

void Materializer::SetUpPendingTopics() {
  std::vector<size_t> ready_now;
  for (size_t t : pending_topics_) {
    const std::string& name = options_.topics[t].name;
    Result<int32_t> count = source_->PartitionCount(t, options_.request_timeout);
    if (!count.ok()) {
      log::Warn("topic not available yet; will retry",
                {{"topic", name}, {"error", count.status().message()}});
      continue;
    }
    Result<std::vector<int64_t>> ends = source_->EndOffsets(t, *count, options_.request_timeout);
    Result<std::map<int32_t, int64_t>> stored = store_->LoadPositions(t);
    if (!ends.ok() || !stored.ok()) {
      log::Warn("cannot read offsets of topic; will retry",
                {{"topic", name},
                 {"error", (!ends.ok() ? ends.status() : stored.status()).ToString()}});
      continue;
    }
    std::vector<health::PartitionProgress> progress;
    for (int32_t p = 0; p < *count; ++p) {
      auto it = stored->find(p);
      int64_t start = it != stored->end() ? it->second : kOffsetBeginning;
      int64_t end = (*ends)[p];
      assignments_.push_back({t, p, start});
      health::PartitionProgress pp;
      pp.partition = p;
      pp.applied = it != stored->end() ? it->second : -1;
      pp.start_end_offset = end;
      pp.end_offset = end;
      progress.push_back(pp);
      PartitionMetrics& m = MetricsFor(t, p);
      m.end_offset->Set(static_cast<double>(end));
      if (it != stored->end()) {
        positions_[{t, p}] = start;
        m.start_offset->Set(static_cast<double>(start));
        m.applied_offset->Set(static_cast<double>(start));
        log::Info("resuming partition from stored offset",
                  {{"topic", name}, {"partition", p}, {"offset", start}, {"end_offset", end}});
      } else {
        log::Info("reading partition from the beginning",
                  {{"topic", name}, {"partition", p}, {"end_offset", end}});
      }
    }
    tracker_->SetAssigned(t, std::move(progress));
    if (options_.notifier != nullptr) {
      std::map<std::pair<size_t, int32_t>, int64_t> known;
      for (const auto& [p, next] : *stored) known[{t, p}] = next;
      options_.notifier->Published(store_->revision(), known);
    }
    ready_now.push_back(t);
  }
  if (ready_now.empty()) return;
  for (size_t t : ready_now) pending_topics_.erase(t);
  Reassign();
}

void Materializer::Reassign() {
  // Re-assigning restarts every partition at the given offset, so first make the
  // in-memory positions durable and hand the consumer exactly those.
  CommitWithRetry();
  for (auto& a : assignments_) {
    auto it = positions_.find({a.topic, a.partition});
    if (it != positions_.end()) a.offset = it->second;
  }
  Status st = source_->Assign(assignments_);
  if (!st.ok()) log::Error("assign failed", {{"error", st.ToString()}});
  for (const auto& [key, halt] : halted_) source_->Pause(key.first, key.second);
}

void Materializer::HaltPartition(const SourceEvent& ev, const std::string& why,
                                 std::shared_ptr<const schema::JsonSchema> schema) {
  const std::string& name = options_.topics[ev.topic].name;
  halted_[{ev.topic, ev.partition}] = Halt{ev.offset, std::move(schema)};
  std::string reason = "topic " + name + " partition " + std::to_string(ev.partition) +
                       " halted at offset " + std::to_string(ev.offset) + ": " + why;
  log::Error("partition halted (on_invalid: fail); the sidecar is not ready",
             {{"topic", name}, {"partition", ev.partition}, {"offset", ev.offset},
              {"reason", why}});
  halted_family_->Add({{"topic", name}, {"partition", std::to_string(ev.partition)}}).Set(1);
  Status st = source_->Pause(ev.topic, ev.partition);
  if (!st.ok()) log::Warn("pause failed", {{"topic", name}, {"error", st.ToString()}});
  tracker_->SetHalted(ev.topic, ev.partition, reason);
  if (options_.notifier != nullptr) options_.notifier->SetHalted(ev.topic, ev.partition, reason);
}

void Materializer::RetryHalted() {
  last_halt_check_ = steady_clock::now();
  std::vector<std::pair<size_t, int32_t>> lifted;
  for (const auto& [key, halt] : halted_) {
    auto now = options_.schemas != nullptr ? options_.schemas->Get(key.first) : nullptr;
    if (now != halt.schema) lifted.push_back(key);
  }
  if (lifted.empty()) return;
  for (const auto& key : lifted) {
    const std::string& name = options_.topics[key.first].name;
    log::Info("schema replaced; resuming halted partition",
              {{"topic", name}, {"partition", key.second}, {"offset", halted_[key].offset}});
    halted_.erase(key);
    halted_family_->Add({{"topic", name}, {"partition", std::to_string(key.second)}}).Set(0);
    tracker_->SetHalted(key.first, key.second, "");
    if (options_.notifier != nullptr) options_.notifier->SetHalted(key.first, key.second, "");
  }
  Reassign();
}

void Materializer::Handle(const SourceEvent& ev) {
  if (ev.kind == SourceEvent::Kind::kError && ev.topic >= options_.topics.size()) {
    errors_family_->Add({{"reason", ev.error.reason()}}).Increment();
    log::Warn("kafka consumer error", {{"error", ev.error.message()}});
    if (ev.error.reason() == "KAFKA_TOPIC_NOT_FOUND") {
      std::set<size_t> assigned;
      for (const auto& a : assignments_) assigned.insert(a.topic);
      for (size_t t : assigned) CheckTopicExists(t);
    }
    return;
  }
  if (ev.topic >= options_.topics.size()) return;
  const config::TopicConfig& topic = options_.topics[ev.topic];
  auto key = std::make_pair(ev.topic, ev.partition);
  if (ev.kind != SourceEvent::Kind::kError && halted_.count(key)) return;  // fetched before Pause
  switch (ev.kind) {
    case SourceEvent::Kind::kError:
      errors_family_->Add({{"reason", ev.error.reason()}}).Increment();
      log::Warn("kafka consumer error", {{"topic", topic.name}, {"error", ev.error.message()}});
      if (ev.error.reason() == "KAFKA_TOPIC_NOT_FOUND") CheckTopicExists(ev.topic);
      return;
    case SourceEvent::Kind::kOffsetOutOfRange: {
      if (pending_topics_.count(ev.topic)) return;  // being rebuilt already
      auto it = positions_.find(key);
      RebuildTopic(ev.topic, "offset_out_of_range",
                   "partition " + std::to_string(ev.partition) + " position " +
                       (it != positions_.end() ? std::to_string(it->second) : "?") +
                       " is not in the log any more (" + ev.error.message() + ")");
      return;
    }
    case SourceEvent::Kind::kPartitionEnd: {
      // Everything below ev.offset has been delivered: transaction markers and aborted
      // records at the tail count as consumed.
      auto it = positions_.find(key);
      if (it != positions_.end() && it->second >= ev.offset) return;
      positions_[key] = ev.offset;
      if (batch_.empty()) batch_started_ = steady_clock::now();
      batch_.positions[key] = ev.offset;
      return;
    }
    case SourceEvent::Kind::kRecord:
      break;
  }
  std::shared_ptr<const schema::JsonSchema> schema =
      options_.schemas != nullptr ? options_.schemas->Get(ev.topic) : nullptr;
  RejectReason reason = CheckRecord(topic, schema.get(), ev.has_key, ev.key, ev.has_value,
                                    ev.value);
  if (reason != RejectReason::kNone && !HandleInvalid(ev, reason, schema)) return;
  if (batch_.empty()) batch_started_ = steady_clock::now();
  positions_[key] = ev.offset + 1;
  batch_.positions[key] = ev.offset + 1;
  consumed_[ev.topic]->Increment();
  if (reason != RejectReason::kNone) return;
  store::Mutation m;
  m.topic = ev.topic;
  m.key.assign(ev.key);
  if (ev.has_value) m.value.emplace(ev.value);
  m.partition = ev.partition;
  m.offset = ev.offset;
  m.timestamp_ms = ev.timestamp_ms;
  batch_.bytes += ev.key.size() + ev.value.size();
  batch_.mutations.push_back(std::move(m));
}

bool Materializer::HandleInvalid(const SourceEvent& ev, RejectReason reason,
                                 const std::shared_ptr<const schema::JsonSchema>& schema) {
  const config::TopicConfig& topic = options_.topics[ev.topic];
  std::string detail = DescribeReject(reason, schema.get(), ev.value);
  RejectedRecord rec;
  rec.partition = ev.partition;
  rec.offset = ev.offset;
  rec.has_key = ev.has_key;
  rec.key.assign(ev.key.substr(0, RejectedLog::kMaxKeyBytes));  // copy only what is kept
  rec.reason = RejectReasonName(reason);
  rec.detail = detail;
  rec.timestamp_ms = ev.timestamp_ms;
  rec.rejected_at = std::chrono::system_clock::now();
  rec.action = "skipped";

  if (topic.on_invalid == config::InvalidPolicy::kFail) {
    rec.action = "halted";
    if (options_.rejected != nullptr) options_.rejected->Add(ev.topic, rec);
    HaltPartition(ev, rec.reason + ": " + detail, schema);
    return false;
  }
  if (topic.on_invalid == config::InvalidPolicy::kDeadLetter) {
    ProduceRequest dl;
    dl.topic = topic.dead_letter_topic;
    dl.has_key = ev.has_key;
    dl.key.assign(ev.key);
    if (ev.has_value) dl.value.emplace(ev.value);
    dl.headers = {{"cachecar.error.reason", rec.reason},
                  {"cachecar.error.detail", detail},
                  {"cachecar.source.topic", topic.name},
                  {"cachecar.source.partition", std::to_string(ev.partition)},
                  {"cachecar.source.offset", std::to_string(ev.offset)},
                  {"cachecar.source.timestamp", std::to_string(ev.timestamp_ms)}};
    Delivery d = options_.dead_letters != nullptr
                     ? ProduceAndWait(options_.dead_letters, std::move(dl),
                                      options_.dead_letter_timeout)
                     : Delivery{Status(Code::kInternal, "no dead-letter producer"), -1, -1};
    dead_letters_family_->Add({{"topic", topic.name}, {"result", d.status.ok() ? "ok" : "failed"}})
        .Increment();
    if (!d.status.ok()) {
      rec.action = "halted";
      if (options_.rejected != nullptr) options_.rejected->Add(ev.topic, rec);
      HaltPartition(ev, "dead letter to " + topic.dead_letter_topic + " failed (" +
                            d.status.message() + ") for " + rec.reason + ": " + detail,
                    schema);
      return false;
    }
    rec.action = "dead-lettered";
  }
  rejected_family_->Add({{"topic", topic.name}, {"reason", rec.reason}}).Increment();
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    ++counters_[ev.topic].consumed;
    ++counters_[ev.topic].rejected;
  }
  auto& [window, count] = reject_log_budget_[ev.topic];
  auto now = steady_clock::now();
  if (now - window >= std::chrono::seconds(1)) {
    window = now;
    count = 0;
  }
  if (count++ < kRejectLogsPerSecond) {
    log::Warn("record rejected; it is not served",
              {{"topic", topic.name}, {"partition", ev.partition}, {"offset", ev.offset},
               {"reason", rec.reason}, {"detail", detail}, {"action", rec.action}});
  }
  if (options_.rejected != nullptr) options_.rejected->Add(ev.topic, std::move(rec));
  return true;
}

void Materializer::CommitWithRetry() {
  while (!batch_.empty()) {
    Status st = Commit();
    if (st.ok()) {
      if (!store_failure_.empty()) SetStoreFailure(Status::Ok());
      return;
    }
    // A resize that waited for readers is not a failure anyone needs to hear about.
    if (st.reason() != "STORE_RESIZE_WAITING") SetStoreFailure(st);
    log::Error("store commit failed; retrying", {{"error", st.ToString()}});
    if (!WaitFor(options_.retry_backoff)) return;  // Run() tries once more on the way out
  }
}

void Materializer::SetStoreFailure(const Status& st) {
  std::string reason = st.ok() ? "" : (st.reason().empty() ? "STORE_ERROR" : st.reason());
  if (reason == store_failure_) return;
  if (!store_failure_.empty()) write_failing_family_->Add({{"reason", store_failure_}}).Set(0);
  store_failure_ = reason;
  if (!reason.empty()) {
    write_failing_family_->Add({{"reason", reason}}).Set(1);
  } else {
    log::Info("store commits succeed again");
  }
  tracker_->SetStoreFailure(st.ok() ? "" : "store commits fail: " + st.message());
  if (options_.notifier != nullptr) options_.notifier->SetStoreFailure(st);
}

void Materializer::RebuildTopic(size_t topic, const std::string& reason,
                                const std::string& why) {
  const std::string& name = options_.topics[topic].name;
  log::Error("rebuilding topic from the beginning; it is not ready meanwhile",
             {{"topic", name}, {"reason", reason}, {"detail", why}});
  rebuilds_family_->Add({{"topic", name}, {"reason", reason}}).Increment();
  CommitWithRetry();
  batch_.reset_topics.insert(topic);
  batch_started_ = steady_clock::now();
  CommitWithRetry();
  for (auto it = positions_.begin(); it != positions_.end();) {
    it = it->first.first == topic ? positions_.erase(it) : std::next(it);
  }
  for (auto it = halted_.begin(); it != halted_.end();) {
    if (it->first.first != topic) {
      ++it;
      continue;
    }
    halted_family_->Add({{"topic", name}, {"partition", std::to_string(it->first.second)}}).Set(0);
    if (options_.notifier != nullptr) options_.notifier->SetHalted(topic, it->first.second, "");
    it = halted_.erase(it);
  }
  assignments_.erase(std::remove_if(assignments_.begin(), assignments_.end(),
                                    [&](const Assignment& a) { return a.topic == topic; }),
                     assignments_.end());
  tracker_->SetRebuilding(topic, reason + ": " + why);
  if (options_.notifier != nullptr) options_.notifier->ForgetTopic(topic);
  pending_topics_.insert(topic);
  Reassign();  // the topic's partitions stop; SetUpPendingTopics assigns them afresh
}

void Materializer::CheckTopicExists(size_t topic) {
  auto now = steady_clock::now();
  auto& last = last_topic_check_[topic];
  if (now - last < options_.retry_backoff) return;
  last = now;
  Result<int32_t> count = source_->PartitionCount(topic, options_.request_timeout);
  // Only the broker saying so counts: a broker that did not answer says nothing.
  if (!count.ok() && count.status().reason() == "KAFKA_TOPIC_NOT_FOUND") {
    RebuildTopic(topic, "topic_deleted", count.status().message());
  }
}

void Materializer::ReportStore() {
  auto now = steady_clock::now();
  last_store_report_ = now;
  store::Store::Usage u = store_->GetUsage();
  map_size_->Set(static_cast<double>(u.map_size_bytes));
  used_bytes_->Set(static_cast<double>(u.used_bytes));
  if (u.map_resizes > map_resizes_seen_) {
    map_resizes_->Increment(static_cast<double>(u.map_resizes - map_resizes_seen_));
    log::Info("store map grew", {{"map_size_bytes", u.map_size_bytes}});
    map_resizes_seen_ = u.map_resizes;
  }
  struct statvfs fs;
  if (!options_.store_path.empty() && statvfs(options_.store_path.c_str(), &fs) == 0) {
    disk_free_->Set(static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize));
  }
  if (options_.commit_interval.count() > 0 &&
      now - last_offsets_commit_ >= options_.commit_interval) {
    last_offsets_commit_ = now;
    std::vector<Assignment> committed;
    for (const auto& a : assignments_) {
      auto it = positions_.find({a.topic, a.partition});
      // Only what is durable in the store; the batch in memory is not applied yet.
      auto pending = batch_.positions.find({a.topic, a.partition});
      if (it == positions_.end() || pending != batch_.positions.end()) continue;
      committed.push_back({a.topic, a.partition, it->second});
    }
    source_->CommitOffsets(committed);
  }
}

Status Materializer::Commit() {
  Result<store::ApplyResult> r = store_->Apply(batch_);
  if (!r.ok()) return r.status();
  commits_->Increment();
  revision_->Set(static_cast<double>(r->revision));
  std::vector<uint64_t> applied(options_.topics.size(), 0);
  for (const auto& m : batch_.mutations) ++applied[m.topic];
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    for (size_t t = 0; t < applied.size(); ++t) {
      counters_[t].applied += applied[t];
      counters_[t].consumed += applied[t];
    }
  }
  for (size_t t = 0; t < applied.size(); ++t) {
    if (applied[t] > 0) applied_[t]->Increment(static_cast<double>(applied[t]));
  }
  for (const auto& [tp, next] : batch_.positions) {
    MetricsFor(tp.first, tp.second).applied_offset->Set(static_cast<double>(next));
    tracker_->SetApplied(tp.first, tp.second, next);
  }
  if (options_.notifier != nullptr) options_.notifier->Published(r->revision, batch_.positions);
  if (r->changes > 0 && options_.on_change) options_.on_change();
  batch_.Clear();
  return Status::Ok();
}

void Materializer::RefreshEndOffsets() {
  last_refresh_ = steady_clock::now();
  for (const auto& a : assignments_) {
    int64_t end = source_->CachedEndOffset(a.topic, a.partition);
    if (end < 0) continue;
    PartitionMetrics& m = MetricsFor(a.topic, a.partition);
    m.end_offset->Set(static_cast<double>(end));
    auto it = positions_.find({a.topic, a.partition});
    if (it != positions_.end()) m.lag->Set(static_cast<double>(std::max<int64_t>(0, end - it->second)));
    tracker_->SetEndOffset(a.topic, a.partition, end);
  }
  tracker_->Tick(last_refresh_);
}

}  // namespace cachecar::kafka
