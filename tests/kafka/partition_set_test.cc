#include "kafka/partition_set.h"

#include <gtest/gtest.h>

namespace cachecar::kafka {
namespace {

TEST(PartitionSetTest, TopicsArePendingUntilAssigned) {
  PartitionSet ps(2);
  EXPECT_EQ(ps.pending(), (std::set<size_t>{0, 1}));
  EXPECT_FALSE(ps.assigned_any());
  ps.Add(1, 0, std::nullopt);
  ps.MarkAssigned(1);
  EXPECT_EQ(ps.pending(), (std::set<size_t>{0}));
  EXPECT_TRUE(ps.assigned_any());
  EXPECT_EQ(ps.AssignedTopics(), (std::set<size_t>{1}));
}

TEST(PartitionSetTest, AssignmentsStartAtTheStoredPositionOrTheBeginningAndFollowProgress) {
  PartitionSet ps(1);
  ps.Add(0, 0, 7);
  ps.Add(0, 1, std::nullopt);
  EXPECT_EQ(ps.Position({0, 0}), 7);
  EXPECT_FALSE(ps.Position({0, 1}).has_value());
  std::vector<Assignment> a = ps.Assignments();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].offset, 7);
  EXPECT_EQ(a[1].offset, kOffsetBeginning);
  ps.SetPosition({0, 1}, 3);
  a = ps.Assignments();
  EXPECT_EQ(a[1].offset, 3);
}

TEST(PartitionSetTest, DurableLeavesOutUnknownAndUnflushedPositions) {
  PartitionSet ps(1);
  ps.Add(0, 0, 5);
  ps.Add(0, 1, 9);
  ps.Add(0, 2, std::nullopt);
  std::vector<Assignment> d = ps.Durable({{{0, 1}, 12}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].partition, 0);
  EXPECT_EQ(d[0].offset, 5);
}

TEST(PartitionSetTest, ResetForgetsTheTopicAndMakesItPendingAgain) {
  PartitionSet ps(2);
  ps.Add(0, 0, 5);
  ps.Add(1, 0, 6);
  ps.MarkAssigned(0);
  ps.MarkAssigned(1);
  ps.Reset(0);
  EXPECT_EQ(ps.pending(), (std::set<size_t>{0}));
  EXPECT_FALSE(ps.Position({0, 0}).has_value());
  EXPECT_EQ(ps.Position({1, 0}), 6);
  ASSERT_EQ(ps.Assignments().size(), 1u);
  EXPECT_EQ(ps.Assignments()[0].topic, 1u);
}

}  // namespace
}  // namespace cachecar::kafka
