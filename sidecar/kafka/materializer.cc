#include "kafka/materializer.h"

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
    ready_now.push_back(t);
  }
  if (ready_now.empty()) return;
  for (size_t t : ready_now) pending_topics_.erase(t);
  // Re-assigning restarts every partition at the given offset, so first make the
  // in-memory positions durable and hand the consumer exactly those.
  CommitWithRetry();
  for (auto& a : assignments_) {
    auto it = positions_.find({a.topic, a.partition});
    if (it != positions_.end()) a.offset = it->second;
  }
  Status st = source_->Assign(assignments_);
  if (!st.ok()) log::Error("assign failed", {{"error", st.ToString()}});
}

void Materializer::Handle(const SourceEvent& ev) {
  if (ev.topic >= options_.topics.size()) return;
  const config::TopicConfig& topic = options_.topics[ev.topic];
  auto key = std::make_pair(ev.topic, ev.partition);
  switch (ev.kind) {
    case SourceEvent::Kind::kError:
      errors_family_->Add({{"reason", ev.error.reason()}}).Increment();
      log::Warn("kafka consumer error", {{"topic", topic.name}, {"error", ev.error.message()}});
      return;
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
  if (batch_.empty()) batch_started_ = steady_clock::now();
  positions_[key] = ev.offset + 1;
  batch_.positions[key] = ev.offset + 1;
  consumed_[ev.topic]->Increment();
  RejectReason reason = CheckRecord(topic, ev.has_key, ev.key, ev.has_value, ev.value);
  if (reason != RejectReason::kNone) {
    rejected_family_->Add({{"topic", topic.name}, {"reason", RejectReasonName(reason)}})
        .Increment();
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
                 {"reason", RejectReasonName(reason)}});
    }
    return;
  }
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

void Materializer::CommitWithRetry() {
  while (!batch_.empty()) {
    Status st = Commit();
    if (st.ok()) return;
    log::Error("store commit failed; retrying", {{"error", st.ToString()}});
    if (!WaitFor(options_.retry_backoff)) return;  // Run() tries once more on the way out
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
}

}  // namespace cachecar::kafka
