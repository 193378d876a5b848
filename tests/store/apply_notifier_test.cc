#include "store/apply_notifier.h"

#include <gtest/gtest.h>

#include <thread>

#include "test_util.h"

namespace cachecar::store {
namespace {

using Clock = ApplyNotifier::Clock;

struct Outcome {
  testing::Notification done;
  Status status;
  uint64_t revision = 0;
  ApplyNotifier::Callback Callback() {
    return [this](const Status& st, uint64_t r) {
      status = st;
      revision = r;
      done.Notify();
    };
  }
};

const auto kLater = std::chrono::minutes(5);

TEST(ApplyNotifierTest, AlreadyAppliedAnswersAtOnce) {
  ApplyNotifier n(7);
  n.Published(9, {{{0, 0}, 5}});
  Outcome o;
  n.WaitForOffset(0, 0, 4, Clock::now() + kLater, o.Callback());
  ASSERT_TRUE(o.done.WaitFor(std::chrono::milliseconds(0)));  // inline
  EXPECT_TRUE(o.status.ok());
  EXPECT_EQ(o.revision, 9u);
}

TEST(ApplyNotifierTest, WaitsForTheCommitThatAppliesTheOffset) {
  ApplyNotifier n(0);
  Outcome o;
  n.WaitForOffset(0, 1, 10, Clock::now() + kLater, o.Callback());
  n.Published(3, {{{0, 1}, 10}});  // offset 10 not yet applied
  n.Published(4, {{{0, 0}, 50}});  // another partition
  EXPECT_FALSE(o.done.WaitFor(std::chrono::milliseconds(50)));
  n.Published(5, {{{0, 1}, 11}});
  ASSERT_TRUE(o.done.WaitFor());
  EXPECT_TRUE(o.status.ok());
  EXPECT_EQ(o.revision, 5u);
}

TEST(ApplyNotifierTest, RevisionWaits) {
  ApplyNotifier n(10);
  Outcome now, later;
  n.WaitForRevision(10, Clock::now() + kLater, now.Callback());
  ASSERT_TRUE(now.done.WaitFor(std::chrono::milliseconds(0)));
  n.WaitForRevision(12, Clock::now() + kLater, later.Callback());
  n.Published(11, {});
  EXPECT_FALSE(later.done.WaitFor(std::chrono::milliseconds(50)));
  n.Published(12, {});
  ASSERT_TRUE(later.done.WaitFor());
  EXPECT_EQ(later.revision, 12u);
  EXPECT_EQ(n.pending(), 0u);
}

TEST(ApplyNotifierTest, NewWaitsPastTheCapAreRefusedAtOnce) {
  ApplyNotifier n(0, nullptr, /*max_pending=*/2);
  auto far = ApplyNotifier::Clock::now() + std::chrono::minutes(5);
  int called = 0;
  n.WaitForRevision(10, far, [&](const Status&, uint64_t) { ++called; });
  n.WaitForReady(far, [&](const Status&, uint64_t) { ++called; });
  EXPECT_EQ(n.pending(), 2u);
  Status refused;
  n.WaitForRevision(10, far, [&](const Status& st, uint64_t) { refused = st; });
  EXPECT_EQ(refused.code(), Code::kResourceExhausted);  // answered inline
  EXPECT_EQ(refused.reason(), "TOO_MANY_WAITING_CALLS");
  // A Put's wait for its apply replaces its deadline timer: never refused.
  Status applied;
  n.WaitForOffset(0, 0, 0, far, [&](const Status& st, uint64_t) { applied = st; });
  EXPECT_EQ(n.pending(), 3u);
  EXPECT_EQ(called, 0);
  n.Shutdown();
}

TEST(ApplyNotifierTest, DeadlinePassesWithDeadlineExceeded) {
  ApplyNotifier n(0);
  Outcome o;
  n.WaitForRevision(5, Clock::now() + std::chrono::milliseconds(20), o.Callback());
  ASSERT_TRUE(o.done.WaitFor());
  EXPECT_EQ(o.status.code(), Code::kDeadlineExceeded);
  EXPECT_EQ(n.pending(), 0u);
}

TEST(ApplyNotifierTest, HaltedPartitionFailsItsWaitersButNotOthers) {
  // The outcomes outlive the notifier: its shutdown answers `other`, still waiting.
  Outcome halted, other, after;
  ApplyNotifier n(0);
  n.WaitForOffset(0, 0, 3, Clock::now() + kLater, halted.Callback());
  n.WaitForOffset(0, 1, 3, Clock::now() + kLater, other.Callback());
  n.SetHalted(0, 0, "bad record at offset 2");
  ASSERT_TRUE(halted.done.WaitFor());
  EXPECT_EQ(halted.status.code(), Code::kFailedPrecondition);
  EXPECT_EQ(halted.status.reason(), "PARTITION_HALTED");
  EXPECT_FALSE(other.done.WaitFor(std::chrono::milliseconds(20)));
  n.SetHalted(0, 0, "");
  n.WaitForOffset(0, 0, 3, Clock::now() + std::chrono::milliseconds(20), after.Callback());
  ASSERT_TRUE(after.done.WaitFor());
  EXPECT_EQ(after.status.code(), Code::kDeadlineExceeded);  // waits again, not halted
}

TEST(ApplyNotifierTest, ShutdownFailsPendingAndLaterWaits) {
  Outcome pending, late;
  {
    ApplyNotifier n(0);
    n.WaitForRevision(100, Clock::now() + kLater, pending.Callback());
    n.Shutdown();
    ASSERT_TRUE(pending.done.WaitFor());
    n.WaitForRevision(100, Clock::now() + kLater, late.Callback());
    ASSERT_TRUE(late.done.WaitFor(std::chrono::milliseconds(0)));
  }
  EXPECT_EQ(pending.status.reason(), "SHUTTING_DOWN");
  EXPECT_EQ(late.status.code(), Code::kUnavailable);
}

TEST(ApplyNotifierTest, SlowCallbackDoesNotBlockPublished) {
  ApplyNotifier n(0);
  testing::Notification entered, release;
  n.WaitForRevision(1, Clock::now() + kLater, [&](const Status&, uint64_t) {
    entered.Notify();
    release.WaitFor();
  });
  n.Published(1, {});
  ASSERT_TRUE(entered.WaitFor());
  // The callback is still running on the notifier's thread; the writer is not held up:
  // the Published calls finish while it runs (a regression fails here, not as a timeout).
  testing::Notification published;
  std::thread writer([&] {
    for (uint64_t r = 2; r < 100; ++r) n.Published(r, {{{0, 0}, static_cast<int64_t>(r)}});
    published.Notify();
  });
  EXPECT_TRUE(published.WaitFor());
  release.Notify();
  writer.join();
}

TEST(ApplyNotifierTest, ReadyWaitsAnswerOnReadinessOrWithTheReasonAtTheDeadline) {
  ApplyNotifier n(3);
  Outcome late, soon;
  n.SetReady(false, "topic users is being rebuilt");
  n.WaitForReady(Clock::now() + std::chrono::milliseconds(20), late.Callback());
  ASSERT_TRUE(late.done.WaitFor());
  EXPECT_EQ(late.status.code(), Code::kDeadlineExceeded);
  EXPECT_EQ(late.status.message(), "topic users is being rebuilt");
  n.WaitForReady(Clock::now() + kLater, soon.Callback());
  EXPECT_EQ(n.pending(), 1u);
  n.SetReady(true, "");
  ASSERT_TRUE(soon.done.WaitFor());
  EXPECT_TRUE(soon.status.ok());
  EXPECT_EQ(soon.revision, 3u);
}

TEST(ApplyNotifierTest, StoreFailureIsReportedUntilCleared) {
  ApplyNotifier n(0);
  EXPECT_TRUE(n.StoreFailure().ok());
  n.SetStoreFailure(Status(Code::kResourceExhausted, "disk full", "DISK_FULL"));
  EXPECT_EQ(n.StoreFailure().reason(), "DISK_FULL");
  n.SetStoreFailure(Status::Ok());
  EXPECT_TRUE(n.StoreFailure().ok());
}

TEST(ApplyNotifierTest, ForgottenTopicWaitsForItsOffsetsAgain) {
  ApplyNotifier n(0);
  n.Published(5, {{{0, 0}, 100}, {{1, 0}, 100}});
  n.ForgetTopic(0);  // recreated: offsets start over
  Outcome o, other;
  n.WaitForOffset(0, 0, 3, Clock::now() + kLater, o.Callback());
  n.WaitForOffset(1, 0, 3, Clock::now() + kLater, other.Callback());
  ASSERT_TRUE(other.done.WaitFor());  // the other topic is untouched
  EXPECT_EQ(n.pending(), 1u);
  n.Published(6, {{{0, 0}, 4}});
  ASSERT_TRUE(o.done.WaitFor());
  EXPECT_TRUE(o.status.ok());
}

}  // namespace
}  // namespace cachecar::store
