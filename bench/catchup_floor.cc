// catchup_floor: the two floors cachecar's catch-up is compared with, on the same topic.
//   --mode consume: a bare librdkafka consumer reading every partition to its end, into
//                   nothing.
//   --mode lmdb:    the same, writing each record into LMDB (key -> value) in write
//                   transactions of 10,000 records.
// Prints records/s. The consumer is configured as cachecar's is (read_committed, assign,
// partition EOF), so the only difference is what is done with each record.
#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <lmdb.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"catch-up floors"};
  std::string bootstrap, topic, mode = "consume", lmdb_dir = "/tmp/catchup-floor-lmdb";
  int partitions = 16;
  app.add_option("--bootstrap", bootstrap)->required();
  app.add_option("--topic", topic)->required();
  app.add_option("--partitions", partitions);
  app.add_option("--mode", mode)->check(CLI::IsMember({"consume", "lmdb"}));
  app.add_option("--lmdb-dir", lmdb_dir);
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
    mdb_env_open(env, lmdb_dir.c_str(), MDB_NOSYNC, 0644);
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
  while (eofs < partitions) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eofs;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++records;
      if (env != nullptr && m->key != nullptr) {
        MDB_val k{m->key_len, m->key}, v{m->len, m->payload};
        mdb_put(txn, dbi, &k, &v, 0);
        if (++in_txn == 10000) {
          mdb_txn_commit(txn);
          mdb_txn_begin(env, nullptr, 0, &txn);
          in_txn = 0;
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
  if (env != nullptr) {
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
