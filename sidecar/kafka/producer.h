// RecordSink: where Put, Delete and dead letters are produced. RdKafkaProducer is the real
// one: an idempotent librdkafka producer with acks=all and the Java client's key-to-
// partition mapping (murmur2), so cachecar and Java producers put a key in the same
// partition.
//
// A producer exists only when some topic is writable or dead-letters; it may produce only
// to the topics it was created for (PERMISSION_DENIED otherwise).
//
// Broker outages: when librdkafka reports every broker down, the producer's thread asks
// the cluster for metadata every second; while that fails, Produce refuses at once with
// UNAVAILABLE (KAFKA_UNAVAILABLE) instead of queueing records that would wait out their
// callers' deadlines. The first answer (or acknowledged record) lifts it.
#pragma once

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace cachecar::kafka {

struct ProduceRequest {
  std::string topic;
  bool has_key = true;
  std::string key;
  std::optional<std::string> value;  // nullopt: a tombstone
  std::vector<std::pair<std::string, std::string>> headers;
};

struct Delivery {
  // OK, or: INVALID_ARGUMENT (VALUE_TOO_LARGE) the broker refused the size;
  // DEADLINE_EXCEEDED (KAFKA_TIMEOUT) not acknowledged within the delivery timeout;
  // UNAVAILABLE (KAFKA_UNAVAILABLE) any other Kafka failure, with the broker's reason.
  Status status;
  int32_t partition = -1;
  int64_t offset = -1;
};

class RecordSink {
 public:
  using Callback = std::function<void(const Delivery&)>;
  virtual ~RecordSink() = default;
  // Produces asynchronously. `done` runs exactly once: on the producer's thread when the
  // broker answers, or inline when the record is refused at once.
  virtual void Produce(ProduceRequest request, Callback done) = 0;
};

// Produces one record and waits for the broker's answer (dead letters: the source offset
// may move past a record only once its dead letter is durable).
Delivery ProduceAndWait(RecordSink* sink, ProduceRequest request,
                        std::chrono::milliseconds timeout);

struct ProducerOptions {
  std::string bootstrap_servers;
  std::map<std::string, std::string> properties;  // passed through (TLS, SASL, ...)
  std::set<std::string> topics;                   // the only topics it may write
  uint32_t linger_ms = 0;
  uint32_t delivery_timeout_ms = 30000;
  // How often the producer refreshes topic metadata (partitions added to a topic are
  // written to after the next refresh); 0: librdkafka's default.
  uint32_t metadata_refresh_ms = 0;
  // Where cachecar_kafka_reachable is registered (null: nowhere).
  prometheus::Registry* registry = nullptr;
};

class RdKafkaProducer : public RecordSink {
 public:
  static Result<std::unique_ptr<RdKafkaProducer>> Create(const ProducerOptions& options);
  // Waits up to 5 s for records in flight, then fails what is left (their callbacks run).
  ~RdKafkaProducer() override;

  void Produce(ProduceRequest request, Callback done) override;

  // False while no broker is reachable (see above).
  bool reachable() const { return !unreachable_.load(); }

 private:
  RdKafkaProducer() = default;
  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  void Run();
  void SetUnreachable(bool unreachable);

  rd_kafka_t* rk_ = nullptr;
  std::set<std::string> topics_;
  std::atomic<bool> stopping_{false};
  // librdkafka said all brokers are down; the thread checks whether that is still so.
  std::atomic<bool> all_down_reported_{false};
  std::atomic<bool> unreachable_{false};  // a check failed: refuse produce
  prometheus::Gauge* reachable_gauge_ = nullptr;  // set before the thread starts
  std::thread poller_;  // serves delivery reports and the reachability checks
};

}  // namespace cachecar::kafka
