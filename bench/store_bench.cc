// store_bench: the Store against raw LMDB doing the same work (the "raw LMDB" baseline).
//   Apply: a 10,000-record write transaction (150-byte values) through Store::Apply, beside
//          10,000 bare mdb_put calls in one transaction.
//   Get:   a point read through Snapshot::Get (own read txn + decode + copy), beside a bare
//          read txn + mdb_get on 100,000 keys.
//   BatchGet100: 100 random reads in one snapshot (the BatchGet path, Snapshot::GetView),
//          beside 100 bare mdb_get in one read txn, over 100k and 1M keys written in
//          random order (as partitions interleave them in catch-up).
#include <benchmark/benchmark.h>
#include <lmdb.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <memory>
#include <random>
#include <vector>

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

std::unique_ptr<cachecar::store::Store> OpenStore(const cachecar::testing::TempDir& dir) {
  cachecar::store::Options o;
  o.path = dir.path();
  o.topics = {"bench"};
  // The sidecar's default (store.sync: none), like the raw LMDB side's MDB_NOSYNC: the
  // fsync a commit may add is measured end to end (bench/run.sh, sync-data).
  o.sync = cachecar::store::SyncMode::kNone;
  return std::move(cachecar::store::Store::Open(o)).value();
}

// Writes Key(id) = kValue for each id, in 10k-record transactions.
void FillStore(cachecar::store::Store* store, const std::vector<long>& ids) {
  for (size_t start = 0; start < ids.size(); start += 10000) {
    cachecar::store::WriteBatch b;
    for (size_t i = start; i < std::min(ids.size(), start + 10000); ++i) {
      cachecar::store::Mutation m;
      m.key = Key(ids[i]);
      m.value = kValue;
      b.mutations.push_back(std::move(m));
    }
    (void)store->Apply(b);
  }
}

MDB_env* OpenRawEnv(const cachecar::testing::TempDir& dir) {
  MDB_env* env;
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, 16ull << 30);
  mdb_env_open(env, dir.path().c_str(), MDB_NOSYNC | MDB_NOTLS, 0644);
  return env;
}

// The raw counterpart of FillStore; returns the main database.
MDB_dbi FillRaw(MDB_env* env, const std::vector<long>& ids) {
  MDB_dbi dbi = 0;
  for (size_t start = 0; start < ids.size(); start += 10000) {
    MDB_txn* txn;
    mdb_txn_begin(env, nullptr, 0, &txn);
    mdb_dbi_open(txn, nullptr, 0, &dbi);
    for (size_t i = start; i < std::min(ids.size(), start + 10000); ++i) {
      std::string k = Key(ids[i]);
      MDB_val kv{k.size(), k.data()}, vv{kValue.size(), const_cast<char*>(kValue.data())};
      mdb_put(txn, dbi, &kv, &vv, 0);
    }
    mdb_txn_commit(txn);
  }
  return dbi;
}

std::vector<long> SequentialIds(long n) {
  std::vector<long> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

std::vector<long> ShuffledIds(long n) {
  std::vector<long> ids = SequentialIds(n);
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(42));
  return ids;
}

void BM_StoreApply10k(benchmark::State& state) {
  cachecar::testing::TempDir dir;
  auto store = OpenStore(dir);
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
  MDB_env* env = OpenRawEnv(dir);
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
  auto store = OpenStore(dir);
  FillStore(store.get(), SequentialIds(kKeys));
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
  MDB_env* env = OpenRawEnv(dir);
  MDB_dbi dbi = FillRaw(env, SequentialIds(kKeys));
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

// Fills `batch` with random keys of a keyspace of `keys`.
void RandomBatch(long keys, uint64_t* rng, std::vector<std::string>* batch) {
  for (auto& k : *batch) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    k = Key(static_cast<long>(*rng % static_cast<uint64_t>(keys)));
  }
}

void BM_StoreBatchGet100(benchmark::State& state) {
  const long keys = state.range(0);
  cachecar::testing::TempDir dir;
  auto store = OpenStore(dir);
  FillStore(store.get(), ShuffledIds(keys));
  uint64_t rng = 88172645463325252ull;
  std::vector<std::string> batch(100);
  for (auto _ : state) {
    RandomBatch(keys, &rng, &batch);
    auto snap = store->NewSnapshot();
    for (const auto& k : batch) benchmark::DoNotOptimize(snap->GetView(0, k));
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_StoreBatchGet100)->Arg(100000)->Arg(1000000);

void BM_RawLmdbBatchGet100(benchmark::State& state) {
  const long keys = state.range(0);
  cachecar::testing::TempDir dir;
  MDB_env* env = OpenRawEnv(dir);
  MDB_dbi dbi = FillRaw(env, ShuffledIds(keys));
  uint64_t rng = 88172645463325252ull;
  std::vector<std::string> batch(100);
  for (auto _ : state) {
    RandomBatch(keys, &rng, &batch);
    MDB_txn* rt;
    mdb_txn_begin(env, nullptr, MDB_RDONLY, &rt);
    for (const auto& k : batch) {
      MDB_val kv{k.size(), const_cast<char*>(k.data())}, vv;
      benchmark::DoNotOptimize(mdb_get(rt, dbi, &kv, &vv));
    }
    mdb_txn_abort(rt);
  }
  mdb_env_close(env);
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_RawLmdbBatchGet100)->Arg(100000)->Arg(1000000);

}  // namespace

BENCHMARK_MAIN();
