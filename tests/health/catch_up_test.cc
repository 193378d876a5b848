#include "health/catch_up.h"

#include <gtest/gtest.h>

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
  auto snap = t.Snapshot();
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
  EXPECT_EQ(t.NotReadyReason(), "catching up");
}

TEST(CatchUpTrackerTest, WaitReadyReturnsAtDeadlineWhenNotReady) {
  CatchUpTracker t({"a"});
  EXPECT_FALSE(t.WaitReady(std::chrono::steady_clock::now()));
  t.SetAssigned(0, {P(0, 0, 0)});
  EXPECT_TRUE(t.WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(1)));
}

}  // namespace
}  // namespace cachecar::health
