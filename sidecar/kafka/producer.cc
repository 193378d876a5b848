#include "kafka/producer.h"

#include <future>

#include "common/log.h"
#include "kafka/rdkafka_util.h"

namespace cachecar::kafka {

namespace {

Status DeliveryError(rd_kafka_resp_err_t err, const std::string& topic) {
  std::string msg = "producing to " + topic + " failed: " + rd_kafka_err2str(err);
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
      return Status(Code::kInvalidArgument, msg, "VALUE_TOO_LARGE").With("topic", topic);
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
      return Status(Code::kDeadlineExceeded, msg, "KAFKA_TIMEOUT").With("topic", topic);
    default:
      return Status(Code::kUnavailable, msg, "KAFKA_UNAVAILABLE").With("topic", topic);
  }
}

}  // namespace

Delivery ProduceAndWait(RecordSink* sink, ProduceRequest request,
                        std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Delivery>>();
  std::future<Delivery> future = promise->get_future();
  std::string topic = request.topic;
  sink->Produce(std::move(request), [promise](const Delivery& d) { promise->set_value(d); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    Delivery d;
    d.status = Status(Code::kDeadlineExceeded, "producing to " + topic + " timed out",
                      "KAFKA_TIMEOUT");
    return d;
  }
  return future.get();
}

Result<std::unique_ptr<RdKafkaProducer>> RdKafkaProducer::Create(const ProducerOptions& options) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto fail = [&](Status st) -> Result<std::unique_ptr<RdKafkaProducer>> {
    rd_kafka_conf_destroy(conf);
    return st;
  };
  for (const auto& [k, v] : options.properties) {
    Status st = SetConf(conf, k, v);
    if (!st.ok()) return fail(st);
  }
  const std::pair<const char*, std::string> kOwn[] = {
      {"bootstrap.servers", options.bootstrap_servers},
      // No duplicates and no reordering on retries; implies acks=all.
      {"enable.idempotence", "true"},
      {"acks", "all"},
      // The Java client's partitioner for keyed records.
      {"partitioner", "murmur2_random"},
      {"linger.ms", std::to_string(options.linger_ms)},
      {"message.timeout.ms", std::to_string(options.delivery_timeout_ms)},
  };
  for (const auto& [k, v] : kOwn) {
    Status st = SetConf(conf, k, v);
    if (!st.ok()) return fail(st);
  }
  rd_kafka_conf_set_log_cb(conf, LogFromKafka);
  rd_kafka_conf_set_dr_msg_cb(conf, &RdKafkaProducer::OnDelivery);
  // librdkafka backs off reconnects up to 10 s, so after an outage the sidecar could wait
  // that long after the broker is back (bench/: ~6.7 s after a 60 s outage). A broker in
  // the same cluster is cheap to retry every second.
  if (!options.properties.count("reconnect.backoff.max.ms")) {
    SetConf(conf, "reconnect.backoff.max.ms", "1000");
  }
  if (options.metadata_refresh_ms > 0 &&
      !options.properties.count("topic.metadata.refresh.interval.ms")) {
    SetConf(conf, "topic.metadata.refresh.interval.ms",
            std::to_string(options.metadata_refresh_ms));
  }
  rd_kafka_conf_set_error_cb(conf, &RdKafkaProducer::OnError);
  std::unique_ptr<RdKafkaProducer> p(new RdKafkaProducer());
  rd_kafka_conf_set_opaque(conf, p.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) return fail(InvalidArgument(std::string("cannot create producer: ") + err));
  p->rk_ = rk;
  p->topics_ = options.topics;
  if (options.registry != nullptr) {
    p->reachable_gauge_ = &prometheus::BuildGauge()
                               .Name("cachecar_kafka_reachable")
                               .Help("0 while no Kafka broker answers the producer (writes are "
                                     "refused at once), else 1.")
                               .Register(*options.registry)
                               .Add({});
    p->reachable_gauge_->Set(1);
  }
  p->poller_ = std::thread([raw = p.get()] { raw->Run(); });
  return p;
}

void RdKafkaProducer::OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* self = static_cast<RdKafkaProducer*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    self->all_down_reported_ = true;
    log::Warn("kafka: all brokers are down", {{"detail", std::string_view(reason)}});
  }
}

void RdKafkaProducer::SetUnreachable(bool unreachable) {
  if (unreachable_.exchange(unreachable) == unreachable) return;
  if (unreachable) {
    log::Error("kafka unreachable: writes are refused until a broker answers");
  } else {
    log::Info("kafka reachable again: writes accepted");
  }
  if (reachable_gauge_ != nullptr) reachable_gauge_->Set(unreachable ? 0 : 1);
}

void RdKafkaProducer::Run() {
  auto last_check = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  while (!stopping_) {
    rd_kafka_poll(rk_, 100);
    // "All brokers down" may also follow an idle connection the broker closed, so it is
    // only believed once a metadata request fails too.
    if (!all_down_reported_ && !unreachable_) continue;
    if (std::chrono::steady_clock::now() - last_check < std::chrono::seconds(1)) continue;
    last_check = std::chrono::steady_clock::now();
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, nullptr, &md, 1000);
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    all_down_reported_ = false;
    SetUnreachable(err != RD_KAFKA_RESP_ERR_NO_ERROR);
  }
}

RdKafkaProducer::~RdKafkaProducer() {
  if (rk_ == nullptr) return;
  rd_kafka_flush(rk_, 5000);
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  stopping_ = true;
  if (poller_.joinable()) poller_.join();
  rd_kafka_poll(rk_, 0);  // deliver the purged records' callbacks
  rd_kafka_destroy(rk_);
}

void RdKafkaProducer::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  auto* done = static_cast<Callback*>(msg->_private);
  if (done == nullptr) return;
  Delivery d;
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    d.status = DeliveryError(msg->err, msg->rkt != nullptr ? rd_kafka_topic_name(msg->rkt) : "");
  } else {
    d.partition = msg->partition;
    d.offset = msg->offset;
  }
  (*done)(d);
  delete done;
}

void RdKafkaProducer::Produce(ProduceRequest request, Callback done) {
  if (!topics_.count(request.topic)) {
    Delivery d;
    d.status = Status(Code::kPermissionDenied,
                      "topic " + request.topic + " is not writable through this sidecar",
                      "TOPIC_READ_ONLY");
    done(d);
    return;
  }
  if (unreachable_) {
    Delivery d;
    d.status = Status(Code::kUnavailable,
                      "no Kafka broker is reachable; the record was not produced (retry later)",
                      "KAFKA_UNAVAILABLE")
                   .With("topic", request.topic);
    done(d);
    return;
  }
  rd_kafka_headers_t* headers = nullptr;
  if (!request.headers.empty()) {
    headers = rd_kafka_headers_new(request.headers.size());
    for (const auto& [name, value] : request.headers) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
  }
  auto* cb = new Callback(std::move(done));
  const char* value = request.value ? request.value->data() : nullptr;
  size_t value_len = request.value ? request.value->size() : 0;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rk_, RD_KAFKA_V_TOPIC(request.topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(request.has_key ? request.key.data() : nullptr,
                     request.has_key ? request.key.size() : 0),
      RD_KAFKA_V_VALUE(const_cast<char*>(value), value_len), RD_KAFKA_V_HEADERS(headers),
      RD_KAFKA_V_OPAQUE(cb), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (headers != nullptr) rd_kafka_headers_destroy(headers);
    Delivery d;
    d.status = DeliveryError(err, request.topic);
    (*cb)(d);
    delete cb;
  }
}

}  // namespace cachecar::kafka
