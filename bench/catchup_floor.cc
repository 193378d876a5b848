// catchup_floor: the two floors cachecar's catch-up is compared with, on the same topic.
//   --mode consume: a bare librdkafka consumer reading every partition to its end, into
//                   nothing.
//   --mode lmdb:    the same, writing each record into LMDB (key -> value).
// Prints records/s. The consumer is configured as cachecar's is (read_committed, assign,
// partition EOF), so the only difference is what is done with each record. The defaults
// are the fastest this machine found (the strongest honest floor): messages taken 1,000 at
// a time (rd_kafka_consume_batch_queue), and each write transaction's 100,000 records put
// in key order (a stable sort, so the last record of a key wins), which keeps LMDB's
// B-tree pages hot. `--batch 1 --txn-records 10000 --no-sort` is the floor before.
#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <lmdb.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include <filesystem>
#include <string>
#include <utility>

int main(int argc, char** argv) {
  CLI::App app{"catch-up floors"};
  std::string bootstrap, topic, mode = "consume", lmdb_dir = "/tmp/catchup-floor-lmdb";
  int partitions = 16;
  app.add_option("--bootstrap", bootstrap)->required();
  app.add_option("--topic", topic)->required();
  app.add_option("--partitions", partitions);
  app.add_option("--mode", mode)->check(CLI::IsMember({"consume", "lmdb"}));
  app.add_option("--lmdb-dir", lmdb_dir);
  int batch = 1000;
  bool writemap = false;
  long txn_records = 100000;
  app.add_option("--batch", batch, "messages per consume call (1: rd_kafka_consumer_poll)");
  app.add_flag("--writemap", writemap, "MDB_WRITEMAP");
  app.add_option("--txn-records", txn_records, "records per LMDB write transaction");
  bool sorted = true;
  app.add_flag("--sort,!--no-sort", sorted,
               "write each transaction's records in key order (last wins)");
  CLI11_PARSE(app, argc, argv);

  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  const char* settings[][2] = {{"bootstrap.servers", bootstrap.c_str()},
                               {"group.id", "catchup-floor"},
                               {"enable.auto.commit", "false"},
                               {"enable.partition.eof", "true"},
                               {"isolation.level", "read_committed"},
                               {"fetch.wait.max.ms", "10"},
                               {"queued.max.messages.kbytes", "65536"}};
  for (auto& kv : settings) rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  rd_kafka_poll_set_consumer(rk);

  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  MDB_txn* txn = nullptr;
  if (mode == "lmdb") {
    std::filesystem::remove_all(lmdb_dir);
    std::filesystem::create_directories(lmdb_dir);
    mdb_env_create(&env);
    mdb_env_set_mapsize(env, 16ull << 30);
    mdb_env_open(env, lmdb_dir.c_str(), MDB_NOSYNC | (writemap ? MDB_WRITEMAP : 0), 0644);
    mdb_txn_begin(env, nullptr, 0, &txn);
    mdb_dbi_open(txn, nullptr, 0, &dbi);
  }

  auto start = std::chrono::steady_clock::now();
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);

  long records = 0, in_txn = 0;
  int eofs = 0;
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk);
  std::vector<rd_kafka_message_t*> msgs(static_cast<size_t>(std::max(batch, 1)));
  std::vector<std::pair<std::string, std::string>> pending;
  auto flush_pending = [&] {
    std::stable_sort(pending.begin(), pending.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [key, value] : pending) {
      MDB_val k{key.size(), key.data()}, v{value.size(), value.data()};
      mdb_put(txn, dbi, &k, &v, 0);
    }
    pending.clear();
  };
  auto handle = [&](rd_kafka_message_t* m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eofs;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++records;
      if (env != nullptr && m->key != nullptr) {
        if (sorted) {
          pending.emplace_back(std::string(static_cast<const char*>(m->key), m->key_len),
                               std::string(static_cast<const char*>(m->payload), m->len));
        } else {
          MDB_val k{m->key_len, m->key}, v{m->len, m->payload};
          mdb_put(txn, dbi, &k, &v, 0);
        }
        if (++in_txn == txn_records) {
          flush_pending();
          mdb_txn_commit(txn);
          mdb_txn_begin(env, nullptr, 0, &txn);
          in_txn = 0;
        }
      }
    }
    rd_kafka_message_destroy(m);
  };
  while (eofs < partitions) {
    if (batch <= 1) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
      if (m != nullptr) handle(m);
      continue;
    }
    ssize_t n = rd_kafka_consume_batch_queue(queue, 10, msgs.data(), msgs.size());
    for (ssize_t i = 0; i < n; ++i) handle(msgs[static_cast<size_t>(i)]);
  }
  rd_kafka_queue_destroy(queue);
  if (env != nullptr) {
    flush_pending();
    mdb_txn_commit(txn);
    mdb_env_close(env);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("mode=%s records=%ld seconds=%.3f records_per_second=%.0f\n", mode.c_str(), records,
              secs, records / secs);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}
