#include "kafka/invalid_records.h"

#include "common/log.h"

namespace cachecar::kafka {

using std::chrono::steady_clock;

InvalidRecords::InvalidRecords(Options options, MaterializerStats* stats)
    : options_(options), stats_(stats), log_budget_(options.topics->size()) {}

InvalidRecords::Verdict InvalidRecords::Handle(
    const SourceEvent& ev, RejectReason reason,
    const std::shared_ptr<const schema::JsonSchema>& schema, Halting* halting,
    std::string_view detail_given) {
  const config::TopicConfig& topic = (*options_.topics)[ev.topic];
  std::string detail = detail_given.empty() ? DescribeReject(reason, schema.get(), ev.value)
                                            : std::string(detail_given);
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
    halting->reason = rec.reason + ": " + detail;
    return Verdict::kHalt;
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
    Status sent = SendDeadLetter(ev.topic, dl);
    if (!sent.ok()) {
      rec.action = "halted";
      if (options_.rejected != nullptr) options_.rejected->Add(ev.topic, rec);
      halting->reason = "dead letter to " + topic.dead_letter_topic + " failed (" +
                        sent.message() + ") for " + rec.reason + ": " + detail +
                        "; sent again until the broker takes it";
      halting->dead_letter = std::move(dl);
      rec.action = "dead-lettered";
      halting->record = std::move(rec);
      return Verdict::kHalt;
    }
    rec.action = "dead-lettered";
  }
  Consumed(ev.topic, std::move(rec));
  return Verdict::kConsumed;
}

Status InvalidRecords::SendDeadLetter(size_t topic, const ProduceRequest& dl) {
  Delivery d = options_.dead_letters != nullptr
                   ? ProduceAndWait(options_.dead_letters, dl, options_.dead_letter_timeout)
                   : Delivery{Status(Code::kInternal, "no dead-letter producer"), -1, -1};
  stats_->dead_letters
      ->Add({{"topic", (*options_.topics)[topic].name},
             {"result", d.status.ok() ? "ok" : "failed"}})
      .Increment();
  return d.status;
}

void InvalidRecords::Consumed(size_t topic, RejectedRecord rec) {
  const std::string& name = (*options_.topics)[topic].name;
  stats_->rejected->Add({{"topic", name}, {"reason", rec.reason}}).Increment();
  auto& [window, count] = log_budget_[topic];
  auto now = steady_clock::now();
  if (now - window >= std::chrono::seconds(1)) {
    window = now;
    count = 0;
  }
  if (count++ < kRejectLogsPerSecond) {
    log::Warn("record rejected; it is not served",
              {{"topic", name}, {"partition", rec.partition}, {"offset", rec.offset},
               {"reason", rec.reason}, {"detail", rec.detail}, {"action", rec.action}});
  }
  if (options_.rejected != nullptr) options_.rejected->Add(topic, std::move(rec));
}

void InvalidRecords::Halt(const SourceEvent& ev, Halting halting,
                          std::shared_ptr<const schema::JsonSchema> schema) {
  const std::string& name = (*options_.topics)[ev.topic].name;
  log::Error("partition halted; the sidecar is not ready",
             {{"topic", name}, {"partition", ev.partition}, {"offset", ev.offset},
              {"reason", halting.reason}});
  HaltedAt h{ev.offset, std::move(schema), std::move(halting), options_.dead_letter_retry,
             steady_clock::now() + options_.dead_letter_retry};
  halted_[{ev.topic, ev.partition}] = std::move(h);
  stats_->halted->Add({{"topic", name}, {"partition", std::to_string(ev.partition)}}).Set(1);
}

std::vector<std::pair<store::PartitionKey, int64_t>> InvalidRecords::RetryDeadLetters(
    steady_clock::time_point now) {
  std::vector<std::pair<store::PartitionKey, int64_t>> delivered;
  for (auto& [key, h] : halted_) {
    if (!h.halting.dead_letter || now < h.next_retry) continue;
    Status sent = SendDeadLetter(key.first, *h.halting.dead_letter);
    if (!sent.ok()) {
      h.retry_wait = std::min(h.retry_wait * 2, std::chrono::milliseconds(kMaxDeadLetterRetry));
      h.next_retry = steady_clock::now() + h.retry_wait;
      log::Warn("dead letter still not taken; the partition stays halted",
                {{"topic", (*options_.topics)[key.first].name}, {"partition", key.second},
                 {"offset", h.offset}, {"error", sent.message()},
                 {"next_try_ms", static_cast<int64_t>(h.retry_wait.count())}});
      continue;
    }
    log::Info("dead letter taken; resuming the partition",
              {{"topic", (*options_.topics)[key.first].name}, {"partition", key.second},
               {"offset", h.offset}});
    delivered.emplace_back(key, h.offset);
  }
  for (const auto& [key, offset] : delivered) {
    Consumed(key.first, std::move(halted_[key].halting.record));
    Lift(key);
  }
  return delivered;
}

std::vector<std::pair<store::PartitionKey, int32_t>> InvalidRecords::DueRegistryWaits(
    steady_clock::time_point now) const {
  std::vector<std::pair<store::PartitionKey, int32_t>> due;
  for (const auto& [key, h] : halted_) {
    if (h.halting.registry_schema_id && now >= h.next_retry) {
      due.emplace_back(key, *h.halting.registry_schema_id);
    }
  }
  return due;
}

void InvalidRecords::LiftRegistryWait(const store::PartitionKey& key) {
  auto it = halted_.find(key);
  if (it == halted_.end()) return;
  log::Info("schema registry answered; resuming the partition",
            {{"topic", (*options_.topics)[key.first].name}, {"partition", key.second},
             {"offset", it->second.offset}});
  Lift(key);
}

void InvalidRecords::RegistryStillAway(const store::PartitionKey& key,
                                       steady_clock::time_point now) {
  auto it = halted_.find(key);
  if (it == halted_.end()) return;
  HaltedAt& h = it->second;
  h.retry_wait = std::min(h.retry_wait * 2, std::chrono::milliseconds(kMaxDeadLetterRetry));
  h.next_retry = now + h.retry_wait;
}

std::vector<store::PartitionKey> InvalidRecords::Halted() const {
  std::vector<store::PartitionKey> out;
  for (const auto& [key, halt] : halted_) out.push_back(key);
  return out;
}

void InvalidRecords::Lift(const store::PartitionKey& key) {
  const std::string& name = (*options_.topics)[key.first].name;
  halted_.erase(key);
  stats_->halted->Add({{"topic", name}, {"partition", std::to_string(key.second)}}).Set(0);
}

std::vector<store::PartitionKey> InvalidRecords::LiftReplaced() {
  std::vector<store::PartitionKey> lifted;
  for (const auto& [key, halt] : halted_) {
    // A registry topic's schemas are the registry's, by id: a file reload changes nothing.
    if ((*options_.topics)[key.first].value_format == config::ValueFormat::kRegistry ||
        halt.halting.registry_schema_id) {
      continue;
    }
    auto now = options_.schemas != nullptr ? options_.schemas->Get(key.first) : nullptr;
    if (now != halt.schema) lifted.push_back(key);
  }
  for (const auto& key : lifted) {
    log::Info("schema replaced; resuming halted partition",
              {{"topic", (*options_.topics)[key.first].name},
               {"partition", key.second},
               {"offset", halted_[key].offset}});
    Lift(key);
  }
  return lifted;
}

std::vector<store::PartitionKey> InvalidRecords::LiftTopic(size_t topic) {
  std::vector<store::PartitionKey> lifted;
  for (const auto& [key, halt] : halted_) {
    if (key.first == topic) lifted.push_back(key);
  }
  for (const auto& key : lifted) Lift(key);
  return lifted;
}

}  // namespace cachecar::kafka
