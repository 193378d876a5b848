// bench_produce: fills a topic with N records of ~180-byte JSON and unique keys
// "key-%08d" (so the store ends with N keys), for the catch-up and Get benchmarks. Every
// field bench/schemas/bench_record.json declares is written, so a catch-up with the schema
// checks each of its formats (uuid, email, date-time) and its pattern.
#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"produce benchmark records"};
  std::string bootstrap, topic;
  long count = 1000000;
  app.add_option("--bootstrap", bootstrap)->required();
  app.add_option("--topic", topic)->required();
  app.add_option("--count", count);
  CLI11_PARSE(app, argc, argv);

  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  const char* settings[][2] = {{"bootstrap.servers", bootstrap.c_str()},
                               {"linger.ms", "20"},
                               {"batch.size", "1000000"},
                               {"queue.buffering.max.messages", "1000000"},
                               {"acks", "1"},
                               {"partitioner", "murmur2_random"}};
  for (auto& kv : settings) {
    if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "%s\n", err);
      return 1;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) return 1;
  char key[32], value[256];
  for (long i = 0; i < count; ++i) {
    int kl = std::snprintf(key, sizeof(key), "key-%08ld", i);
    int vl = std::snprintf(value, sizeof(value),
                           "{\"id\":\"%08lx-1111-4222-8333-%012ld\",\"email\":\"user%ld@example.com\","
                           "\"displayName\":\"User %ld\",\"n\":%ld,\"active\":true,\"pad\":\"xxxxxxxxx\","
                           "\"updatedAt\":\"2026-11-%02ldT%02ld:%02ld:%02ldZ\"}",
                           i, i, i, i, i, 1 + i % 28, i / 3600 % 24, i / 60 % 60, i % 60);
    while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key, kl),
                             RD_KAFKA_V_VALUE(value, vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk, 10);
    }
    if (i % 10000 == 0) rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "flush failed\n");
    return 1;
  }
  rd_kafka_destroy(rk);
  std::printf("produced %ld records to %s\n", count, topic.c_str());
  return 0;
}
