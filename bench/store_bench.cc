// store_bench: the Store against raw LMDB doing the same work (the "raw LMDB" baseline).
//   Apply: a 10,000-record write transaction (150-byte values) through Store::Apply, beside
//          10,000 bare mdb_put calls in one transaction.
//   Get:   a point read through Snapshot::Get (own read txn + decode + copy), beside a bare
//          read txn + mdb_get on 100,000 keys.
#include <benchmark/benchmark.h>
#include <lmdb.h>

#include <cstdio>

#include "store/store.h"
#include "test_util.h"

namespace {

constexpr int kKeys = 100000;
const std::string kValue(150, 'v');

std::string Key(long i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key-%08ld", i);
  return buf;
}

void BM_StoreApply10k(benchmark::State& state) {
  cachecar::testing::TempDir dir;
  cachecar::store::Options o;
  o.path = dir.path();
  o.topics = {"bench"};
  auto store = std::move(cachecar::store::Store::Open(o)).value();
  long next = 0;
  for (auto _ : state) {
    cachecar::store::WriteBatch b;
    for (int i = 0; i < 10000; ++i, ++next) {
      cachecar::store::Mutation m;
      m.key = Key(next % 1000000);
      m.value = kValue;
      m.offset = next;
      b.mutations.push_back(std::move(m));
    }
    b.positions[{0, 0}] = next;
    benchmark::DoNotOptimize(store->Apply(b));
  }
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_StoreApply10k)->Unit(benchmark::kMillisecond);

void BM_RawLmdbPut10k(benchmark::State& state) {
  cachecar::testing::TempDir dir;
  MDB_env* env;
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, 16ull << 30);
  mdb_env_open(env, dir.path().c_str(), MDB_NOSYNC, 0644);
  MDB_dbi dbi;
  long next = 0;
  for (auto _ : state) {
    MDB_txn* txn;
    mdb_txn_begin(env, nullptr, 0, &txn);
    mdb_dbi_open(txn, nullptr, 0, &dbi);
    for (int i = 0; i < 10000; ++i, ++next) {
      std::string k = Key(next % 1000000);
      MDB_val kv{k.size(), k.data()}, vv{kValue.size(), const_cast<char*>(kValue.data())};
      mdb_put(txn, dbi, &kv, &vv, 0);
    }
    mdb_txn_commit(txn);
  }
  mdb_env_close(env);
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_RawLmdbPut10k)->Unit(benchmark::kMillisecond);

void BM_StoreGet(benchmark::State& state) {
  cachecar::testing::TempDir dir;
  cachecar::store::Options o;
  o.path = dir.path();
  o.topics = {"bench"};
  auto store = std::move(cachecar::store::Store::Open(o)).value();
  cachecar::store::WriteBatch b;
  for (int i = 0; i < kKeys; ++i) {
    cachecar::store::Mutation m;
    m.key = Key(i);
    m.value = kValue;
    b.mutations.push_back(std::move(m));
  }
  (void)store->Apply(b);
  uint64_t rng = 88172645463325252ull;
  for (auto _ : state) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    auto snap = store->NewSnapshot();
    benchmark::DoNotOptimize(snap->Get(0, Key(static_cast<long>(rng % kKeys))));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreGet);

void BM_RawLmdbGet(benchmark::State& state) {
  cachecar::testing::TempDir dir;
  MDB_env* env;
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, 16ull << 30);
  mdb_env_open(env, dir.path().c_str(), MDB_NOSYNC | MDB_NOTLS, 0644);
  MDB_dbi dbi;
  MDB_txn* txn;
  mdb_txn_begin(env, nullptr, 0, &txn);
  mdb_dbi_open(txn, nullptr, 0, &dbi);
  for (int i = 0; i < kKeys; ++i) {
    std::string k = Key(i);
    MDB_val kv{k.size(), k.data()}, vv{kValue.size(), const_cast<char*>(kValue.data())};
    mdb_put(txn, dbi, &kv, &vv, 0);
  }
  mdb_txn_commit(txn);
  uint64_t rng = 88172645463325252ull;
  for (auto _ : state) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    std::string k = Key(static_cast<long>(rng % kKeys));
    MDB_txn* rt;
    mdb_txn_begin(env, nullptr, MDB_RDONLY, &rt);
    MDB_val kv{k.size(), k.data()}, vv;
    benchmark::DoNotOptimize(mdb_get(rt, dbi, &kv, &vv));
    mdb_txn_abort(rt);
  }
  mdb_env_close(env);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawLmdbGet);

}  // namespace

BENCHMARK_MAIN();
