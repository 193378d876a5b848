#include "kafka/rdkafka_source.h"

#include <cstring>

#include "common/log.h"
#include "kafka/rdkafka_util.h"

namespace cachecar::kafka {

Result<std::unique_ptr<RdKafkaSource>> RdKafkaSource::Create(
    const std::string& bootstrap_servers, const std::map<std::string, std::string>& properties,
    std::vector<std::string> topics, const std::string& group_id) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto fail = [&](Status st) -> Result<std::unique_ptr<RdKafkaSource>> {
    rd_kafka_conf_destroy(conf);
    return st;
  };
  for (const auto& [k, v] : properties) {
    Status st = SetConf(conf, k, v);
    if (!st.ok()) return fail(st);
  }
  // cachecar's own settings (config refuses user values for these).
  const std::pair<const char*, std::string> kOwn[] = {
      {"bootstrap.servers", bootstrap_servers},
      // The group is never joined (assign, not subscribe); offsets are committed to it
      // only for Kafka's lag tooling.
      {"group.id", group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      {"isolation.level", "read_committed"},
      // A first read starts at the beginning (kOffsetBeginning is explicit); a stored
      // position that fell out of the log is an error the materializer handles.
      {"auto.offset.reset", "error"},
  };
  for (const auto& [k, v] : kOwn) {
    Status st = SetConf(conf, k, v);
    if (!st.ok()) return fail(st);
  }
  rd_kafka_conf_set_log_cb(conf, LogFromKafka);
  rd_kafka_conf_set_offset_commit_cb(conf, &RdKafkaSource::OnCommit);
  rd_kafka_conf_set_error_cb(conf, &RdKafkaSource::OnError);
  // Sensible throughput defaults a user may still override.
  if (!properties.count("fetch.wait.max.ms")) SetConf(conf, "fetch.wait.max.ms", "10");
  if (!properties.count("queued.max.messages.kbytes")) {
    SetConf(conf, "queued.max.messages.kbytes", "65536");
  }
  // librdkafka backs off reconnects up to 10 s, so after an outage the sidecar could wait
  // that long after the broker is back (bench/: ~6.7 s after a 60 s outage). A broker in
  // the same cluster is cheap to retry every second.
  if (!properties.count("reconnect.backoff.max.ms")) {
    SetConf(conf, "reconnect.backoff.max.ms", "1000");
  }
  std::unique_ptr<RdKafkaSource> s(new RdKafkaSource());
  rd_kafka_conf_set_opaque(conf, s.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) return fail(InvalidArgument(std::string("kafka consumer: ") + err));
  s->rk_ = rk;
  rd_kafka_poll_set_consumer(rk);
  s->topics_ = std::move(topics);
  for (const auto& t : s->topics_) {
    s->topic_handles_.push_back(rd_kafka_topic_new(rk, t.c_str(), nullptr));
  }
  return s;
}

RdKafkaSource::~RdKafkaSource() {
  if (last_ != nullptr) rd_kafka_message_destroy(last_);
  if (rk_ != nullptr) {
    rd_kafka_assign(rk_, nullptr);
    rd_kafka_consumer_close(rk_);
    for (auto* t : topic_handles_) rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk_);
  }
}

size_t RdKafkaSource::TopicIndex(const char* name) const {
  for (size_t i = 0; i < topics_.size(); ++i) {
    if (topics_[i] == name) return i;
  }
  return topics_.size();
}

Result<int32_t> RdKafkaSource::PartitionCount(size_t topic, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk_, 0, topic_handles_.at(topic), &md, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return FromKafka(err, "metadata for topic " + topics_[topic]);
  }
  Result<int32_t> out = NotFound("topic " + topics_[topic] + " does not exist",
                                 "KAFKA_TOPIC_NOT_FOUND");
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (topics_[topic] != t.topic) continue;
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      out = FromKafka(t.err, "metadata for topic " + topics_[topic]);
    } else if (t.partition_cnt == 0) {
      out = NotFound("topic " + topics_[topic] + " has no partitions", "KAFKA_TOPIC_NOT_FOUND");
    } else {
      out = t.partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

Result<int64_t> RdKafkaSource::LogStartOffset(size_t topic, int32_t partition,
                                              std::chrono::milliseconds timeout) {
  int64_t low = 0, high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
      rk_, topics_.at(topic).c_str(), partition, &low, &high, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return FromKafka(err, "log start of " + topics_[topic] + "/" + std::to_string(partition));
  }
  return low;
}

Result<std::vector<int64_t>> RdKafkaSource::EndOffsets(size_t topic, int32_t partitions,
                                                        std::chrono::milliseconds timeout) {
  // ListOffsets for "latest" carries the consumer's isolation level, so for
  // read_committed this is the last stable offset.
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topics_.at(topic).c_str(), p)->offset =
        RD_KAFKA_OFFSET_END;
  }
  rd_kafka_resp_err_t err =
      rd_kafka_offsets_for_times(rk_, list, static_cast<int>(timeout.count()));
  Result<std::vector<int64_t>> out = std::vector<int64_t>(partitions, 0);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    out = FromKafka(err, "end offsets of " + topics_[topic]);
  } else {
    for (int i = 0; i < list->cnt && out.ok(); ++i) {
      const auto& e = list->elems[i];
      if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        out = FromKafka(e.err, "end offset of " + topics_[topic] + "/" +
                                   std::to_string(e.partition));
      } else {
        out.value().at(e.partition) = e.offset;
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

Status RdKafkaSource::Assign(const std::vector<Assignment>& assignments) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(assignments.size()));
  for (const auto& a : assignments) {
    rd_kafka_topic_partition_list_add(list, topics_.at(a.topic).c_str(), a.partition)->offset =
        a.offset;
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(rk_, list);
  // A partition paused before (halted) fetches again from its new offset.
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_resume_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return FromKafka(err, "assign");
  return Status::Ok();
}

Status RdKafkaSource::Pause(size_t topic, int32_t partition) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topics_.at(topic).c_str(), partition);
  rd_kafka_resp_err_t err = rd_kafka_pause_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return FromKafka(err, "pause");
  return Status::Ok();
}

void RdKafkaSource::OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* self = static_cast<RdKafkaSource*>(opaque);
  if (self->errors_.size() < 100) {
    self->errors_.emplace_back(static_cast<rd_kafka_resp_err_t>(err), reason);
  }
}

bool RdKafkaSource::Poll(std::chrono::milliseconds timeout, SourceEvent* ev) {
  if (last_ != nullptr) {
    rd_kafka_message_destroy(last_);
    last_ = nullptr;
  }
  rd_kafka_message_t* m = nullptr;
  if (errors_.empty()) m = rd_kafka_consumer_poll(rk_, static_cast<int>(timeout.count()));
  if (m == nullptr && !errors_.empty()) {
    *ev = SourceEvent();
    ev->kind = SourceEvent::Kind::kError;
    ev->topic = topics_.size();  // not tied to one topic
    ev->error = FromKafka(errors_.front().first, "kafka: " + errors_.front().second);
    errors_.erase(errors_.begin());
    return true;
  }
  if (m == nullptr) return false;
  last_ = m;
  *ev = SourceEvent();
  ev->topic = m->rkt != nullptr ? TopicIndex(rd_kafka_topic_name(m->rkt)) : topics_.size();
  ev->partition = m->partition;
  ev->offset = m->offset;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    ev->kind = SourceEvent::Kind::kPartitionEnd;
    return true;
  }
  // auto.offset.reset=error reports a position outside the log as _AUTO_OFFSET_RESET
  // (OFFSET_OUT_OF_RANGE from older brokers' fetch path).
  if (m->rkt != nullptr && (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)) {
    ev->kind = SourceEvent::Kind::kOffsetOutOfRange;
    ev->error = FromKafka(m->err, std::string(rd_kafka_topic_name(m->rkt)) + ": " +
                                      rd_kafka_message_errstr(m));
    return true;
  }
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ev->kind = SourceEvent::Kind::kError;
    std::string what = "consumer";
    if (m->rkt != nullptr) what += " " + std::string(rd_kafka_topic_name(m->rkt));
    ev->error = FromKafka(m->err, what + ": " + rd_kafka_message_errstr(m));
    return true;
  }
  ev->kind = SourceEvent::Kind::kRecord;
  ev->timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
  ev->has_key = m->key != nullptr;
  if (ev->has_key) ev->key = std::string_view(static_cast<const char*>(m->key), m->key_len);
  ev->has_value = m->payload != nullptr;
  if (ev->has_value) {
    ev->value = std::string_view(static_cast<const char*>(m->payload), m->len);
  }
  ev->headers.clear();
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      std::optional<std::string_view> v;
      if (value != nullptr) v = std::string_view(static_cast<const char*>(value), size);
      ev->headers.emplace_back(std::string_view(name), v);
    }
  }
  return true;
}

int64_t RdKafkaSource::CachedEndOffset(size_t topic, int32_t partition) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(rk_, topics_.at(topic).c_str(), partition, &lo, &hi) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return hi;
}

void RdKafkaSource::CommitOffsets(const std::vector<Assignment>& positions) {
  if (positions.empty()) return;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& a : positions) {
    if (a.offset < 0) continue;
    rd_kafka_topic_partition_list_add(list, topics_.at(a.topic).c_str(), a.partition)->offset =
        a.offset;
  }
  // Asynchronous: the result comes back through OnCommit during a later Poll.
  if (list->cnt > 0) rd_kafka_commit(rk_, list, 1);
  rd_kafka_topic_partition_list_destroy(list);
}

void RdKafkaSource::OnCommit(rd_kafka_t*, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  auto* self = static_cast<RdKafkaSource*>(opaque);
  std::string error;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    error = rd_kafka_err2str(err);
  } else if (offsets != nullptr) {
    for (int i = 0; i < offsets->cnt && error.empty(); ++i) {
      if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        error = std::string(offsets->elems[i].topic) + ": " +
                rd_kafka_err2str(offsets->elems[i].err);
      }
    }
  }
  if (self != nullptr && self->commit_listener_) self->commit_listener_(error.empty(), error);
}

}  // namespace cachecar::kafka
