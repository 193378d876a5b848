// The watch hub and sessions against a real store, without gRPC: the test applies
// changes to the store, runs the hub's fan-out step itself (or its thread), and pulls
// responses the way the stream's writer does.
#include "watch/hub.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <atomic>
#include <condition_variable>
#include <map>
#include <random>
#include <thread>

#include "test_util.h"

namespace cachecar::watch {
namespace {

using ::testing::HasSubstr;
using Reason = v1::WatchCanceled;

struct Received {
  std::vector<v1::WatchResponse> all;
  std::vector<v1::WatchEvent> events;      // flattened
  std::vector<v1::Entry> snapshot;         // flattened
  std::vector<v1::WatchResponse> canceled;
  std::vector<uint64_t> progress;
  std::optional<uint64_t> snapshot_end;
  std::optional<v1::WatchCreated> created;
};

class WatchHubTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenAll(); }

  void OpenAll(uint64_t history_events = 100000, Options options = {},
               uint64_t map_size_bytes = 64 << 20) {
    hub_.reset();
    store_.reset();
    config_.topics.clear();
    for (const char* name : {"users", "sessions"}) {
      config::TopicConfig t;
      t.name = name;
      config_.topics.push_back(t);
    }
    store::Options so;
    so.path = dir_.path();
    so.topics = {"users", "sessions"};
    so.map_size_bytes = map_size_bytes;
    so.history_events = history_events;
    auto s = store::Store::Open(so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    registry_ = std::make_shared<prometheus::Registry>();
    hub_ = std::make_unique<Hub>(store_.get(), &config_, options, [this] { return ready_.load(); },
                                 registry_.get());
  }

  // Applies puts (value set) and deletes (value unset) to topic 0 in one batch.
  void Apply(std::vector<std::pair<std::string, std::optional<std::string>>> changes,
             size_t topic = 0) {
    store::WriteBatch b;
    for (auto& [k, v] : changes) {
      store::Mutation m;
      m.topic = topic;
      m.key = k;
      m.value = v;
      m.offset = next_offset_++;
      b.mutations.push_back(std::move(m));
    }
    auto r = store_->Apply(b);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  std::shared_ptr<Session> NewSession() {
    return hub_->NewSession([this] { wakes_.fetch_add(1); });
  }

  static v1::WatchRequest Create(int64_t id, std::string key, bool prefix = false) {
    v1::WatchRequest r;
    auto* c = r.mutable_create();
    c->set_watch_id(id);
    c->set_topic("users");
    c->set_key(std::move(key));
    c->set_prefix(prefix);
    return r;
  }

  void Send(Session& s, const v1::WatchRequest& r) {
    std::string error;
    ASSERT_TRUE(s.Handle(r, &error)) << error;
  }

  // Pulls every response available now.
  static Received Drain(Session& s) {
    Received got;
    v1::WatchResponse r;
    while (s.Next(&r)) {
      got.all.push_back(r);
      if (r.has_created()) got.created = r.created();
      for (const auto& e : r.events().events()) got.events.push_back(e);
      for (const auto& e : r.snapshot().entries()) got.snapshot.push_back(e);
      if (r.has_snapshot_end()) got.snapshot_end = r.snapshot_end().revision();
      if (r.has_progress()) got.progress.push_back(r.progress().revision());
      if (r.has_canceled()) got.canceled.push_back(r);
    }
    return got;
  }

  static std::vector<uint64_t> Revisions(const Received& got) {
    std::vector<uint64_t> out;
    for (const auto& e : got.events) out.push_back(e.revision());
    return out;
  }

  testing::TempDir dir_;
  config::Config config_;
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Hub> hub_;
  std::atomic<bool> ready_{true};
  std::atomic<int> wakes_{0};
  int64_t next_offset_ = 0;
};

TEST_F(WatchHubTest, LiveWatchGetsItsKeysChangesInOrderAfterTheyAreCommitted) {
  auto s = NewSession();
  Send(*s, Create(7, "u1"));
  Received created = Drain(*s);
  ASSERT_TRUE(created.created.has_value());
  EXPECT_EQ(created.created->store_id(), store_->store_id());
  EXPECT_EQ(created.created->revision(), 0u);
  EXPECT_EQ(created.all[0].watch_id(), 7);

  Apply({{"u1", "a"}, {"u2", "x"}, {"u1", "b"}, {"u1", std::nullopt}});
  // Nothing before the hub has read the commit back.
  EXPECT_TRUE(Drain(*s).all.empty());
  int before = wakes_.load();
  EXPECT_EQ(hub_->FanOut(), 4u);
  // The stream is woken (on the hub's pool).
  EXPECT_TRUE(testing::WaitUntil([&] { return wakes_.load() > before; }));
  Received got = Drain(*s);
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(Revisions(got), (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_EQ(got.events[0].type(), v1::WatchEvent::PUT);
  EXPECT_EQ(got.events[0].entry().value(), "a");
  EXPECT_EQ(got.events[1].entry().value(), "b");
  EXPECT_FALSE(got.events[1].has_prev_entry());  // not asked for
  EXPECT_EQ(got.events[2].type(), v1::WatchEvent::DELETE);
  EXPECT_EQ(got.events[2].entry().key(), "u1");
  EXPECT_TRUE(got.events[2].entry().value().empty());
  for (const auto& r : got.all) EXPECT_EQ(r.watch_id(), 7);
}

TEST_F(WatchHubTest, PrefixFiltersAndPreviousEntries) {
  auto s = NewSession();
  v1::WatchRequest puts = Create(1, "u", /*prefix=*/true);
  puts.mutable_create()->set_no_delete(true);
  puts.mutable_create()->set_prev_entry(true);
  Send(*s, puts);
  v1::WatchRequest deletes = Create(2, "u", true);
  deletes.mutable_create()->set_no_put(true);
  Send(*s, deletes);
  v1::WatchRequest other_topic = Create(3, "", true);
  other_topic.mutable_create()->set_topic("sessions");
  Send(*s, other_topic);
  Drain(*s);

  Apply({{"u1", "a"}, {"x1", "no"}, {"u1", "b"}, {"u2", "c"}, {"u1", std::nullopt}});
  hub_->FanOut();
  Received got = Drain(*s);
  std::map<int64_t, std::vector<v1::WatchEvent>> by_watch;
  for (const auto& r : got.all) {
    for (const auto& e : r.events().events()) by_watch[r.watch_id()].push_back(e);
  }
  ASSERT_EQ(by_watch[1].size(), 3u);
  EXPECT_EQ(by_watch[1][1].entry().value(), "b");
  ASSERT_TRUE(by_watch[1][1].has_prev_entry());
  EXPECT_EQ(by_watch[1][1].prev_entry().value(), "a");
  EXPECT_EQ(by_watch[1][1].prev_entry().revision(), 1u);
  EXPECT_FALSE(by_watch[1][0].has_prev_entry());  // u1 did not exist before
  ASSERT_EQ(by_watch[2].size(), 1u);
  EXPECT_EQ(by_watch[2][0].type(), v1::WatchEvent::DELETE);
  EXPECT_FALSE(by_watch[2][0].has_prev_entry());  // watch 2 did not ask
  EXPECT_TRUE(by_watch[3].empty());
}

TEST_F(WatchHubTest, SnapshotPagesThenEndThenExactlyTheLaterChanges) {
  std::vector<std::pair<std::string, std::optional<std::string>>> initial;
  for (int i = 0; i < 600; ++i) initial.push_back({"k" + std::to_string(1000 + i), "v0"});
  initial.push_back({"other", "v0"});
  Apply(initial);
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "k", true);
  r.mutable_create()->set_snapshot(true);
  Send(*s, r);
  // Changes after the watch was created, before the client has read any page: the pages
  // are read later and hold them, so they are not sent again as events.
  Apply({{"k1000", "v1"}, {"k9999", "new"}, {"k1001", std::nullopt}, {"other", "v1"}});
  hub_->FanOut();
  Received got = Drain(*s);
  ASSERT_TRUE(got.created.has_value());
  EXPECT_EQ(got.created->revision(), 601u);
  ASSERT_EQ(got.snapshot.size(), 600u);  // less k1001, plus k9999
  EXPECT_GT(got.all.size(), 3u);  // paged: at most 256 entries per response
  std::map<std::string, std::string> snap;
  for (const auto& e : got.snapshot) snap[e.key()] = e.value();
  EXPECT_EQ(snap["k1000"], "v1");
  EXPECT_EQ(snap.count("k1001"), 0u);
  EXPECT_EQ(snap["k9999"], "new");
  ASSERT_TRUE(got.snapshot_end.has_value());
  EXPECT_EQ(*got.snapshot_end, 601u);
  EXPECT_TRUE(got.events.empty());
  // The order on the wire: created, snapshot pages, snapshot_end.
  EXPECT_TRUE(got.all.front().has_created());
  EXPECT_TRUE(got.all.back().has_snapshot_end());
  for (size_t i = 1; i + 1 < got.all.size(); ++i) EXPECT_TRUE(got.all[i].has_snapshot()) << i;
  // Later changes are events.
  Apply({{"k1002", "v2"}, {"other", "v2"}});
  hub_->FanOut();
  got = Drain(*s);
  EXPECT_EQ(Revisions(got), (std::vector<uint64_t>{606}));
}

TEST_F(WatchHubTest, SnapshotOfOneKeyAndOfNothing) {
  Apply({{"u1", "a"}});
  auto s = NewSession();
  v1::WatchRequest one = Create(1, "u1");
  one.mutable_create()->set_snapshot(true);
  Send(*s, one);
  v1::WatchRequest none = Create(2, "nobody");
  none.mutable_create()->set_snapshot(true);
  Send(*s, none);
  Received got = Drain(*s);
  ASSERT_EQ(got.snapshot.size(), 1u);
  EXPECT_EQ(got.snapshot[0].key(), "u1");
  int ends = 0;
  for (const auto& r : got.all) ends += r.has_snapshot_end() ? 1 : 0;
  EXPECT_EQ(ends, 2);
}

TEST_F(WatchHubTest, ResumeSendsExactlyWhatWasMissedThenGoesLive) {
  for (int i = 0; i < 100; ++i) Apply({{"u" + std::to_string(i % 7), "v" + std::to_string(i)}});
  hub_->FanOut();
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "u", true);
  r.mutable_create()->set_resume_revision(40);
  Send(*s, r);
  // Pull a little, commit more, pull the rest: the catch-up and the live hand-off meet
  // without a gap or a repeat.
  v1::WatchResponse first;
  ASSERT_TRUE(s->Next(&first));  // created
  EXPECT_EQ(first.created().revision(), 40u);
  Apply({{"u1", "late1"}});
  Received part = Drain(*s);
  Apply({{"u2", "late2"}});
  hub_->FanOut();
  Received rest = Drain(*s);
  std::vector<uint64_t> revs = Revisions(part);
  for (uint64_t r : Revisions(rest)) revs.push_back(r);
  std::vector<uint64_t> want;
  for (uint64_t i = 41; i <= 102; ++i) want.push_back(i);
  EXPECT_EQ(revs, want);
}

TEST_F(WatchHubTest, ResumeFromBeyondTheWindowIsCompactedWithTheOldestHeld) {
  OpenAll(/*history_events=*/5);
  for (int i = 0; i < 20; ++i) Apply({{"u1", std::to_string(i)}});
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "u1");
  r.mutable_create()->set_resume_revision(3);
  Send(*s, r);
  v1::WatchRequest ok = Create(2, "u1");
  ok.mutable_create()->set_resume_revision(15);
  Send(*s, ok);
  Received got = Drain(*s);
  ASSERT_EQ(got.canceled.size(), 1u);
  EXPECT_EQ(got.canceled[0].watch_id(), 1);
  EXPECT_EQ(got.canceled[0].canceled().reason(), Reason::HISTORY_COMPACTED);
  EXPECT_EQ(got.canceled[0].canceled().compact_revision(), 16u);
  EXPECT_EQ(Revisions(got), (std::vector<uint64_t>{16, 17, 18, 19, 20}));
}

TEST_F(WatchHubTest, ACatchUpOvertakenByTrimmingIsCompacted) {
  OpenAll(/*history_events=*/5);
  Apply({{"u1", "0"}});
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "u1");
  r.mutable_create()->set_resume_revision(1);
  Send(*s, r);
  for (int i = 0; i < 10; ++i) Apply({{"u1", std::to_string(i)}});  // trims past 2
  Received got = Drain(*s);
  ASSERT_EQ(got.canceled.size(), 1u);
  EXPECT_EQ(got.canceled[0].canceled().reason(), Reason::HISTORY_COMPACTED);
  EXPECT_EQ(got.canceled[0].canceled().last_revision(), 1u);
  EXPECT_EQ(got.canceled[0].canceled().compact_revision(), 7u);
}

TEST_F(WatchHubTest, RevisionsFromAnotherStoreAreRefused) {
  Apply({{"u1", "a"}});
  auto s = NewSession();
  v1::WatchRequest other = Create(1, "u1");
  other.mutable_create()->set_store_id("0123456789abcdef0123456789abcdef");
  other.mutable_create()->set_resume_revision(1);
  Send(*s, other);
  v1::WatchRequest ahead = Create(2, "u1");
  ahead.mutable_create()->set_resume_revision(50);
  Send(*s, ahead);
  v1::WatchRequest same = Create(3, "u1");
  same.mutable_create()->set_store_id(store_->store_id());
  same.mutable_create()->set_resume_revision(1);
  Send(*s, same);
  Received got = Drain(*s);
  ASSERT_EQ(got.canceled.size(), 2u);
  for (const auto& c : got.canceled) {
    EXPECT_EQ(c.canceled().reason(), Reason::STORE_CHANGED);
    EXPECT_EQ(c.canceled().store_id(), store_->store_id());
  }
  EXPECT_THAT(got.canceled[1].canceled().message(), HasSubstr("ahead of this store"));
}

TEST_F(WatchHubTest, AFullBufferFallsBackToTheHistoryLogAndLosesNothing) {
  Options o;
  o.buffer_events = 4;
  OpenAll(100000, o);
  auto s = NewSession();
  Send(*s, Create(1, "u", true));
  Drain(*s);
  for (int i = 0; i < 30; ++i) {
    Apply({{"u" + std::to_string(i), "x"}});
    hub_->FanOut();  // the client reads nothing meanwhile
  }
  EXPECT_EQ(hub_->watch_count(), 1u);
  Apply({{"u1", "late"}});
  Received got = Drain(*s);
  EXPECT_TRUE(got.canceled.empty());
  std::vector<uint64_t> want;
  for (uint64_t r = 1; r <= 31; ++r) want.push_back(r);
  EXPECT_EQ(Revisions(got), want);
  // And it is live again.
  Apply({{"u2", "live"}});
  hub_->FanOut();
  EXPECT_EQ(Revisions(Drain(*s)), (std::vector<uint64_t>{32}));
}

// Large values fill a watch's buffer by bytes long before its event count: 1,024 queued
// 1 MiB values would be a GiB held for one slow client.
TEST_F(WatchHubTest, AFullBufferInBytesFallsBackToTheHistoryLogAndLosesNothing) {
  Options o;
  o.buffer_events = 1000;
  o.buffer_bytes = 8 * 1024;
  OpenAll(100000, o);
  auto s = NewSession();
  Send(*s, Create(1, "u", true));
  Drain(*s);
  const std::string big(2048, 'v');
  for (int i = 0; i < 20; ++i) {
    Apply({{"u" + std::to_string(i), big}});
    hub_->FanOut();  // the client reads nothing meanwhile
  }
  double overflows = 0;
  for (const auto& family : registry_->Collect()) {
    if (family.name == "cachecar_watch_buffer_overflows_total") {
      overflows = family.metric.at(0).counter.value;
    }
  }
  EXPECT_GT(overflows, 0) << "20 values of 2 KiB were queued under an 8 KiB buffer";
  Received got = Drain(*s);
  EXPECT_TRUE(got.canceled.empty());
  std::vector<uint64_t> want;
  for (uint64_t r = 1; r <= 20; ++r) want.push_back(r);
  EXPECT_EQ(Revisions(got), want);
}

TEST_F(WatchHubTest, AClientThatStopsReadingIsCanceledWithItsLastRevision) {
  auto slow = NewSession();
  auto fast = NewSession();
  Send(*slow, Create(1, "u", true));
  Send(*fast, Create(1, "u", true));
  Drain(*fast);
  Apply({{"u1", "1"}, {"u2", "2"}});
  hub_->FanOut();
  Received slow_first = Drain(*slow);  // reads these two, then stops reading
  ASSERT_EQ(Revisions(slow_first), (std::vector<uint64_t>{1, 2}));
  Apply({{"u3", "3"}});
  hub_->FanOut();
  Drain(*fast);
  auto now = std::chrono::steady_clock::now();
  hub_->CancelStalled(now);  // not yet: the timeout has not passed
  EXPECT_EQ(hub_->watch_count(), 2u);
  hub_->CancelStalled(now + std::chrono::minutes(1));
  EXPECT_EQ(hub_->watch_count(), 1u);  // the fast one, which has nothing waiting, stays
  Received got = Drain(*slow);
  ASSERT_EQ(got.canceled.size(), 1u);
  EXPECT_EQ(got.canceled[0].canceled().reason(), Reason::SLOW_CONSUMER);
  EXPECT_EQ(got.canceled[0].canceled().last_revision(), 2u);
  EXPECT_TRUE(got.events.empty());  // what waited is dropped, never half-sent
  // Resuming from last_revision gives what was dropped.
  auto again = NewSession();
  v1::WatchRequest resume = Create(1, "u", true);
  resume.mutable_create()->set_resume_revision(2);
  Send(*again, resume);
  EXPECT_EQ(Revisions(Drain(*again)), (std::vector<uint64_t>{3}));
}

TEST_F(WatchHubTest, AReaderIdleForLongIsNotTakenForAStalledOne) {
  Options o;
  o.slow_consumer_timeout = std::chrono::milliseconds(50);
  OpenAll(100000, o);
  auto s = NewSession();
  Send(*s, Create(1, "u1"));
  Drain(*s);
  // Idle for longer than the timeout (the passing of time is what is tested here)...
  std::this_thread::sleep_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
  // ...then a change arrives: the stall clock starts when it starts waiting, not at the
  // client's last read.
  Apply({{"u1", "a"}});
  hub_->FanOut();
  auto now = std::chrono::steady_clock::now();
  hub_->CancelStalled(now);
  EXPECT_EQ(hub_->watch_count(), 1u);
  hub_->CancelStalled(now + std::chrono::milliseconds(100));  // and now it did wait too long
  EXPECT_EQ(hub_->watch_count(), 0u);
}

TEST_F(WatchHubTest, MalformedAndHostileCreatesAreRefusedWithTheField) {
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "");
  r.mutable_create()->set_topic("");
  Send(*s, r);
  r = Create(2, "u1");
  r.mutable_create()->set_topic(std::string(10000, 't'));
  Send(*s, r);
  r = Create(3, std::string("\xff\xfe", 2));
  Send(*s, r);
  r = Create(4, std::string(2 << 20, 'k'));
  Send(*s, r);
  r = Create(5, "u1");
  r.mutable_create()->set_snapshot(true);
  r.mutable_create()->set_resume_revision(1);
  Send(*s, r);
  r = Create(6, "u1");
  r.mutable_create()->set_no_put(true);
  r.mutable_create()->set_no_delete(true);
  Send(*s, r);
  r = Create(7, "");  // an empty exact key
  Send(*s, r);
  Received got = Drain(*s);
  ASSERT_EQ(got.canceled.size(), 7u);
  for (const auto& c : got.canceled) {
    EXPECT_EQ(c.canceled().reason(), Reason::INVALID_REQUEST) << c.ShortDebugString();
  }
  EXPECT_THAT(got.canceled[0].canceled().message(), HasSubstr("topic: required"));
  EXPECT_THAT(got.canceled[1].canceled().message(), HasSubstr("not configured"));
  EXPECT_LT(got.canceled[1].canceled().message().size(), 400u);  // not echoed whole
  EXPECT_THAT(got.canceled[2].canceled().message(), HasSubstr("UTF-8"));
  EXPECT_THAT(got.canceled[3].canceled().message(), HasSubstr("at most"));
  EXPECT_THAT(got.canceled[4].canceled().message(), HasSubstr("resume_revision"));
  EXPECT_THAT(got.canceled[5].canceled().message(), HasSubstr("nothing to watch"));
  EXPECT_THAT(got.canceled[6].canceled().message(), HasSubstr("key: required"));
  EXPECT_EQ(hub_->watch_count(), 0u);

  std::string error;
  EXPECT_FALSE(s->Handle(v1::WatchRequest(), &error));
  EXPECT_THAT(error, HasSubstr("create, cancel or progress"));
}

TEST_F(WatchHubTest, LimitsDuplicateIdsAndCancels) {
  Options o;
  o.max_watches_per_stream = 2;
  o.max_watches = 3;
  OpenAll(100000, o);
  auto a = NewSession();
  auto b = NewSession();
  Send(*a, Create(1, "u1"));
  Send(*a, Create(1, "u2"));  // id in use
  Send(*a, Create(2, "u2"));
  Send(*a, Create(3, "u3"));  // per stream
  Send(*b, Create(1, "u1"));
  Send(*b, Create(2, "u2"));  // per process
  Received ga = Drain(*a), gb = Drain(*b);
  ASSERT_EQ(ga.canceled.size(), 2u);
  EXPECT_EQ(ga.canceled[0].canceled().reason(), Reason::WATCH_ID_IN_USE);
  EXPECT_EQ(ga.canceled[1].canceled().reason(), Reason::LIMIT_EXCEEDED);
  EXPECT_THAT(ga.canceled[1].canceled().message(), HasSubstr("max_watches_per_stream"));
  ASSERT_EQ(gb.canceled.size(), 1u);
  EXPECT_THAT(gb.canceled[0].canceled().message(), HasSubstr("watch.max_watches"));
  EXPECT_EQ(hub_->watch_count(), 3u);

  // The first watch 1 was unaffected by the refused duplicate.
  Apply({{"u1", "a"}});
  hub_->FanOut();
  EXPECT_EQ(Drain(*a).events.size(), 1u);

  v1::WatchRequest cancel;
  cancel.mutable_cancel()->set_watch_id(1);
  Send(*a, cancel);
  cancel.mutable_cancel()->set_watch_id(99);
  Send(*a, cancel);
  Received gc = Drain(*a);
  ASSERT_EQ(gc.canceled.size(), 2u);
  EXPECT_EQ(gc.canceled[0].canceled().reason(), Reason::CANCELED_BY_CLIENT);
  EXPECT_EQ(gc.canceled[0].canceled().last_revision(), 1u);
  EXPECT_EQ(gc.canceled[1].canceled().reason(), Reason::INVALID_REQUEST);
  EXPECT_EQ(hub_->watch_count(), 2u);
  Apply({{"u1", "b"}});
  hub_->FanOut();
  EXPECT_TRUE(Drain(*a).events.empty());
  b->Close();
  EXPECT_EQ(hub_->watch_count(), 1u);
}

TEST_F(WatchHubTest, ProgressOnRequestAndWhenIdle) {
  Options o;
  o.progress_interval = std::chrono::milliseconds(0);  // every live watch counts as idle
  OpenAll(100000, o);
  auto s = NewSession();
  Send(*s, Create(1, "u1"));
  Drain(*s);
  Apply({{"x", "1"}, {"y", "2"}});  // changes the watch does not match
  hub_->FanOut();
  v1::WatchRequest p;
  p.mutable_progress();
  Send(*s, p);
  Received got = Drain(*s);
  EXPECT_EQ(got.progress, (std::vector<uint64_t>{2}));
  // Idle watches get it from the hub.
  Apply({{"z", "3"}});
  hub_->FanOut();
  hub_->SendProgress(/*all=*/false);
  EXPECT_EQ(Drain(*s).progress, (std::vector<uint64_t>{3}));
}

TEST_F(WatchHubTest, ColdCacheNeedsConsent) {
  ready_ = false;
  auto s = NewSession();
  Send(*s, Create(1, "u1"));
  v1::WatchRequest cold = Create(2, "u1");
  cold.mutable_create()->set_allow_cold_cache(true);
  Send(*s, cold);
  Received got = Drain(*s);
  ASSERT_EQ(got.canceled.size(), 1u);
  EXPECT_EQ(got.canceled[0].watch_id(), 1);
  EXPECT_EQ(got.canceled[0].canceled().reason(), Reason::CACHE_NOT_READY);
  EXPECT_EQ(hub_->watch_count(), 1u);
}

TEST_F(WatchHubTest, ShutdownEndsEveryWatchWithItsLastRevision) {
  auto s = NewSession();
  Send(*s, Create(1, "u1"));
  Apply({{"u1", "a"}});
  hub_->FanOut();
  Drain(*s);
  EXPECT_FALSE(s->Finished());
  hub_->Shutdown();
  Received got = Drain(*s);
  ASSERT_EQ(got.canceled.size(), 1u);
  EXPECT_EQ(got.canceled[0].canceled().reason(), Reason::SHUTTING_DOWN);
  EXPECT_EQ(got.canceled[0].canceled().last_revision(), 1u);
  EXPECT_TRUE(s->Finished());
  Send(*s, Create(2, "u1"));
  EXPECT_EQ(Drain(*s).canceled.at(0).canceled().reason(), Reason::SHUTTING_DOWN);
}

TEST_F(WatchHubTest, AClientThatDoesNotReadItsAnswersEndsTheStream) {
  Options o;
  o.max_control_responses = 10;
  OpenAll(100000, o);
  auto s = NewSession();
  std::string error;
  bool ok = true;
  for (int i = 0; i < 20 && ok; ++i) {
    v1::WatchRequest cancel;
    cancel.mutable_cancel()->set_watch_id(i);
    ok = s->Handle(cancel, &error);
  }
  EXPECT_FALSE(ok);
  EXPECT_THAT(error, HasSubstr("does not read"));
}

// Many resumes while a writer commits and the hub's thread fans out: the events received
// over all the streams are exactly the matching changes of the history, each once.
TEST_F(WatchHubTest, ResumingRepeatedlyUnderConcurrentWritesLosesAndRepeatsNothing) {
  Options o;
  o.buffer_events = 16;  // small, so watches fall back to the history log too
  OpenAll(1000000, o);
  hub_->Start();
  constexpr int kChanges = 60000;
  std::atomic<bool> writer_done{false};
  std::thread writer([&] {
    std::mt19937 rng(7);
    for (int i = 0; i < kChanges;) {
      std::vector<std::pair<std::string, std::optional<std::string>>> batch;
      int n = 1 + static_cast<int>(rng() % 50);
      for (int j = 0; j < n && i < kChanges; ++j, ++i) {
        std::string key = (rng() % 2 ? "a" : "b") + std::to_string(rng() % 100);
        std::optional<std::string> value;
        if (rng() % 5 != 0) value = std::to_string(i);
        batch.push_back({key, value});
      }
      Apply(batch);
      hub_->Notify();
    }
    writer_done = true;
  });

  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  uint64_t last = 0, base = 0;  // base: where the first stream started ("now")
  std::vector<uint64_t> received;
  int streams = 0;
  std::mt19937 rng(11);
  auto finished = [&] { return writer_done && last >= store_->revision(); };
  while (!finished()) {
    ASSERT_LT(streams, 100000);
    auto s = hub_->NewSession([&] {
      std::lock_guard<std::mutex> lock(mu);
      woken = true;
      cv.notify_all();
    });
    ++streams;
    v1::WatchRequest r = Create(1, "a", true);
    r.mutable_create()->set_allow_cold_cache(true);
    if (streams > 1) r.mutable_create()->set_resume_revision(last);
    std::string error;
    ASSERT_TRUE(s->Handle(r, &error)) << error;
    size_t budget = 1 + rng() % 40;  // responses to read before "disconnecting"
    while (budget > 0 && !finished()) {
      v1::WatchResponse resp;
      if (!s->Next(&resp)) {
        if (writer_done) {
          // Nothing queued: ask where we are (the rest may all be "b" keys).
          v1::WatchRequest p;
          p.mutable_progress();
          ASSERT_TRUE(s->Handle(p, &error)) << error;
          if (s->Next(&resp)) goto got;
        }
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return woken; });
          woken = false;
        }
        continue;
      }
    got:
      --budget;
      ASSERT_FALSE(resp.has_canceled()) << resp.ShortDebugString();
      for (const auto& e : resp.events().events()) {
        EXPECT_GT(e.revision(), last);
        received.push_back(e.revision());
        last = e.revision();
      }
      if (resp.has_progress()) last = std::max(last, resp.progress().revision());
      if (resp.has_created() && streams == 1) last = base = resp.created().revision();
    }
    s->Close();
  }
  writer.join();
  // The reference: every change to an "a" key, from the history log.
  std::vector<uint64_t> want;
  auto snap = store_->NewSnapshot();
  ASSERT_TRUE(snap.ok());
  for (uint64_t after = 0;;) {
    auto page = snap->ReadHistory(after, 1000, 1 << 20);
    ASSERT_TRUE(page.ok());
    if (page->events.empty()) break;
    for (const auto& e : page->events) {
      if (e.key[0] == 'a' && e.revision > base) want.push_back(e.revision);
      after = e.revision;
    }
  }
  EXPECT_EQ(received, want);
  EXPECT_GT(streams, 5);
  RecordProperty("streams", streams);
  double overflows = 0;
  for (const auto& family : registry_->Collect()) {
    if (family.name == "cachecar_watch_buffer_overflows_total") {
      overflows = family.metric.at(0).counter.value;
    }
  }
  RecordProperty("buffer_overflows", static_cast<int>(overflows));
  EXPECT_GT(overflows, 0);  // the fall-back to the history log was exercised
}

}  // namespace
}  // namespace cachecar::watch

namespace cachecar::watch {
namespace {

// The hub reads the history log without its lock: a watch can be created (which takes the
// hub's lock) while a page is being read, and still misses nothing after its revision.
TEST_F(WatchHubTest, TheHubReadsTheLogWithoutHoldingItsLock) {
  auto other = NewSession();
  Send(*other, Create(1, "u2"));
  Drain(*other);
  Apply({{"u1", "a"}, {"u2", "x"}});
  auto s = NewSession();
  bool created_during_read = false;
  std::atomic<bool> done{false};
  std::thread creator;
  hub_->SetDuringReadHookForTest([&] {
    if (creator.joinable()) return;
    creator = std::thread([&] {
      Send(*s, Create(7, "u1"));
      done = true;
    });
    // If the read held the hub's lock, the create would wait for it (until after FanOut).
    created_during_read = testing::WaitUntil([&] { return done.load(); });
  });
  hub_->FanOut();
  hub_->SetDuringReadHookForTest(nullptr);
  ASSERT_TRUE(creator.joinable());
  creator.join();
  EXPECT_TRUE(created_during_read);
  Apply({{"u1", "b"}});
  hub_->FanOut();
  Received got = Drain(*s);
  ASSERT_TRUE(got.created.has_value());
  std::vector<uint64_t> owed;
  for (uint64_t r : {1u, 3u}) {
    if (r > got.created->revision()) owed.push_back(r);
  }
  EXPECT_EQ(Revisions(got), owed) << "created at " << got.created->revision();
}

// A stream whose transport is slow (its wake-up blocks) delays neither the hub nor the
// other streams: wake-ups run on the hub's pool, not on its thread.
TEST_F(WatchHubTest, ASlowStreamDelaysNeitherTheHubNorTheOthers) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> fast_woken{false};
  auto slow = hub_->NewSession([released] { released.wait(); });
  auto fast = hub_->NewSession([&] { fast_woken = true; });
  Send(*slow, Create(1, "u1"));
  Send(*fast, Create(2, "u1"));
  Drain(*slow);  // created
  Drain(*fast);
  Apply({{"u1", "a"}});
  std::atomic<bool> fanned{false};
  std::thread hub_thread([&] {
    hub_->FanOut();
    fanned = true;
  });
  EXPECT_TRUE(testing::WaitUntil([&] { return fanned.load(); })) << "the hub waited for a stream";
  EXPECT_TRUE(testing::WaitUntil([&] { return fast_woken.load(); })) << "a stream waited for another";
  release.set_value();
  hub_thread.join();
  EXPECT_EQ(Revisions(Drain(*fast)), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Revisions(Drain(*slow)), (std::vector<uint64_t>{1}));
}

// The hub reads a page of history decoding only what existing watches match, then
// delivers. A watch created "from now" between the two must still get every change after
// its created.revision (a sync point holds the hub between read and delivery).
TEST_F(WatchHubTest, AWatchCreatedBetweenTheHubsReadAndDeliveryMissesNothingAfterItsRevision) {
  auto other = NewSession();
  Send(*other, Create(1, "u2"));  // a watch exists, so the hub reads with its filter
  Drain(*other);
  Apply({{"u1", "a"}, {"u2", "x"}});  // revisions 1 and 2
  auto s = NewSession();
  bool created = false;
  hub_->SetAfterReadHookForTest([&] {
    if (created) return;
    created = true;
    Send(*s, Create(7, "u1"));  // the page just read skipped u1's change
  });
  hub_->FanOut();
  hub_->SetAfterReadHookForTest(nullptr);
  ASSERT_TRUE(created);
  Apply({{"u1", "b"}});  // revision 3
  hub_->FanOut();
  Received got = Drain(*s);
  ASSERT_TRUE(got.created.has_value());
  std::vector<uint64_t> owed;  // every change to u1 after the revision the watch was given
  for (uint64_t r : {1u, 3u}) {
    if (r > got.created->revision()) owed.push_back(r);
  }
  EXPECT_EQ(Revisions(got), owed) << "created at " << got.created->revision();
}

}  // namespace
}  // namespace cachecar::watch

namespace cachecar::watch {
namespace {

// A rebuild of a topic (its keys emptied to be read again from Kafka) is told to its
// watchers once, with TOPIC_RESET and what to do, however many keys it had — not as one
// delete per key, and not by trimming the history log under the other topics' watches.
TEST_F(WatchHubTest, ATopicResetCancelsItsWatchesOnceWithWhatToDo) {
  OpenAll(/*history_events=*/100);  // far fewer than the topic's keys
  std::vector<std::pair<std::string, std::optional<std::string>>> many;
  for (int i = 0; i < 90; ++i) many.push_back({"k" + std::to_string(i), "v"});
  Apply(many);
  Apply({{"s1", "v"}}, /*topic=*/1);
  auto s = NewSession();
  Send(*s, Create(1, "k", true));        // live, on the topic being reset
  Send(*s, Create(2, "k5"));             // live, one key of it
  v1::WatchRequest other = Create(3, "s1");
  other.mutable_create()->set_topic("sessions");
  Send(*s, other);                       // another topic
  const uint64_t before = store_->revision();
  v1::WatchRequest resume = Create(4, "k", true);
  resume.mutable_create()->set_resume_revision(before);  // catching up from before it
  Drain(*s);
  store::WriteBatch reset;
  reset.reset_topics = {0};
  ASSERT_TRUE(store_->Apply(reset).ok());
  Apply({{"s1", "v2"}}, 1);
  hub_->FanOut();
  Send(*s, resume);
  Received got = Drain(*s);
  std::map<int64_t, int> cancels;
  for (const auto& c : got.canceled) {
    ++cancels[c.watch_id()];
    EXPECT_EQ(c.canceled().reason(), Reason::TOPIC_RESET) << c.DebugString();
    EXPECT_THAT(c.canceled().message(), HasSubstr("take a new snapshot"));
  }
  EXPECT_EQ(cancels, (std::map<int64_t, int>{{1, 1}, {2, 1}, {4, 1}}));
  for (const auto& e : got.events) EXPECT_EQ(e.entry().key(), "s1");  // no per-key deletes
  EXPECT_EQ(got.events.size(), 1u);
}

// A snapshot is read a page at a time, each in a short read transaction of its own: a
// client reading slowly holds none between pages, so the writer can grow the map, and it
// is not cancelled for being slow.
TEST_F(WatchHubTest, ASnapshotReadSlowlyHoldsNoReadTransactionBetweenPages) {
  Options o;
  o.slow_consumer_timeout = std::chrono::minutes(10);
  OpenAll(100000, o, 1 << 20);  // a 1 MiB map: the big commit below must grow it
  std::vector<std::pair<std::string, std::optional<std::string>>> many;
  for (int i = 0; i < 600; ++i) many.push_back({"k" + std::to_string(1000 + i), "v"});
  Apply(many);
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "k", true);
  r.mutable_create()->set_snapshot(true);
  Send(*s, r);
  v1::WatchResponse page;
  ASSERT_TRUE(s->Next(&page));  // created
  ASSERT_TRUE(s->Next(&page));  // the first page; the client then reads slowly
  ASSERT_TRUE(page.has_snapshot());
  const auto maps_before = store_->GetUsage().map_resizes;
  Apply({{"big", std::string(4 << 20, 'x')}}, /*topic=*/1);  // grows the map, or fails
  EXPECT_GT(store_->GetUsage().map_resizes, maps_before);
  // Five minutes later (the old hold limit was one), still within the slow-consumer bound.
  hub_->CancelStalled(std::chrono::steady_clock::now() + std::chrono::minutes(5));
  Received got = Drain(*s);
  EXPECT_TRUE(got.canceled.empty());
  EXPECT_TRUE(got.snapshot_end.has_value());
  EXPECT_EQ(page.snapshot().entries_size() + got.snapshot.size(), 600u);
}

// Changes made while a snapshot is being read reach the client exactly once: a change to
// a key of a page already sent as an event, a change to a key of a page not yet read in
// that page (and not again as an event). Applying the snapshot, then the events, gives
// the store's state.
TEST_F(WatchHubTest, ChangesDuringAPagedSnapshotArriveExactlyOnce) {
  std::vector<std::pair<std::string, std::optional<std::string>>> many;
  for (int i = 0; i < 600; ++i) many.push_back({"k" + std::to_string(1000 + i), "v0"});
  Apply(many);
  auto s = NewSession();
  v1::WatchRequest r = Create(1, "k", true);
  r.mutable_create()->set_snapshot(true);
  Send(*s, r);
  v1::WatchResponse resp;
  ASSERT_TRUE(s->Next(&resp));  // created
  ASSERT_TRUE(s->Next(&resp));  // the first page
  ASSERT_TRUE(resp.has_snapshot());
  std::map<std::string, std::string> state;
  for (const auto& e : resp.snapshot().entries()) state[e.key()] = e.value();
  ASSERT_TRUE(state.count("k1000"));
  ASSERT_FALSE(state.count("k1500"));
  Apply({{"k1000", "v1"}});                        // in the page sent
  Apply({{"k1500", "v1"}});                        // in a page not read yet
  Apply({{"k1400", std::nullopt}});                // deleted before its page is read
  Apply({{"k1600", "new"}});                       // created in the unread range
  Apply({{"k1500", "v2"}});
  hub_->FanOut();
  Received got = Drain(*s);
  ASSERT_TRUE(got.canceled.empty());
  ASSERT_TRUE(got.snapshot_end.has_value());
  for (const auto& e : got.snapshot) state[e.key()] = e.value();
  std::map<std::string, int> events_per_key;
  for (const auto& e : got.events) {
    ++events_per_key[e.entry().key()];
    if (e.type() == v1::WatchEvent::DELETE) {
      state.erase(e.entry().key());
    } else {
      state[e.entry().key()] = e.entry().value();
    }
  }
  EXPECT_EQ(events_per_key, (std::map<std::string, int>{{"k1000", 1}}));
  // The client's copy is the store's.
  auto snap = store_->NewSnapshot();
  auto all = snap->Scan(0, "k", "", 10000, 1 << 30);
  ASSERT_TRUE(all.ok());
  std::map<std::string, std::string> want;
  for (const auto& e : all->entries) want[e.key] = e.value;
  EXPECT_EQ(state, want);
}

}  // namespace
}  // namespace cachecar::watch
