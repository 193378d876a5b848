// The materializer's topic lifecycle: assigning a topic's partitions once its metadata can
// be read, assigning partitions added later, and emptying and re-reading a topic whose
// positions fell out of the log or that was deleted. Writer thread only.
#include "common/log.h"
#include "kafka/materializer.h"

namespace cachecar::kafka {

using std::chrono::steady_clock;

void Materializer::SetUpPendingTopics() {
  std::vector<size_t> ready_now;
  const std::set<size_t> pending = partitions_.pending();
  for (size_t t : pending) {
    const std::string& name = options_.topics[t].name;
    Result<int32_t> count = source_->PartitionCount(t, options_.request_timeout);
    Beat();  // each request may take request_timeout: alive between them
    if (!count.ok()) {
      log::Warn("topic not available yet; will retry",
                {{"topic", name}, {"error", count.status().message()}});
      const bool missing = count.status().reason() == "KAFKA_TOPIC_NOT_FOUND";
      tracker_->SetWaiting(t, missing ? "topic " + name + " does not exist in Kafka (yet)"
                                      : "topic " + name + ": cannot read its partitions (" +
                                            count.status().message() + ")");
      if (!missing) OnUnreachableAtStart(t, count.status());
      continue;
    }
    // A reset interrupted by a restart: its positions are gone already; empty the rest
    // before reading the topic again.
    if (Result<bool> resetting = store_->Resetting(t); resetting.ok() && *resetting) {
      log::Warn("finishing the emptying of a topic interrupted by a restart", {{"topic", name}});
      FinishReset(t);
    }
    if (!CheckDefinition(t)) continue;
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
      std::optional<int64_t> start;
      if (it != stored->end()) start = it->second;
      int64_t end = (*ends)[p];
      partitions_.Add(t, p, start);
      health::PartitionProgress pp;
      pp.partition = p;
      pp.applied = start.value_or(-1);
      pp.start_end_offset = end;
      pp.end_offset = end;
      progress.push_back(pp);
      PartitionMetrics& m = MetricsFor(t, p);
      m.end_offset->Set(static_cast<double>(end));
      if (start) {
        m.start_offset->Set(static_cast<double>(*start));
        m.applied_offset->Set(static_cast<double>(*start));
        log::Info("resuming partition from stored offset",
                  {{"topic", name}, {"partition", p}, {"offset", *start}, {"end_offset", end}});
      } else {
        log::Info("reading partition from the beginning",
                  {{"topic", name}, {"partition", p}, {"end_offset", end}});
      }
    }
    tracker_->SetAssigned(t, std::move(progress));
    // The positions found in the store, as a commit that changed nothing.
    std::map<store::PartitionKey, int64_t> known;
    for (const auto& [p, next] : *stored) known[{t, p}] = next;
    store::CommitInfo info{store_->revision(), 0, &known};
    for (store::CommitObserver* o : options_.observers) o->OnCommit(info);
    ready_now.push_back(t);
  }
  if (ready_now.empty()) return;
  for (size_t t : ready_now) {
    partitions_.MarkAssigned(t);
    ever_assigned_.insert(t);
  }
  Reassign();
}

void Materializer::OnUnreachableAtStart(size_t t, const Status& why) {
  if (ever_assigned_.count(t) || outage_decided_.count(t)) return;
  if (steady_clock::now() - run_started_ < options_.outage_grace) return;
  outage_decided_.insert(t);
  const std::string& name = options_.topics[t].name;
  if (options_.outage_policy == config::BrokerOutageAtStart::kWait) {
    log::Warn("kafka unreachable at start; not ready until it answers",
              {{"topic", name}, {"policy", "readiness.broker_outage_at_start: wait"},
               {"error", why.message()}});
    return;
  }
  Result<std::optional<int64_t>> caught_up = store_->LoadCaughtUp(t);
  Result<std::map<int32_t, int64_t>> stored = store_->LoadPositions(t);
  if (!caught_up.ok() || !stored.ok() || !caught_up->has_value() || stored->empty()) {
    log::Warn("kafka unreachable at start; no stored state caught up with Kafka to serve",
              {{"topic", name}, {"error", why.message()}});
    return;
  }
  std::vector<health::PartitionProgress> progress;
  for (const auto& [p, next] : *stored) {
    health::PartitionProgress pp;
    pp.partition = p;
    pp.applied = next;
    pp.start_end_offset = next;
    progress.push_back(pp);
  }
  const int64_t at = **caught_up;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  log::Warn("kafka unreachable at start; serving the stored state, marked stale",
            {{"topic", name}, {"caught_up_ms_ago", now_ms - at}, {"error", why.message()}});
  tracker_->ServeStored(t, std::move(progress), at,
                        "kafka unreachable since start: " + why.message());
  stats_.serving_stored->Add({{"topic", name}}).Set(1);
  serving_stored_.insert(t);
}

void Materializer::RefreshPartitions() {
  last_metadata_refresh_ = steady_clock::now();
  bool added = false;
  for (size_t t : partitions_.AssignedTopics()) {
    const std::string& name = options_.topics[t].name;
    const int32_t known = partitions_.PartitionCount(t);
    // A deleted topic is someone else's business (the consumer's errors,
    // CheckTopicExists): only growth is looked for here. A broker that does not answer
    // would make every topic wait out the timeout in turn: try again next round.
    Result<int32_t> count = source_->PartitionCount(t, options_.request_timeout);
    Beat();
    if (!count.ok() && count.status().reason() != "KAFKA_TOPIC_NOT_FOUND") break;
    if (!count.ok() || *count <= known) continue;
    Result<std::vector<int64_t>> ends = source_->EndOffsets(t, *count, options_.request_timeout);
    if (!ends.ok()) {
      log::Warn("partitions were added to a topic but their offsets cannot be read; will retry",
                {{"topic", name}, {"error", ends.status().ToString()}});
      continue;
    }
    std::vector<health::PartitionProgress> progress;
    for (int32_t p = known; p < *count; ++p) {
      const int64_t end = (*ends)[p];
      partitions_.Add(t, p, std::nullopt);
      health::PartitionProgress pp;
      pp.partition = p;
      pp.start_end_offset = end;
      pp.end_offset = end;
      progress.push_back(pp);
      MetricsFor(t, p).end_offset->Set(static_cast<double>(end));
      log::Info("partition added to the topic; reading it from the beginning",
                {{"topic", name}, {"partition", p}, {"end_offset", end}});
    }
    tracker_->AddPartitions(t, std::move(progress));
    added = true;
  }
  if (added) Reassign();
}

bool Materializer::KeepBeyondLog(const store::PartitionKey& key, int64_t position) {
  const std::string& name = options_.topics[key.first].name;
  Result<int64_t> start =
      source_->LogStartOffset(key.first, key.second, std::chrono::milliseconds(5000));
  if (!start.ok() || position >= *start) return false;  // past the end: recreated shorter
  log::Warn("records were deleted from Kafka before this sidecar read them; keeping the "
            "stored data (retain_beyond_log) and reading on from the log start",
            {{"topic", name}, {"partition", key.second}, {"position", position},
             {"log_start", *start}, {"records_never_read", *start - position}});
  stats_.retention_skipped->Add({{"topic", name}}).Increment(static_cast<double>(*start - position));
  if (batch_.empty()) batch_started_ = steady_clock::now();
  partitions_.SetPosition(key, *start);
  batch_.positions[key] = *start;
  Reassign();  // commits the new position, then fetches from it
  return true;
}

bool Materializer::CheckDefinition(size_t t) {
  const config::TopicConfig& topic = options_.topics[t];
  std::vector<const config::TopicConfig*> views;
  for (size_t v : views_of_[t]) views.push_back(&options_.views[v]);
  const std::string now = TopicDefinition(topic, views);
  Result<std::optional<std::string>> stored = store_->LoadDefinition(t);
  Result<std::map<int32_t, int64_t>> positions = store_->LoadPositions(t);
  if (!stored.ok() || !positions.ok()) {
    log::Warn("cannot read the topic's stored definition; will retry",
              {{"topic", topic.name},
               {"error", (!stored.ok() ? stored.status() : positions.status()).ToString()}});
    return false;
  }
  // A store from before definitions were kept holds values stored as they came.
  const std::string was = stored->value_or(TopicDefinition(config::TopicConfig{}, {}));
  if (was != now && !positions->empty()) {
    // What is stored was made by another transform or apply mode: make it again.
    log::Warn("the topic's transform, apply mode, views or keep_original changed since its "
              "values were stored; rebuilding it from the beginning (not ready meanwhile)",
              {{"topic", topic.name}});
    stats_.rebuilds->Add({{"topic", topic.name}, {"reason", "definition_changed"}}).Increment();
    CommitWithRetry();
    batch_.reset_topics.insert(t);
    batch_.definitions[t] = now;
    batch_started_ = steady_clock::now();
    caught_up_recorded_.erase(t);
    CommitWithRetry();
    ForEachObserver([&](store::CommitObserver* o) {
      o->OnTopicReset(t, "definition_changed: the topic's transform, apply mode, views or "
                       "keep_original changed");
    });
    FinishReset(t);
    return true;
  }
  if (!stored->has_value() || *stored != now) {
    if (batch_.empty()) batch_started_ = steady_clock::now();
    batch_.definitions[t] = now;  // with the first commit of its data
  }
  return true;
}

void Materializer::RebuildTopic(size_t topic, const std::string& reason,
                                const std::string& why) {
  const std::string& name = options_.topics[topic].name;
  log::Error("rebuilding topic from the beginning; it is not ready meanwhile",
             {{"topic", name}, {"reason", reason}, {"detail", why}});
  stats_.rebuilds->Add({{"topic", name}, {"reason", reason}}).Increment();
  CommitWithRetry();
  // One commit forgets the positions, tells watchers (one history record) and deletes a
  // first chunk of keys; the observers hear of the reset before the rest goes, so nothing
  // half-emptied is served.
  batch_.reset_topics.insert(topic);
  batch_started_ = steady_clock::now();
  caught_up_recorded_.erase(topic);
  CommitWithRetry();
  partitions_.Reset(topic);
  ForEachObserver([&](store::CommitObserver* o) { o->OnTopicReset(topic, reason + ": " + why); });
  for (const auto& key : invalid_.LiftTopic(topic)) {
    ForEachObserver(
        [&](store::CommitObserver* o) { o->OnPartitionHalted(key.first, key.second, ""); });
  }
  FinishReset(topic);
  Reassign();  // the topic's partitions stop; SetUpPendingTopics assigns them afresh
}

void Materializer::FinishReset(size_t topic) {
  const std::string& name = options_.topics[topic].name;
  uint64_t chunks = 0;
  for (;;) {
    Result<bool> done = store_->ContinueReset(topic);
    Beat();  // one bounded transaction per chunk: alive between them
    if (done.ok() && *done) break;
    if (done.ok()) {
      ++chunks;
      continue;
    }
    SetStoreFailure(done.status());
    log::Error("emptying a topic failed; retrying",
               {{"topic", name}, {"error", done.status().ToString()}});
    if (!WaitFor(options_.retry_backoff)) return;  // stopping: the next start goes on
  }
  if (!store_failure_.empty()) SetStoreFailure(Status::Ok());
  log::Info("topic emptied; reading it again from the beginning",
            {{"topic", name}, {"chunks", static_cast<int64_t>(chunks + 1)}});
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

}  // namespace cachecar::kafka
