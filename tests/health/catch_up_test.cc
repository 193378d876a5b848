#include "health/catch_up.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_util.h"

namespace cachecar::health {
namespace {

PartitionProgress P(int32_t partition, int64_t applied, int64_t end) {
  PartitionProgress p;
  p.partition = partition;
  p.applied = applied;
  p.start_end_offset = end;
  return p;
}

TEST(CatchUpTrackerTest, NotReadyUntilEveryTopicIsAssignedAndCaughtUp) {
  CatchUpTracker t({"a", "b"});
  std::vector<std::pair<std::optional<size_t>, bool>> events;
  t.AddListener([&](std::optional<size_t> topic, bool ready) { events.push_back({topic, ready}); });
  EXPECT_FALSE(t.Ready());
  t.SetAssigned(0, {P(0, -1, 10), P(1, 5, 5)});
  EXPECT_FALSE(t.TopicReady(0));
  t.SetApplied(0, 0, 9);
  EXPECT_FALSE(t.TopicReady(0));
  t.SetApplied(0, 0, 10);
  EXPECT_TRUE(t.TopicReady(0));
  EXPECT_FALSE(t.Ready());  // b not assigned yet
  t.SetAssigned(1, {P(0, -1, 0)});
  EXPECT_FALSE(t.Ready());  // empty partition waits for its first known position
  t.SetApplied(1, 0, 0);
  EXPECT_TRUE(t.Ready());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], (std::pair<std::optional<size_t>, bool>{0, true}));
  EXPECT_EQ(events[1], (std::pair<std::optional<size_t>, bool>{1, true}));
  EXPECT_EQ(events[2], (std::pair<std::optional<size_t>, bool>{std::nullopt, true}));
}

TEST(CatchUpTrackerTest, StoredPositionAtEndIsReadyImmediately) {
  CatchUpTracker t({"a"});
  t.SetAssigned(0, {P(0, 100, 100), P(1, 7, 3)});
  EXPECT_TRUE(t.Ready());
}

TEST(CatchUpTrackerTest, StaysReadyOnceReady) {
  CatchUpTracker t({"a"});
  t.SetAssigned(0, {P(0, 1, 1)});
  ASSERT_TRUE(t.Ready());
  t.SetEndOffset(0, 0, 1000);
  EXPECT_TRUE(t.Ready());
  auto snap = t.Progress();
  EXPECT_EQ(snap[0].partitions[0].end_offset, 1000);
}

TEST(CatchUpTrackerTest, HaltMakesNotReadyWithReasonUntilLifted) {
  CatchUpTracker t({"a", "b"});
  std::vector<std::pair<std::optional<size_t>, bool>> events;
  t.AddListener([&](std::optional<size_t> topic, bool ready) { events.push_back({topic, ready}); });
  t.SetAssigned(0, {P(0, 1, 1), P(1, 1, 1)});
  t.SetAssigned(1, {P(0, 1, 1)});
  ASSERT_TRUE(t.Ready());
  EXPECT_EQ(t.NotReadyReason(), "");
  events.clear();
  t.SetHalted(0, 1, "topic a partition 1 halted at offset 7: schema_violation");
  EXPECT_FALSE(t.Ready());
  EXPECT_FALSE(t.TopicReady(0));
  EXPECT_TRUE(t.TopicReady(1));
  EXPECT_EQ(t.NotReadyReason(), "topic a partition 1 halted at offset 7: schema_violation");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (std::pair<std::optional<size_t>, bool>{0, false}));
  EXPECT_EQ(events[1], (std::pair<std::optional<size_t>, bool>{std::nullopt, false}));
  t.SetHalted(0, 1, "");
  EXPECT_TRUE(t.Ready());
  EXPECT_EQ(events.size(), 4u);
}

TEST(CatchUpTrackerTest, NotReadyReasonBeforeCatchUp) {
  CatchUpTracker t({"a"});
  EXPECT_EQ(t.NotReadyReason(), "topic a is not assigned yet");
  t.SetAssigned(0, {P(0, 3, 10), P(1, -1, 5)});
  EXPECT_EQ(t.NotReadyReason(), "topic a is catching up (12 records to go)");
}

// Readiness names what is wrong with each topic, not only the first.
TEST(CatchUpTrackerTest, NotReadyReasonNamesEveryTopicThatIsNotReady) {
  CatchUpTracker t({"a", "b", "c"});
  t.SetWaiting(0, "topic a does not exist in Kafka (yet)");
  t.SetAssigned(1, {P(0, 0, 4)});
  t.SetAssigned(2, {P(0, 1, 1)});
  EXPECT_EQ(t.NotReadyReason(),
            "topic a does not exist in Kafka (yet); topic b is catching up (4 records to go)");
  EXPECT_EQ(t.TopicNotReadyReason(0), "topic a does not exist in Kafka (yet)");
  EXPECT_EQ(t.TopicNotReadyReason(1), "topic b is catching up (4 records to go)");
  EXPECT_EQ(t.TopicNotReadyReason(2), "");
  auto progress = t.Progress();
  EXPECT_EQ(progress[1].not_ready_reason, "topic b is catching up (4 records to go)");
}

// An optional topic never takes the pod out of service; its own reads still wait for it.
TEST(CatchUpTrackerTest, OptionalTopicDoesNotGateReadiness) {
  CatchUpTracker t({"a", "b"}, {}, {1});
  t.SetAssigned(0, {P(0, 1, 1)});
  EXPECT_TRUE(t.Ready());
  EXPECT_FALSE(t.TopicReady(1));
  EXPECT_FALSE(t.TopicServable(1));
  EXPECT_EQ(t.NotReadyReason(), "");
  t.SetAssigned(1, {P(0, 1, 1)});
  t.SetHalted(1, 0, "topic b partition 0 halted at offset 1: schema_violation");
  EXPECT_TRUE(t.Ready());
  EXPECT_FALSE(t.TopicReady(1));
  EXPECT_EQ(t.TopicNotReadyReason(1), "topic b partition 0 halted at offset 1: schema_violation");
  t.SetHalted(0, 0, "topic a partition 0 halted at offset 1: not_json");
  EXPECT_FALSE(t.Ready());  // a required one does
  EXPECT_EQ(t.NotReadyReason(), "topic a partition 0 halted at offset 1: not_json");
}

// With no required topic there is nothing to wait for: ready from the start, and every
// answer agrees (Ready, which GetStatus and the publisher read, and NotReadyReason, which
// /readyz reads).
TEST(CatchUpTrackerTest, ATrackerWithOnlyOptionalTopicsIsReadyFromTheStart) {
  CatchUpTracker t({"a", "b"}, {}, {0, 1});
  EXPECT_TRUE(t.Ready());
  EXPECT_EQ(t.NotReadyReason(), "");
  EXPECT_FALSE(t.TopicReady(0));
  t.SetWaiting(0, "topic a does not exist in Kafka (yet)");
  EXPECT_TRUE(t.Ready());
  CatchUpTracker required({"a", "b"}, {}, {1});
  EXPECT_FALSE(required.Ready());
  EXPECT_NE(required.NotReadyReason(), "");
}

// Kafka unreachable at start: the stored state is served, marked stale, and stays ready
// (no flap) while it catches up once Kafka answers; stale ends when caught up.
TEST(CatchUpTrackerTest, StoredStateIsServedStaleUntilCaughtUpAgain) {
  CatchUpTracker t({"a", "b"});
  std::vector<std::pair<std::optional<size_t>, bool>> events;
  t.AddListener([&](std::optional<size_t> topic, bool ready) { events.push_back({topic, ready}); });
  t.SetAssigned(1, {P(0, 1, 1)});
  ASSERT_FALSE(t.Ready());
  events.clear();
  t.ServeStored(0, {P(0, 5, 5), P(1, 2, 2)}, 1700000000000,
                "kafka unreachable since start: timed out");
  EXPECT_TRUE(t.Ready());
  EXPECT_TRUE(t.TopicServable(0));
  std::optional<Staleness> st = t.TopicStaleness(0);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->caught_up_ms, 1700000000000);
  EXPECT_EQ(st->reason, "kafka unreachable since start: timed out");
  EXPECT_FALSE(t.TopicStaleness(1).has_value());
  // Kafka answers: new records to apply. Ready throughout, stale until applied.
  t.SetAssigned(0, {P(0, 5, 8), P(1, 2, 2)});
  EXPECT_TRUE(t.Ready());
  EXPECT_TRUE(t.TopicStaleness(0).has_value());
  t.SetApplied(0, 0, 8);
  EXPECT_FALSE(t.TopicStaleness(0).has_value());
  EXPECT_TRUE(t.Ready());
  ASSERT_EQ(events.size(), 2u);  // topic a ready, then the sidecar: never a flap
  EXPECT_EQ(events[1], (std::pair<std::optional<size_t>, bool>{std::nullopt, true}));
  // A second ServeStored after assignment changes nothing.
  t.ServeStored(0, {P(0, 8, 8)}, 1, "x");
  EXPECT_FALSE(t.TopicStaleness(0).has_value());
}

TEST(CatchUpTrackerTest, RebuildEndsServingTheStoredState) {
  CatchUpTracker t({"a"});
  t.ServeStored(0, {P(0, 3, 3)}, 1700000000000, "kafka unreachable since start");
  ASSERT_TRUE(t.Ready());
  t.SetRebuilding(0, "topic_deleted");
  EXPECT_FALSE(t.Ready());
  EXPECT_FALSE(t.TopicServable(0));
  EXPECT_FALSE(t.TopicStaleness(0).has_value());
}

TEST(CatchUpTrackerTest, WaitReadyReturnsAtDeadlineWhenNotReady) {
  CatchUpTracker t({"a"});
  EXPECT_FALSE(t.WaitReady(std::chrono::steady_clock::now()));
  t.SetAssigned(0, {P(0, 0, 0)});
  EXPECT_TRUE(t.WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(1)));
}

TEST(CatchUpTrackerTest, LagPolicyTakesReadinessAwayOnlyAfterItsDurationAndGivesItBack) {
  LagPolicy lag;
  lag.max_records = 100;
  lag.max_for = std::chrono::seconds(30);
  CatchUpTracker t({"a"}, lag);
  std::vector<bool> transitions;
  t.AddListener([&](std::optional<size_t> topic, bool ready) {
    if (!topic) transitions.push_back(ready);
  });
  auto t0 = std::chrono::steady_clock::now();
  t.SetAssigned(0, {P(0, 10, 10)});
  ASSERT_TRUE(t.Ready());
  t.SetEndOffset(0, 0, 500);  // 490 behind
  t.Tick(t0);
  t.Tick(t0 + std::chrono::seconds(29));
  EXPECT_TRUE(t.Ready());  // not for long enough yet
  t.Tick(t0 + std::chrono::seconds(30));
  EXPECT_FALSE(t.Ready());
  EXPECT_FALSE(t.TopicReady(0));
  EXPECT_TRUE(t.TopicServable(0));  // reads go on: the data is complete, only stale
  EXPECT_NE(t.NotReadyReason().find("lags 490 records"), std::string::npos) << t.NotReadyReason();
  t.SetApplied(0, 0, 450);  // 50 behind: within the bound
  t.Tick(t0 + std::chrono::seconds(31));
  EXPECT_TRUE(t.Ready());
  EXPECT_EQ(transitions, (std::vector<bool>{true, false, true}));
  // A new excursion starts its own clock.
  t.SetEndOffset(0, 0, 1000);
  t.Tick(t0 + std::chrono::seconds(40));
  t.Tick(t0 + std::chrono::seconds(69));
  EXPECT_TRUE(t.Ready());
}

TEST(CatchUpTrackerTest, WithoutALagPolicyLagNeverTakesReadinessAway) {
  CatchUpTracker t({"a"});
  t.SetAssigned(0, {P(0, 0, 0)});
  t.SetEndOffset(0, 0, 1000000);
  auto t0 = std::chrono::steady_clock::now();
  t.Tick(t0);
  t.Tick(t0 + std::chrono::hours(1));
  EXPECT_TRUE(t.Ready());
}

TEST(CatchUpTrackerTest, FailingStoreCommitsMakeTheSidecarNotReadyButReadable) {
  CatchUpTracker t({"a"});
  t.SetAssigned(0, {P(0, 5, 5)});
  ASSERT_TRUE(t.Ready());
  t.SetStoreFailure("store commits fail: No space left on device");
  EXPECT_FALSE(t.Ready());
  EXPECT_TRUE(t.TopicServable(0));
  EXPECT_TRUE(t.Servable());
  EXPECT_EQ(t.NotReadyReason(), "store commits fail: No space left on device");
  t.SetStoreFailure("");
  EXPECT_TRUE(t.Ready());
}

TEST(CatchUpTrackerTest, RebuildingTopicIsNotReadyNorReadableUntilCaughtUpAgain) {
  CatchUpTracker t({"a", "b"});
  t.SetAssigned(0, {P(0, 5, 5)});
  t.SetAssigned(1, {P(0, 0, 0)});
  ASSERT_TRUE(t.Ready());
  t.SetRebuilding(0, "offset_out_of_range: partition 0 position 5 is not in the log any more");
  EXPECT_FALSE(t.Ready());
  EXPECT_FALSE(t.TopicServable(0));
  EXPECT_TRUE(t.TopicServable(1));
  EXPECT_NE(t.NotReadyReason().find("topic a is being rebuilt"), std::string::npos);
  t.SetAssigned(0, {P(0, -1, 8)});
  EXPECT_FALSE(t.Ready());
  t.SetApplied(0, 0, 8);
  EXPECT_TRUE(t.Ready());
  EXPECT_TRUE(t.NotReadyReason().empty());
}

}  // namespace
}  // namespace cachecar::health

namespace cachecar::health {
namespace {

// ThreadSanitizer found listeners added while the writer reported transitions (a test did
// so) racing on the listener list; adding one at any time is now part of the contract.
TEST(CatchUpTrackerTest, AListenerAddedWhileTheWriterRunsHearsLaterTransitions) {
  CatchUpTracker t({"a"});
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) {
      t.SetAssigned(0, {P(0, 1, 1)});  // ready
      t.SetRebuilding(0, "test");      // not ready
    }
  });
  std::atomic<int> heard{0};
  for (int i = 0; i < 20; ++i) {
    t.AddListener([&](std::optional<size_t>, bool) { heard.fetch_add(1); });
  }
  EXPECT_TRUE(testing::WaitUntil([&] { return heard.load() >= 20; }));
  stop = true;
  writer.join();
}

}  // namespace
}  // namespace cachecar::health

namespace cachecar::health {
namespace {

TEST(CatchUpTrackerTest, AddedPartitionsMakeTheTopicNotReadyButKeepItReadable) {
  CatchUpTracker t({"a"});
  t.SetAssigned(0, {P(0, 5, 5)});
  ASSERT_TRUE(t.Ready());
  t.AddPartitions(0, {P(1, -1, 3), P(2, -1, 0)});
  EXPECT_FALSE(t.Ready());
  EXPECT_FALSE(t.TopicReady(0));
  EXPECT_TRUE(t.TopicServable(0));  // what partition 0 holds is still complete
  EXPECT_EQ(t.Progress()[0].partitions.size(), 3u);
  t.SetApplied(0, 1, 3);
  EXPECT_FALSE(t.Ready());  // partition 2 has not reported a position yet
  t.SetApplied(0, 2, 0);
  EXPECT_TRUE(t.Ready());
}

}  // namespace
}  // namespace cachecar::health
