// bench_produce: fills a topic with N records of ~180-byte JSON and unique keys
// "key-%08d" (so the store ends with N keys), for the catch-up and Get benchmarks. Every
// field bench/schemas/bench_record.json declares is written, so a catch-up with the schema
// checks each of its formats (uuid, email, date-time) and its pattern.
//
// --format registry-json|avro|protobuf --schema-id N writes the same records in the
// Confluent wire format (a zero byte, the schema id, the payload), encoded here by hand
// from the specifications: Avro binary of bench/schemas/bench_record.avsc, Protobuf of
// bench/schemas/bench_record.proto (message index [0]).
#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"produce benchmark records"};
  std::string bootstrap, topic;
  long count = 1000000;
  app.add_option("--bootstrap", bootstrap)->required();
  app.add_option("--topic", topic)->required();
  app.add_option("--count", count);
  std::string format = "json";
  int schema_id = 0;
  app.add_option("--format", format)->check(CLI::IsMember({"json", "registry-json", "avro", "protobuf"}));
  app.add_option("--schema-id", schema_id);
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
  char key[32], value[256], f[7][64];
  std::string out;
  for (long i = 0; i < count; ++i) {
    int kl = std::snprintf(key, sizeof(key), "key-%08ld", i);
    int vl = 0;
    const char* data = value;
    if (format == "json" || format == "registry-json") {
      vl = std::snprintf(value, sizeof(value),
                         "{\"id\":\"%08lx-1111-4222-8333-%012ld\",\"email\":\"user%ld@example.com\","
                         "\"displayName\":\"User %ld\",\"n\":%ld,\"active\":true,\"pad\":\"xxxxxxxxx\","
                         "\"updatedAt\":\"2026-11-%02ldT%02ld:%02ld:%02ldZ\"}",
                         i, i, i, i, i, 1 + i % 28, i / 3600 % 24, i / 60 % 60, i % 60);
    } else {
      // The same fields: id, email, displayName (strings), n (long), active (boolean),
      // pad, updatedAt (strings).
      std::snprintf(f[0], 64, "%08lx-1111-4222-8333-%012ld", i, i);
      std::snprintf(f[1], 64, "user%ld@example.com", i);
      std::snprintf(f[2], 64, "User %ld", i);
      std::snprintf(f[5], 64, "xxxxxxxxx");
      std::snprintf(f[6], 64, "2026-11-%02ldT%02ld:%02ld:%02ldZ", 1 + i % 28, i / 3600 % 24,
                    i / 60 % 60, i % 60);
      out.clear();
      auto varint = [&](uint64_t v) {
        while (v >= 0x80) { out.push_back(static_cast<char>(v | 0x80)); v >>= 7; }
        out.push_back(static_cast<char>(v));
      };
      auto zigzag = [&](int64_t v) { varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); };
      if (format == "avro") {
        auto str = [&](const char* t) { size_t n = std::strlen(t); zigzag(static_cast<int64_t>(n)); out.append(t, n); };
        str(f[0]); str(f[1]); str(f[2]); zigzag(i); out.push_back(1); str(f[5]); str(f[6]);
      } else {
        out.push_back(0);  // message indexes [0]
        auto str = [&](int field, const char* t) {
          size_t n = std::strlen(t);
          varint(static_cast<uint64_t>(field) << 3 | 2); varint(n); out.append(t, n);
        };
        str(1, f[0]); str(2, f[1]); str(3, f[2]);
        varint(4 << 3); varint(static_cast<uint64_t>(i));
        varint(5 << 3); varint(1);
        str(6, f[5]); str(7, f[6]);
      }
      data = out.data();
      vl = static_cast<int>(out.size());
    }
    std::string framed;
    if (format != "json") {
      framed.assign(1, '\0');
      for (int shift = 24; shift >= 0; shift -= 8) framed.push_back(static_cast<char>(schema_id >> shift));
      framed.append(data, vl);
      data = framed.data();
      vl = static_cast<int>(framed.size());
    }
    while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key, kl),
                             RD_KAFKA_V_VALUE(const_cast<char*>(data), vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
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
