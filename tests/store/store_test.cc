#include "store/store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "test_util.h"

namespace cachecar::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open(std::vector<std::string> topics = {"users", "sessions"},
                              uint64_t history_events = 100000, size_t reset_chunk_keys = 10000) {
    Options o;
    o.reset_chunk_keys = reset_chunk_keys;
    o.path = dir_.path();
    o.topics = std::move(topics);
    o.map_size_bytes = 64 << 20;
    o.history_events = history_events;
    auto s = Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static Mutation Put(size_t topic, std::string key, std::string value, int64_t offset,
                      int32_t partition = 0) {
    Mutation m;
    m.topic = topic;
    m.key = std::move(key);
    m.value = std::move(value);
    m.offset = offset;
    m.partition = partition;
    m.timestamp_ms = 1000 + offset;
    return m;
  }
  static Mutation Del(size_t topic, std::string key, int64_t offset) {
    Mutation m;
    m.topic = topic;
    m.key = std::move(key);
    m.offset = offset;
    return m;
  }

  std::optional<Entry> Get(Store& s, size_t topic, const std::string& key) {
    auto snap = s.NewSnapshot();
    EXPECT_TRUE(snap.ok());
    auto e = snap->Get(topic, key);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return *e;
  }

  testing::TempDir dir_;
};

TEST_F(StoreTest, PutThenGetReturnsValueAndMetadata) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "u1", "{\"a\":1}", 5, 2));
  auto r = s->Apply(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 1u);
  auto e = Get(*s, 0, "u1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->value, "{\"a\":1}");
  EXPECT_EQ(e->meta.partition, 2);
  EXPECT_EQ(e->meta.offset, 5);
  EXPECT_EQ(e->meta.timestamp_ms, 1005);
  EXPECT_EQ(e->meta.revision, 1u);
}

TEST_F(StoreTest, MissIsNotAnError) {
  auto s = Open();
  EXPECT_FALSE(Get(*s, 0, "nobody").has_value());
}

TEST_F(StoreTest, TopicsAreSeparate) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "k", "users-value", 0));
  ASSERT_TRUE(s->Apply(b).ok());
  EXPECT_TRUE(Get(*s, 0, "k").has_value());
  EXPECT_FALSE(Get(*s, 1, "k").has_value());
}

TEST_F(StoreTest, LatestValueWinsAndTombstoneDeletes) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "k", "v1", 0));
  b.mutations.push_back(Put(0, "k", "v2", 1));
  b.mutations.push_back(Put(0, "gone", "x", 2));
  b.mutations.push_back(Del(0, "gone", 3));
  auto r = s->Apply(b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 4u);
  EXPECT_EQ(Get(*s, 0, "k")->value, "v2");
  EXPECT_EQ(Get(*s, 0, "k")->meta.revision, 2u);
  EXPECT_FALSE(Get(*s, 0, "gone").has_value());
}

TEST_F(StoreTest, DeletingAnAbsentKeyDoesNotAdvanceTheRevision) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Del(0, "never", 0));
  auto r = s->Apply(b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 0u);
  EXPECT_EQ(r->changes, 0u);
}

TEST_F(StoreTest, PositionsAndRevisionSurviveReopen) {
  std::string id;
  {
    auto s = Open();
    id = s->store_id();
    EXPECT_EQ(id.size(), 32u);
    WriteBatch b;
    b.mutations.push_back(Put(0, "k", "v", 9, 1));
    b.positions[{0, 1}] = 10;
    b.positions[{0, 0}] = 3;
    b.positions[{1, 7}] = 100;
    ASSERT_TRUE(s->Apply(b).ok());
  }
  auto s = Open();
  EXPECT_EQ(s->store_id(), id);
  EXPECT_EQ(s->revision(), 1u);
  auto users = s->LoadPositions(0);
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(*users, (std::map<int32_t, int64_t>{{0, 3}, {1, 10}}));
  auto sessions = s->LoadPositions(1);
  EXPECT_EQ(*sessions, (std::map<int32_t, int64_t>{{7, 100}}));
  EXPECT_EQ(Get(*s, 0, "k")->value, "v");
}

TEST_F(StoreTest, TopicNamesThatArePrefixesDoNotShareOffsets) {
  {
    auto s = Open({"a", "ab"});
    WriteBatch b;
    b.positions[{0, 0}] = 1;
    b.positions[{1, 0}] = 2;
    ASSERT_TRUE(s->Apply(b).ok());
  }
  auto s = Open({"a", "ab"});
  EXPECT_EQ(*s->LoadPositions(0), (std::map<int32_t, int64_t>{{0, 1}}));
  EXPECT_EQ(*s->LoadPositions(1), (std::map<int32_t, int64_t>{{0, 2}}));
}

TEST_F(StoreTest, NewStoreHasNewIdentity) {
  std::string first;
  { first = Open()->store_id(); }
  testing::TempDir other;
  Options o;
  o.path = other.path();
  o.topics = {"users"};
  auto s = Store::Open(o);
  ASSERT_TRUE(s.ok());
  EXPECT_NE((*s)->store_id(), first);
}

TEST_F(StoreTest, SnapshotIsIsolatedFromLaterWrites) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "k", "old", 0));
  ASSERT_TRUE(s->Apply(b).ok());
  auto snap = s->NewSnapshot();
  ASSERT_TRUE(snap.ok());
  b.Clear();
  b.mutations.push_back(Put(0, "k", "new", 1));
  ASSERT_TRUE(s->Apply(b).ok());
  EXPECT_EQ((*snap->Get(0, "k"))->value, "old");
  EXPECT_EQ(snap->revision(), 1u);
  EXPECT_EQ(Get(*s, 0, "k")->value, "new");
}

TEST_F(StoreTest, LongKeysWorkForGetDeleteAndScan) {
  auto s = Open();
  std::string a(2000, 'p');
  std::string b = a;
  a += "a";
  b += "b";
  WriteBatch batch;
  batch.mutations.push_back(Put(0, a, "A", 0));
  batch.mutations.push_back(Put(0, b, "B", 1));
  ASSERT_TRUE(s->Apply(batch).ok());
  EXPECT_EQ(Get(*s, 0, a)->value, "A");
  EXPECT_EQ(Get(*s, 0, b)->value, "B");
  EXPECT_EQ(Get(*s, 0, a)->key, a);
  auto snap = s->NewSnapshot();
  auto page = snap->Scan(0, a, "", 10, 1 << 20);  // prefix longer than the stored prefix
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].key, a);
  page = snap->Scan(0, std::string(100, 'p'), "", 10, 1 << 20);
  EXPECT_EQ(page->entries.size(), 2u);
  batch.Clear();
  batch.mutations.push_back(Del(0, a, 2));
  ASSERT_TRUE(s->Apply(batch).ok());
  EXPECT_FALSE(Get(*s, 0, a).has_value());
  EXPECT_TRUE(Get(*s, 0, b).has_value());
}

// Long keys, shown short in a failure: their length and last 8 bytes.
std::vector<std::string> Shown(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys) {
    out.push_back(std::to_string(k.size()) + ":" + k.substr(k.size() < 8 ? 0 : k.size() - 8));
  }
  return out;
}

// Keys of kLongKeyThreshold bytes and more are stored under a hash, yet a scan returns them
// in byte order among themselves and among the shorter keys that share their stored
// prefix, and paging neither skips nor repeats one.
TEST_F(StoreTest, ScanKeepsByteOrderForLongKeysAcrossPages) {
  auto s = Open();
  const std::string p(kLongKeyPrefix, 'p');
  std::vector<std::string> keys = {
      p.substr(0, 100),         // shorter, a prefix of the group
      p,                        // exactly the stored prefix
      p + std::string(10, 'b'),  // stored as it is
      p + std::string(32, 'b'),  // hashed, a prefix of the next
      p + std::string(42, 'b'),  // hashed
      p + std::string(42, 'b') + "a",
      p + std::string(31, 'b') + "c",  // stored as it is, after all the b-runs above
      p + "c" + std::string(100, 'z'),
      p + "\xff",                // high byte: unsigned order
      std::string(kLongKeyPrefix - 1, 'p') + "q",  // after the whole group
      std::string(600, 'q'),
      std::string(600, 'q') + "a",
      std::string(599, 'q') + "a",
  };
  WriteBatch b;
  for (size_t i = 0; i < keys.size(); ++i) b.mutations.push_back(Put(0, keys[i], "v", i));
  ASSERT_TRUE(s->Apply(b).ok());
  std::vector<std::string> want = keys;
  std::sort(want.begin(), want.end());

  for (size_t page_size : {1, 2, 3, 100}) {
    SCOPED_TRACE(page_size);
    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0;
    do {
      auto page = s->NewSnapshot()->Scan(0, "", cursor, page_size, 1 << 20);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      for (auto& e : page->entries) seen.push_back(e.key);
      cursor = page->next_cursor;
      ASSERT_LT(++pages, 100);
    } while (!cursor.empty());
    EXPECT_EQ(Shown(seen), Shown(want));
  }
  // A prefix inside the group: only its keys, still in order.
  const std::string in_group = p + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";  // 32 b
  std::vector<std::string> want_prefixed;
  for (const auto& k : want) {
    if (k.rfind(in_group, 0) == 0) want_prefixed.push_back(k);
  }
  ASSERT_EQ(want_prefixed.size(), 3u);
  std::vector<std::string> seen;
  std::string cursor;
  do {
    auto page = s->NewSnapshot()->Scan(0, in_group, cursor, 1, 1 << 20);
    ASSERT_TRUE(page.ok());
    for (auto& e : page->entries) seen.push_back(e.key);
    cursor = page->next_cursor;
  } while (!cursor.empty() && seen.size() < 10);
  EXPECT_EQ(Shown(seen), Shown(want_prefixed));
}

// A key deleted between two pages does not lose the keys after it.
TEST_F(StoreTest, ScanResumesAfterTheLastKeyEvenIfItWasDeleted) {
  auto s = Open();
  const std::string p(kLongKeyPrefix, 'p');
  std::vector<std::string> keys = {p + std::string(40, 'a'), p + std::string(40, 'b'),
                                   p + std::string(40, 'c'), "z"};
  WriteBatch b;
  for (size_t i = 0; i < keys.size(); ++i) b.mutations.push_back(Put(0, keys[i], "v", i));
  ASSERT_TRUE(s->Apply(b).ok());
  auto first = s->NewSnapshot()->Scan(0, "", "", 2, 1 << 20);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->entries.size(), 2u);
  EXPECT_EQ(first->entries[1].key, keys[1]);
  b.Clear();
  b.mutations.push_back(Del(0, keys[1], 10));
  ASSERT_TRUE(s->Apply(b).ok());
  auto rest = s->NewSnapshot()->Scan(0, "", first->next_cursor, 10, 1 << 20);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->entries.size(), 2u);
  EXPECT_EQ(rest->entries[0].key, keys[2]);
  EXPECT_EQ(rest->entries[1].key, "z");
}

TEST_F(StoreTest, CaughtUpTimeIsKeptWithTheDataAndForgottenByAReset) {
  {
    auto s = Open();
    auto none = s->LoadCaughtUp(0);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    WriteBatch b;
    b.mutations.push_back(Put(0, "k", "v", 0));
    b.positions[{0, 0}] = 1;
    b.caught_up_ms[0] = 1700000000123;
    ASSERT_TRUE(s->Apply(b).ok());
  }
  auto s = Open();  // survives a restart
  auto got = s->LoadCaughtUp(0);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or(-1), 1700000000123);
  EXPECT_FALSE(s->LoadCaughtUp(1)->has_value());  // per topic
  WriteBatch reset;
  reset.reset_topics.insert(0);
  ASSERT_TRUE(s->Apply(reset).ok());
  EXPECT_FALSE(s->LoadCaughtUp(0)->has_value());
}

TEST_F(StoreTest, LargeValuesRoundTrip) {
  auto s = Open();
  std::string big(3 << 20, 'v');
  big[12345] = '\0';
  WriteBatch b;
  b.mutations.push_back(Put(0, "big", big, 0));
  ASSERT_TRUE(s->Apply(b).ok());
  EXPECT_EQ(Get(*s, 0, "big")->value, big);
}

TEST_F(StoreTest, ScanByPrefixPagesThroughEverythingOnce) {
  auto s = Open();
  WriteBatch b;
  for (int i = 0; i < 250; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "user:%03d", i);
    b.mutations.push_back(Put(0, key, "v", i));
  }
  b.mutations.push_back(Put(0, "other", "v", 999));
  b.mutations.push_back(Put(0, "user", "v", 1000));  // the prefix itself is a match
  ASSERT_TRUE(s->Apply(b).ok());
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto snap = s->NewSnapshot();
    auto page = snap->Scan(0, "user", cursor, 100, 1 << 20);
    ASSERT_TRUE(page.ok());
    for (auto& e : page->entries) seen.push_back(e.key);
    cursor = page->next_cursor;
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 251u);
  EXPECT_EQ(seen.front(), "user");
  EXPECT_EQ(seen[1], "user:000");
  EXPECT_EQ(seen.back(), "user:249");
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

TEST_F(StoreTest, ScanStopsAtByteBudgetButReturnsAtLeastOne) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "a", std::string(1000, 'x'), 0));
  b.mutations.push_back(Put(0, "b", std::string(1000, 'x'), 1));
  ASSERT_TRUE(s->Apply(b).ok());
  auto snap = s->NewSnapshot();
  auto page = snap->Scan(0, "", "", 100, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), 1u);
  EXPECT_FALSE(page->next_cursor.empty());
  page = snap->Scan(0, "", page->next_cursor, 100, 10);
  EXPECT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].key, "b");
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_F(StoreTest, ExactlyFullLastPageHasNoNextCursor) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "a", "1", 0));
  b.mutations.push_back(Put(0, "b", "2", 1));
  ASSERT_TRUE(s->Apply(b).ok());
  auto page = s->NewSnapshot()->Scan(0, "", "", 2, 1 << 20);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), 2u);
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_F(StoreTest, KeyCountCountsLiveKeys) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "a", "1", 0));
  b.mutations.push_back(Put(0, "b", "2", 1));
  b.mutations.push_back(Del(0, "a", 2));
  ASSERT_TRUE(s->Apply(b).ok());
  EXPECT_EQ(*s->KeyCount(0), 1u);
  EXPECT_EQ(*s->KeyCount(1), 0u);
}

HistoryPage History(Store& s, uint64_t after, size_t limit = 1000, size_t max_bytes = 1 << 20) {
  auto snap = s.NewSnapshot();
  EXPECT_TRUE(snap.ok());
  auto page = snap->ReadHistory(after, limit, max_bytes);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  return page.ok() ? *page : HistoryPage{};
}

TEST_F(StoreTest, MapGrowsWhenABatchDoesNotFit) {
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  o.map_size_bytes = 1 << 20;
  auto s = Store::Open(o);
  ASSERT_TRUE(s.ok());
  WriteBatch b;
  for (int i = 0; i < 100; ++i) {
    b.mutations.push_back(Put(0, "k" + std::to_string(i), std::string(100000, 'x'), i));
  }
  auto r = (*s)->Apply(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 100u);
  Store::Usage u = (*s)->GetUsage();
  EXPECT_GT(u.map_size_bytes, 10u << 20);  // 100 x 100 kB (and their history) fit now
  EXPECT_GE(u.map_resizes, 4u);            // 1 MiB doubled at least four times
  EXPECT_EQ(Get(**s, 0, "k99")->value.size(), 100000u);
  s->reset();
  auto reopened = Store::Open(o);  // a file larger than map_size_bytes opens as it is
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->revision(), 100u);
}

TEST_F(StoreTest, MapAtItsMaximumIsStoreFullAndLeavesTheStoreIntact) {
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  o.map_size_bytes = 1 << 20;
  o.max_map_size_bytes = 2 << 20;
  auto s = Store::Open(o);
  ASSERT_TRUE(s.ok());
  WriteBatch ok;
  ok.mutations.push_back(Put(0, "keep", "v", 0));
  ASSERT_TRUE((*s)->Apply(ok).ok());
  WriteBatch b;
  for (int i = 0; i < 100; ++i) b.mutations.push_back(Put(0, "k" + std::to_string(i), std::string(100000, 'x'), i));
  auto r = (*s)->Apply(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(r.status().reason(), "STORE_FULL");
  EXPECT_EQ((*s)->revision(), 1u);
  EXPECT_TRUE(Get(**s, 0, "keep").has_value());
  EXPECT_FALSE(Get(**s, 0, "k0").has_value());  // the failed batch left nothing behind
  EXPECT_EQ((*s)->GetUsage().map_size_bytes, 2u << 20);
}

TEST_F(StoreTest, MapGrowthWaitsForOpenSnapshotsAndSaysSo) {
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  o.map_size_bytes = 1 << 20;
  auto s = Store::Open(o);
  ASSERT_TRUE(s.ok());
  WriteBatch b;
  for (int i = 0; i < 20; ++i) b.mutations.push_back(Put(0, "k" + std::to_string(i), std::string(100000, 'x'), i));
  {
    auto held = (*s)->NewSnapshot();  // e.g. a Watch snapshot being sent
    ASSERT_TRUE(held.ok());
    auto r = (*s)->Apply(b);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().reason(), "STORE_RESIZE_WAITING");
    EXPECT_EQ((*s)->revision(), 0u);
  }
  auto r = (*s)->Apply(b);  // released: the map grows
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 20u);
}

// A reset (a rebuild) is one record in the history log, whatever the topic's size, so it
// never pushes the live watches' changes out of the window; the keys go in chunks of
// reset_chunk_keys, a transaction each, so memory and transaction size stay bounded.
TEST_F(StoreTest, ResetTopicIsOneHistoryRecordThenBoundedChunks) {
  uint64_t before_reset = 0;
  {
    auto s = Open({"users", "sessions"}, 100000, /*reset_chunk_keys=*/1000);
    WriteBatch b;
    for (int i = 0; i < 2500; ++i) b.mutations.push_back(Put(0, "k" + std::to_string(i), "1", i));
    b.mutations.push_back(Put(0, std::string(600, 'L'), "2", 2500));
    b.mutations.push_back(Put(1, "other", "3", 0));
    b.positions[{0, 0}] = 2501;
    b.positions[{1, 0}] = 1;
    b.caught_up_ms[0] = 1;
    ASSERT_TRUE(s->Apply(b).ok());
    before_reset = s->revision();
    EXPECT_FALSE(*s->Resetting(0));
    WriteBatch reset;
    reset.reset_topics = {0};
    auto r = s->Apply(reset);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->changes, 1u);
    EXPECT_EQ(r->revision, before_reset + 1);
    EXPECT_TRUE(s->LoadPositions(0)->empty());
    EXPECT_FALSE(s->LoadCaughtUp(0)->has_value());
    EXPECT_EQ(*s->LoadPositions(1), (std::map<int32_t, int64_t>{{0, 1}}));
    EXPECT_TRUE(*s->Resetting(0));
    EXPECT_EQ(*s->KeyCount(0), 1501u);  // the first chunk went with the reset
    HistoryPage page = History(*s, before_reset);
    ASSERT_EQ(page.events.size(), 1u);
    EXPECT_TRUE(page.events[0].topic_reset);
    EXPECT_EQ(page.events[0].topic, "users");
    EXPECT_EQ(page.events[0].revision, before_reset + 1);
  }
  // A restart in the middle (kill -9) still knows the topic is being emptied.
  auto s = Open({"users", "sessions"}, 100000, 1000);
  EXPECT_TRUE(*s->Resetting(0));
  auto done = s->ContinueReset(0);
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(*done);
  EXPECT_EQ(*s->KeyCount(0), 501u);
  done = s->ContinueReset(0);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  EXPECT_EQ(*s->KeyCount(0), 0u);
  EXPECT_FALSE(*s->Resetting(0));
  EXPECT_EQ(s->revision(), before_reset + 1);  // the chunks add nothing to the log
  EXPECT_TRUE(Get(*s, 1, "other").has_value());
  // The last positions in the database, and a single one: nothing left after it.
  WriteBatch reset_other;
  reset_other.reset_topics = {1};
  ASSERT_TRUE(s->Apply(reset_other).ok());
  EXPECT_TRUE(s->LoadPositions(1)->empty());
  EXPECT_TRUE(*s->ContinueReset(1));
  EXPECT_EQ(*s->KeyCount(1), 0u);
}

TEST_F(StoreTest, UnusableStoreIsRecreatedOnRequest) {
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  std::ofstream(dir_.path() + "/data.mdb") << std::string(8192, 'z');
  Status why;
  auto s = Store::OpenOrRecreate(o, &why);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(why.code(), Code::kDataLoss);
  EXPECT_EQ((*s)->revision(), 0u);
  s->reset();
  auto again = Store::OpenOrRecreate(o, &why);  // a good store is kept
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(why.ok());
}

TEST_F(StoreTest, StoreOfAnotherFormatIsIncompatibleAndRecreated) {
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  {
    // Stamp a store as an older format would have.
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ASSERT_EQ(mdb_env_open(env, dir_.path().c_str(), 0, 0644), 0);
    MDB_txn* txn = nullptr;
    MDB_dbi dbi;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    std::string k = "format", v = "cachecar-store-0";
    MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
    ASSERT_EQ(mdb_put(txn, dbi, &kv, &vv, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  auto refused = Store::Open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "STORE_INCOMPATIBLE");
  Status why;
  auto s = Store::OpenOrRecreate(o, &why);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(why.reason(), "STORE_INCOMPATIBLE");
}

TEST_F(StoreTest, TruncatedFileIsCorruptNotACrash) {
  {
    auto s = Open({"t"});
    WriteBatch b;
    for (int i = 0; i < 1000; ++i) b.mutations.push_back(Put(0, "k" + std::to_string(i), "v", i));
    ASSERT_TRUE(s->Apply(b).ok());
  }
  std::filesystem::resize_file(dir_.path() + "/data.mdb", 100);
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  auto s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kDataLoss);
}


TEST_F(StoreTest, HistoryRecordsEveryChangeWithItsPreviousEntry) {
  auto s = Open();
  WriteBatch b;
  b.mutations.push_back(Put(0, "u1", "v1", 10, 3));
  b.mutations.push_back(Put(1, "s1", "x", 11));
  b.mutations.push_back(Put(0, "u1", "v2", 12, 3));
  b.mutations.push_back(Del(0, "absent", 13));  // no change, no event
  b.mutations.push_back(Del(0, "u1", 14));
  ASSERT_TRUE(s->Apply(b).ok());
  HistoryPage page = History(*s, 0);
  EXPECT_FALSE(page.compacted);
  EXPECT_EQ(page.revision, 4u);
  ASSERT_EQ(page.events.size(), 4u);
  const HistoryEvent& first = page.events[0];
  EXPECT_EQ(first.revision, 1u);
  EXPECT_EQ(first.topic, "users");
  EXPECT_EQ(first.key, "u1");
  EXPECT_EQ(first.value, "v1");
  EXPECT_EQ(first.meta.partition, 3);
  EXPECT_EQ(first.meta.offset, 10);
  EXPECT_FALSE(first.prev.has_value());
  EXPECT_EQ(page.events[1].topic, "sessions");
  const HistoryEvent& update = page.events[2];
  EXPECT_EQ(update.value, "v2");
  ASSERT_TRUE(update.prev.has_value());
  EXPECT_EQ(update.prev->value, "v1");
  EXPECT_EQ(update.prev->meta.revision, 1u);
  EXPECT_EQ(update.prev->meta.offset, 10);
  const HistoryEvent& del = page.events[3];
  EXPECT_EQ(del.revision, 4u);
  EXPECT_FALSE(del.value.has_value());
  ASSERT_TRUE(del.prev.has_value());
  EXPECT_EQ(del.prev->value, "v2");
  EXPECT_EQ(del.meta.offset, 14);
  // After a revision: only what follows; at the head: nothing.
  EXPECT_EQ(History(*s, 2).events.front().revision, 3u);
  EXPECT_TRUE(History(*s, 4).events.empty());
  EXPECT_FALSE(History(*s, 4).compacted);
}

TEST_F(StoreTest, HistoryPagesByCountAndBytes) {
  auto s = Open();
  WriteBatch b;
  for (int i = 0; i < 10; ++i) b.mutations.push_back(Put(0, "k" + std::to_string(i), std::string(100, 'v'), i));
  ASSERT_TRUE(s->Apply(b).ok());
  EXPECT_EQ(History(*s, 0, 3).events.size(), 3u);
  EXPECT_EQ(History(*s, 0, 1000, 250).events.size(), 3u);  // 102 bytes each, stops past 250
  EXPECT_EQ(History(*s, 0, 1000, 1).events.size(), 1u);    // always at least one
  uint64_t after = 0, seen = 0;
  for (HistoryPage p = History(*s, after, 4); !p.events.empty(); p = History(*s, after, 4)) {
    for (const auto& e : p.events) EXPECT_EQ(e.revision, ++seen);
    after = p.events.back().revision;
  }
  EXPECT_EQ(seen, 10u);
}

TEST_F(StoreTest, HistoryFilterDecodesOnlyWantedEntriesAndSaysHowFarItLooked) {
  auto s = Open();
  WriteBatch b;
  for (int i = 0; i < 10; ++i) b.mutations.push_back(Put(i % 2, "k" + std::to_string(i), "v", i));
  ASSERT_TRUE(s->Apply(b).ok());
  auto snap = s->NewSnapshot();
  ASSERT_TRUE(snap.ok());
  std::vector<std::string> asked;
  auto page = snap->ReadHistory(0, 6, 1 << 20, [&](std::string_view topic, std::string_view key) {
    asked.push_back(std::string(topic) + "/" + std::string(key));
    return topic == "sessions";
  });
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(asked.size(), 6u);  // the limit counts entries looked at
  EXPECT_EQ(asked[1], "sessions/k1");
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[0].key, "k1");
  EXPECT_EQ(page->events[2].key, "k5");
  EXPECT_EQ(page->last, 6u);
  auto none = snap->ReadHistory(6, 100, 1 << 20, [](std::string_view, std::string_view) { return false; });
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->events.empty());
  EXPECT_EQ(none->last, 10u);
}

TEST_F(StoreTest, HistoryIsTrimmedToItsWindowAndSaysSo) {
  auto s = Open({"users"}, 5);
  for (int i = 0; i < 12; ++i) {
    WriteBatch b;
    b.mutations.push_back(Put(0, "k", "v" + std::to_string(i), i));
    ASSERT_TRUE(s->Apply(b).ok());
  }
  EXPECT_EQ(s->oldest_history_revision(), 8u);
  HistoryPage held = History(*s, 7);
  EXPECT_FALSE(held.compacted);
  ASSERT_EQ(held.events.size(), 5u);
  EXPECT_EQ(held.events.front().revision, 8u);
  HistoryPage gone = History(*s, 6);
  EXPECT_TRUE(gone.compacted);
  EXPECT_TRUE(gone.events.empty());
  EXPECT_EQ(gone.oldest, 8u);
}

TEST_F(StoreTest, HistoryAndItsWindowSurviveReopen) {
  {
    auto s = Open({"users"}, 3);
    WriteBatch b;
    for (int i = 0; i < 5; ++i) b.mutations.push_back(Put(0, "k" + std::to_string(i), "v", i));
    ASSERT_TRUE(s->Apply(b).ok());
  }
  auto s = Open({"users"}, 3);
  EXPECT_EQ(s->oldest_history_revision(), 3u);
  HistoryPage page = History(*s, 2);
  ASSERT_EQ(page.events.size(), 3u);
  EXPECT_EQ(page.events.back().key, "k4");
}

TEST_F(StoreTest, HistoryKeepsLongKeysWhole) {
  auto s = Open();
  std::string long_key(2000, 'k');
  WriteBatch b;
  b.mutations.push_back(Put(0, long_key, "a", 1));
  b.mutations.push_back(Put(0, long_key, "b", 2));
  ASSERT_TRUE(s->Apply(b).ok());
  HistoryPage page = History(*s, 0);
  ASSERT_EQ(page.events.size(), 2u);
  EXPECT_EQ(page.events[1].key, long_key);
  ASSERT_TRUE(page.events[1].prev.has_value());
  EXPECT_EQ(page.events[1].prev->value, "a");
}

TEST_F(StoreTest, ForeignFileIsRefusedWithDataLoss) {
  std::ofstream(dir_.path() + "/data.mdb") << std::string(8192, 'z');
  Options o;
  o.path = dir_.path();
  o.topics = {"t"};
  auto s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(dir_.path()), std::string::npos);
}

TEST_F(StoreTest, UnusablePathIsInvalidArgument) {
  Options o;
  o.path = "/proc/cachecar-cannot-be-here";
  o.topics = {"t"};
  auto s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace cachecar::store

namespace cachecar::store {
namespace {

// LMDB documents MDB_NOSYNC as able to corrupt the file on a machine crash; sync: data must keep the file's integrity and risk at most the last commit.
// (sync: data) must keep the file's integrity and risk at most the last commit; only
// sync: none uses it, and pairs it with the boot check below.
TEST(StoreDurabilityTest, EachSyncModeOpensLmdbWithItsFlags) {
  for (SyncMode mode : {SyncMode::kNone, SyncMode::kData, SyncMode::kFull}) {
    testing::TempDir dir;
    std::ofstream(dir.path() + "/boot") << "boot-a\n";
    Options o;
    o.path = dir.path() + "/store";
    o.topics = {"t"};
    o.map_size_bytes = 1 << 20;
    o.sync = mode;
    o.boot_id_path = dir.path() + "/boot";
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    unsigned flags = (*s)->lmdb_flags();
    int m = static_cast<int>(mode);
    EXPECT_EQ((flags & MDB_NOSYNC) != 0, mode == SyncMode::kNone) << m;
    EXPECT_EQ((flags & MDB_NOMETASYNC) != 0, mode == SyncMode::kData) << m;
  }
}

// store.sync: none. Commits are not fsynced; a marker file names the boot the store was last
// written in without a clean close, and a store open in a later boot (a machine crash)
// is recreated, since unsynced pages may have been lost out of order.
class UnsyncedStoreTest : public StoreTest {
 protected:
  void SetBoot(const std::string& id) { std::ofstream(boot_path_) << id << "\n"; }

  Options NoSync(SyncMode mode = SyncMode::kNone) {
    Options o;
    o.path = dir_.path();
    o.topics = {"t"};
    o.map_size_bytes = 64 << 20;
    o.sync = mode;
    o.boot_id_path = boot_path_;
    return o;
  }

  // Writes one record, then leaves the store as a process killed at that moment would:
  // the marker as it was while running (a clean close rewrites it).
  void WriteAndCrash(const Options& o) {
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    WriteBatch b;
    b.mutations.push_back(Put(0, "k", "v", 0));
    ASSERT_TRUE((*s)->Apply(b).ok());
    std::ifstream in(dir_.path() + "/sync-state");
    std::string running((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(running.empty());
    s->reset();
    std::ofstream(dir_.path() + "/sync-state", std::ios::trunc) << running;
  }

  testing::TempDir boot_dir_;
  std::string boot_path_ = boot_dir_.path() + "/boot_id";
};

TEST_F(UnsyncedStoreTest, AfterAProcessCrashTheStoreIsKept) {
  SetBoot("boot-a");
  WriteAndCrash(NoSync());
  Status why;
  auto s = Store::OpenOrRecreate(NoSync(), &why);  // same boot: the page cache had it all
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(why.ok()) << why.ToString();
  EXPECT_EQ((*s)->revision(), 1u);
  EXPECT_EQ((*s)->sync_mode(), SyncMode::kNone);
}

TEST_F(UnsyncedStoreTest, AfterAMachineCrashTheStoreIsRecreated) {
  SetBoot("boot-a");
  WriteAndCrash(NoSync());
  SetBoot("boot-b");
  auto refused = Store::Open(NoSync());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "STORE_UNSYNCED");
  Status why;
  auto s = Store::OpenOrRecreate(NoSync(), &why);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(why.reason(), "STORE_UNSYNCED");
  EXPECT_EQ((*s)->revision(), 0u);
  // Also when the next start syncs every commit: the file is no safer for it.
  WriteAndCrash(NoSync());
  SetBoot("boot-c");
  auto data = Store::OpenOrRecreate(NoSync(SyncMode::kData), &why);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(why.reason(), "STORE_UNSYNCED");
}

TEST_F(UnsyncedStoreTest, ACleanCloseSyncsSoAMachineRestartKeepsTheStore) {
  SetBoot("boot-a");
  {
    auto s = Store::Open(NoSync());
    ASSERT_TRUE(s.ok());
    WriteBatch b;
    b.mutations.push_back(Put(0, "k", "v", 0));
    ASSERT_TRUE((*s)->Apply(b).ok());
  }
  SetBoot("boot-b");
  Status why;
  auto s = Store::OpenOrRecreate(NoSync(), &why);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(why.ok()) << why.ToString();
  EXPECT_EQ((*s)->revision(), 1u);
}

// A store put in place without fsync (a bootstrap's snapshot) is marked first: served in
// the boot that wrote it, rebuilt after a machine restart, synced if opened to sync.
TEST_F(UnsyncedStoreTest, AStoreMarkedWrittenThisBootIsServedOnlyInThatBoot) {
  SetBoot("boot-a");
  WriteAndCrash(NoSync());  // a store file, as an installed snapshot leaves it
  std::filesystem::remove(dir_.path() + "/sync-state");
  auto marked = MarkWrittenThisBoot(dir_.path(), boot_path_);
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  EXPECT_TRUE(*marked);
  {
    auto s = Store::Open(NoSync());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->revision(), 1u);
    WriteBatch b;
    b.mutations.push_back(Put(0, "k2", "v", 1));
    ASSERT_TRUE((*s)->Apply(b).ok());
    std::ifstream in(dir_.path() + "/sync-state");
    std::string running((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    s->reset();
    std::ofstream(dir_.path() + "/sync-state", std::ios::trunc) << running;  // a crash
  }
  SetBoot("boot-b");
  auto refused = Store::Open(NoSync());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "STORE_UNSYNCED");
  // Marked, then opened to sync in the same boot: synced at open, kept across a reboot.
  std::filesystem::remove(dir_.path() + "/sync-state");
  ASSERT_TRUE(*MarkWrittenThisBoot(dir_.path(), boot_path_));
  ASSERT_TRUE(Store::Open(NoSync(SyncMode::kData)).ok());
  SetBoot("boot-c");
  EXPECT_TRUE(Store::Open(NoSync()).ok());
  // No boot id: nothing is marked, the caller must sync.
  auto unknown = MarkWrittenThisBoot(dir_.path(), dir_.path() + "/no-such-file");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(*unknown);
}

TEST_F(UnsyncedStoreTest, WithoutABootIdEachCommitIsSynced) {
  Options o = NoSync();
  o.boot_id_path = dir_.path() + "/no-such-file";
  auto s = Store::Open(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->sync_mode(), SyncMode::kData);  // it cannot tell a machine crash
}

}  // namespace
}  // namespace cachecar::store
