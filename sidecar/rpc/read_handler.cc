#include "rpc/read_handler.h"

#include <google/protobuf/util/time_util.h>

#include "api/entry_proto.h"
#include "api/key_rules.h"
#include "api/page_token.h"

namespace cachecar::rpc {
namespace {

// An entry of `topic` as the API's, its value as asked (original_value).
struct EntryWriter {
  const api::SubjectVersionFn& versions;
  size_t topic;
  bool original;

  void operator()(const store::Entry& e, v1::Entry* out) const {
    api::EntryToProto(e.key, api::ServedValue(e.value, e.original, original), e.meta, out,
                      versions, topic);
  }
  void operator()(std::string_view key, const store::DecodedRecord& r, v1::Entry* out) const {
    api::EntryToProto(key, api::ServedValue(r.value, r.original, original), r.meta, out,
                      versions, topic);
  }
};

// FAILED_PRECONDITION when a read asks for original values the topic does not have.
Status CheckOriginal(const config::TopicConfig& topic, bool original) {
  if (!original) return Status::Ok();
  std::string why = api::WhyNoOriginal(topic);
  if (why.empty()) return Status::Ok();
  return Status(Code::kFailedPrecondition, why + "; read without original_value",
                "ORIGINAL_NOT_KEPT")
      .With("topic", topic.name);
}

Status BadRequest(std::vector<FieldViolation> violations) {
  return InvalidArgument("the request is invalid", std::move(violations));
}

void StaleToProto(const health::Staleness& s, v1::Staleness* out) {
  *out->mutable_caught_up_at() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(s.caught_up_ms);
  out->set_reason(s.reason);
}

}  // namespace

ReadHandler::ReadHandler(const config::Config* config, const store::Store* store,
                         const health::CatchUpTracker* tracker, CountersFn counters,
                         ReadLimits limits)
    : config_(config),
      store_(store),
      tracker_(tracker),
      counters_(std::move(counters)),
      limits_(limits) {}

Result<size_t> ReadHandler::ResolveTopic(const std::string& topic, bool allow_cold,
                                         std::vector<FieldViolation>* violations,
                                         std::optional<health::Staleness>* stale) const {
  if (topic.empty()) {
    violations->push_back({"topic", "required"});
    return Status(Code::kInvalidArgument, "");
  }
  for (size_t i = 0; i < config_->topics.size(); ++i) {
    if (config_->topics[i].name != topic) continue;
    std::optional<health::Staleness> unused;
    // A view is as current as its topic.
    const size_t followed = config_->topics[i].view_of.value_or(i);
    if (!tracker_->TopicServable(followed, stale != nullptr ? stale : &unused) && !allow_cold) {
      return Unavailable((followed == i ? "topic " + topic : "view " + topic + " of topic " +
                                                                 config_->topics[followed].name) +
                             " is still catching up; retry, or set allow_cold_cache to read "
                             "what has been applied so far",
                         "CACHE_NOT_READY")
          .With("topic", topic);
    }
    return i;
  }
  // Echo at most a bounded part of a hostile name.
  std::string shown = topic.substr(0, 256);
  return NotFound("topic \"" + shown + "\" is not configured in this sidecar", "TOPIC_NOT_FOUND")
      .With("topic", shown);
}

std::string ReadHandler::ValidateKey(size_t topic, const std::string& key) const {
  return api::ValidateKey(config_->topics[topic], key, limits_.max_key_bytes);
}

Status ReadHandler::ListRejectedRecords(const v1::ListRejectedRecordsRequest& req,
                                        v1::ListRejectedRecordsResponse* resp) const {
  std::vector<FieldViolation> violations;
  Result<size_t> topic = ResolveTopic(req.topic(), /*allow_cold=*/true, &violations);
  if (!violations.empty()) return BadRequest(std::move(violations));
  if (!topic.ok()) return topic.status();
  if (rejected_ == nullptr) return Status::Ok();
  for (const kafka::RejectedRecord& r : rejected_->List(*topic)) {
    v1::RejectedRecord* out = resp->add_records();
    out->set_partition(r.partition);
    out->set_offset(r.offset);
    if (r.has_key) out->set_key(r.key);
    out->set_reason(r.reason);
    out->set_detail(r.detail);
    out->set_action(r.action);
    api::SetKafkaTimestamp(r.timestamp_ms, out, &v1::RejectedRecord::mutable_kafka_timestamp);
    *out->mutable_reject_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
        std::chrono::duration_cast<std::chrono::nanoseconds>(r.rejected_at.time_since_epoch())
            .count());
  }
  return Status::Ok();
}

Status ReadHandler::Get(const v1::GetRequest& req, v1::GetResponse* resp) const {
  std::vector<FieldViolation> violations;
  std::optional<health::Staleness> stale;
  Result<size_t> topic = ResolveTopic(req.topic(), req.allow_cold_cache(), &violations, &stale);
  if (!topic.ok() && violations.empty()) return topic.status();
  if (topic.ok()) {
    std::string problem = ValidateKey(*topic, req.key());
    if (!problem.empty()) violations.push_back({"key", std::move(problem)});
  }
  if (!topic.ok() && req.key().empty()) violations.push_back({"key", "required"});
  if (!violations.empty()) return BadRequest(std::move(violations));
  if (Status st = CheckOriginal(config_->topics[*topic], req.original_value()); !st.ok()) {
    return st;
  }

  Result<store::Snapshot> snap = store_->NewSnapshot();
  if (!snap.ok()) return snap.status();
  const std::string key = api::StoredKey(config_->topics[*topic], req.key());
  Result<std::optional<store::DecodedRecord>> e = snap->GetView(*topic, key);
  if (!e.ok()) return e.status();
  resp->set_store_revision(snap->revision());
  if (stale) StaleToProto(*stale, resp->mutable_stale());
  resp->set_found(e->has_value());
  if (e->has_value()) {
    EntryWriter{versions_, *topic, req.original_value()}(key, **e, resp->mutable_entry());
  }
  return Status::Ok();
}

Status ReadHandler::BatchGet(const v1::BatchGetRequest& req, v1::BatchGetResponse* resp) const {
  std::vector<FieldViolation> violations;
  std::optional<health::Staleness> stale;
  Result<size_t> topic = ResolveTopic(req.topic(), req.allow_cold_cache(), &violations, &stale);
  if (!topic.ok() && violations.empty()) return topic.status();
  if (req.keys_size() == 0) {
    violations.push_back({"keys", "at least one key is required"});
  } else if (static_cast<size_t>(req.keys_size()) > limits_.max_batch_keys) {
    violations.push_back({"keys", std::to_string(req.keys_size()) + " keys; at most " +
                                      std::to_string(limits_.max_batch_keys) + " allowed"});
  } else if (topic.ok()) {
    for (int i = 0; i < req.keys_size() && violations.size() < 100; ++i) {
      std::string problem = ValidateKey(*topic, req.keys(i));
      if (!problem.empty()) {
        violations.push_back({"keys[" + std::to_string(i) + "]", std::move(problem)});
      }
    }
  }
  if (!violations.empty()) return BadRequest(std::move(violations));
  if (Status st = CheckOriginal(config_->topics[*topic], req.original_value()); !st.ok()) {
    return st;
  }

  Result<store::Snapshot> snap = store_->NewSnapshot();
  if (!snap.ok()) return snap.status();
  resp->mutable_results()->Reserve(req.keys_size());
  const EntryWriter write{versions_, *topic, req.original_value()};
  for (const std::string& asked : req.keys()) {
    const std::string key = api::StoredKey(config_->topics[*topic], asked);
    Result<std::optional<store::DecodedRecord>> e = snap->GetView(*topic, key);
    if (!e.ok()) return e.status();
    v1::BatchGetResult* r = resp->add_results();
    r->set_key(asked);
    r->set_found(e->has_value());
    if (e->has_value()) write(key, **e, r->mutable_entry());
  }
  resp->set_store_revision(snap->revision());
  if (stale) StaleToProto(*stale, resp->mutable_stale());
  return Status::Ok();
}

Status ReadHandler::List(const v1::ListRequest& req, v1::ListResponse* resp) const {
  std::vector<FieldViolation> violations;
  std::optional<health::Staleness> stale;
  Result<size_t> topic = ResolveTopic(req.topic(), req.allow_cold_cache(), &violations, &stale);
  if (!topic.ok() && violations.empty()) return topic.status();
  if (req.page_size() < 0) violations.push_back({"page_size", "must not be negative"});
  if (req.prefix().size() > limits_.max_key_bytes) {
    violations.push_back({"prefix", "is longer than the longest key allowed"});
  }
  std::string cursor;
  if (!req.page_token().empty()) {
    Result<std::string> c = api::DecodePageToken(req.page_token(), req.topic(), req.prefix());
    if (!c.ok()) {
      for (const auto& v : c.status().violations()) violations.push_back(v);
    } else {
      cursor = std::move(c).value();
    }
  }
  if (!violations.empty()) return BadRequest(std::move(violations));
  if (Status st = CheckOriginal(config_->topics[*topic], req.original_value()); !st.ok()) {
    return st;
  }

  size_t limit = req.page_size() == 0 ? limits_.default_page_size
                                      : std::min(req.page_size(), limits_.max_page_size);
  Result<store::Snapshot> snap = store_->NewSnapshot();
  if (!snap.ok()) return snap.status();
  Result<store::ScanPage> page =
      snap->Scan(*topic, req.prefix(), cursor, limit, limits_.max_page_bytes);
  if (!page.ok()) return page.status();
  resp->mutable_entries()->Reserve(static_cast<int>(page->entries.size()));
  const EntryWriter write{versions_, *topic, req.original_value()};
  for (const auto& e : page->entries) write(e, resp->add_entries());
  if (!page->next_cursor.empty()) {
    resp->set_next_page_token(api::EncodePageToken(req.topic(), req.prefix(), page->next_cursor));
  }
  resp->set_store_revision(snap->revision());
  if (stale) StaleToProto(*stale, resp->mutable_stale());
  return Status::Ok();
}

Status ReadHandler::GetStatus(const v1::GetStatusRequest&, v1::GetStatusResponse* resp) const {
  std::vector<health::TopicProgress> progress = tracker_->Progress();
  std::vector<kafka::TopicCounters> counters = counters_ ? counters_() : std::vector<kafka::TopicCounters>();
  resp->set_ready(tracker_->Ready());
  resp->set_not_ready_reason(tracker_->NotReadyReason());
  resp->set_store_revision(store_->revision());
  resp->set_store_id(store_->store_id());
  for (size_t i = 0; i < progress.size(); ++i) {
    const health::TopicProgress& tp = progress[i];
    v1::TopicStatus* ts = resp->add_topics();
    ts->set_topic(tp.topic);
    ts->set_ready(tp.ready);
    ts->set_required(tp.required);
    ts->set_not_ready_reason(tp.not_ready_reason);
    if (tp.stale) StaleToProto(*tp.stale, ts->mutable_stale());
    if (i < counters.size()) {
      ts->set_records_applied(counters[i].applied);
      ts->set_records_rejected(counters[i].rejected);
      for (const auto& [id, n] : counters[i].schema_ids) {
        v1::SchemaIdCount* sc = ts->add_schema_ids();
        sc->set_schema_id(id);
        sc->set_records_applied(n);
      }
    }
    Result<uint64_t> keys = store_->KeyCount(i);
    if (keys.ok()) ts->set_key_count(*keys);
    for (const auto& p : tp.partitions) {
      v1::PartitionStatus* ps = ts->add_partitions();
      ps->set_partition(p.partition);
      ps->set_applied_offset(p.applied);
      ps->set_start_end_offset(p.start_end_offset);
      ps->set_end_offset(p.end_offset);
      ps->set_lag(p.end_offset < 0 ? -1
                                   : std::max<int64_t>(0, p.end_offset - std::max<int64_t>(0, p.applied)));
      ps->set_ready(p.ready && !p.halted);
      if (p.halted) ps->set_halted_reason(p.halt_reason);
    }
  }
  // Views, after the topics: as ready as the topic they index.
  for (size_t i = progress.size(); i < config_->topics.size(); ++i) {
    const config::TopicConfig& view = config_->topics[i];
    if (!view.view_of || *view.view_of >= progress.size()) continue;
    const health::TopicProgress& tp = progress[*view.view_of];
    v1::TopicStatus* ts = resp->add_topics();
    ts->set_topic(view.name);
    ts->set_view_of(tp.topic);
    ts->set_ready(tp.ready);
    ts->set_required(tp.required);
    ts->set_not_ready_reason(tp.not_ready_reason);
    if (tp.stale) StaleToProto(*tp.stale, ts->mutable_stale());
    Result<uint64_t> keys = store_->KeyCount(i);
    if (keys.ok()) ts->set_key_count(*keys);
  }
  return Status::Ok();
}

}  // namespace cachecar::rpc
