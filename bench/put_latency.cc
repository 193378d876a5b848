// put_latency: one write at a time, timed from send to answer, so the two numbers compare
// the same thing:
//   --mode put      cachecar Put (default: wait until the record is applied and readable)
//   --mode ack      cachecar Put with ack_only (answer at the broker's acknowledgement)
//   --mode produce  a bare librdkafka producer, idempotent, acks=all, linger.ms=0, waiting
//                   for each delivery report — the floor a Put cannot beat
// Values are bench/produce.cc's shape (valid for bench/schemas/bench_record.json).
// Prints the mean and p50/p90/p99/max in microseconds.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafka.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cachecar/v1/cache.grpc.pb.h"

using Clock = std::chrono::steady_clock;
namespace v1 = cachecar::v1;

namespace {

void MakeRecord(long i, std::string* key, std::string* value) {
  char k[32], v[256];
  std::snprintf(k, sizeof(k), "put-%08ld", i % 100000);
  std::snprintf(v, sizeof(v),
                "{\"id\":\"%08lx-1111-4222-8333-%012ld\",\"email\":\"user%ld@example.com\","
                "\"displayName\":\"User %ld\",\"n\":%ld,\"active\":true,\"pad\":\"xxxxxxxxx\","
                "\"updatedAt\":\"2026-11-%02ldT%02ld:%02ld:%02ldZ\"}",
                i, i, i, i, i, 1 + i % 28, i / 3600 % 24, i / 60 % 60, i % 60);
  *key = k;
  *value = v;
}

double Percentile(std::vector<double>& sorted, double p) {
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

struct Delivery {
  bool done = false;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* d = static_cast<Delivery*>(m->_private);
  d->err = m->err;
  d->done = true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sequential write latency: cachecar Put vs bare librdkafka produce"};
  std::string mode = "put", target, bootstrap, topic = "bench-put";
  long count = 2000, warmup = 200;
  app.add_option("--mode", mode)->check(CLI::IsMember({"put", "ack", "produce"}));
  app.add_option("--target", target, "cachecar gRPC address (put, ack)");
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (produce)");
  app.add_option("--topic", topic);
  app.add_option("--count", count, "measured writes");
  app.add_option("--warmup", warmup, "writes before measuring");
  CLI11_PARSE(app, argc, argv);

  std::vector<double> latencies_us;
  latencies_us.reserve(count);
  long errors = 0;
  std::string key, value;

  if (mode == "produce") {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const char* settings[][2] = {{"bootstrap.servers", bootstrap.c_str()},
                                 {"enable.idempotence", "true"},
                                 {"acks", "all"},
                                 {"linger.ms", "0"},
                                 {"partitioner", "murmur2_random"}};
    for (auto& kv : settings) {
      if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        std::fprintf(stderr, "%s\n", err);
        return 1;
      }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == nullptr) {
      std::fprintf(stderr, "%s\n", err);
      return 1;
    }
    for (long i = 0; i < warmup + count; ++i) {
      MakeRecord(i, &key, &value);
      Delivery d;
      auto start = Clock::now();
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++errors;
        continue;
      }
      while (!d.done) rd_kafka_poll(rk, 100);
      auto us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) ++errors;
      else if (i >= warmup) latencies_us.push_back(us);
    }
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
  } else {
    auto stub = v1::CacheService::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    for (long i = 0; i < warmup + count; ++i) {
      MakeRecord(i, &key, &value);
      v1::PutRequest request;
      request.set_topic(topic);
      request.set_key(key);
      request.set_value(value);
      request.set_ack_only(mode == "ack");
      v1::PutResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      auto start = Clock::now();
      grpc::Status status = stub->Put(&context, request, &response);
      auto us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      if (!status.ok() || (mode == "put" && !response.applied())) {
        if (errors++ == 0) std::fprintf(stderr, "put failed: %s\n", status.error_message().c_str());
      } else if (i >= warmup) {
        latencies_us.push_back(us);
      }
    }
  }
  if (latencies_us.empty()) {
    std::fprintf(stderr, "no successful writes (%ld errors)\n", errors);
    return 1;
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  double sum = 0;
  for (double us : latencies_us) sum += us;
  std::printf(
      "mode=%s writes=%zu errors=%ld mean_us=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f "
      "max_us=%.0f\n",
      mode.c_str(), latencies_us.size(), errors, sum / static_cast<double>(latencies_us.size()),
      Percentile(latencies_us, 0.50), Percentile(latencies_us, 0.90),
      Percentile(latencies_us, 0.99), latencies_us.back());
  return errors == 0 ? 0 : 1;
}
