#include "store/map_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_util.h"

namespace cachecar::store {
namespace {

using std::chrono::milliseconds;

TEST(MapLockTest, ResizeWaitsForReadersAndTakesTheLockOnceTheyLeave) {
  MapLock lock;
  lock.LockShared();
  testing::Notification resized;
  std::thread resizer([&] {
    if (lock.TryLockFor(std::chrono::seconds(10))) {
      resized.Notify();
      lock.Unlock();
    }
  });
  EXPECT_FALSE(resized.WaitFor(milliseconds(50)));  // a reader is in
  lock.UnlockShared();
  EXPECT_TRUE(resized.WaitFor());
  resizer.join();
}

TEST(MapLockTest, ResizeGivesUpWhenAReaderStaysAndLetsNewReadersThrough) {
  MapLock lock;
  lock.LockShared();
  EXPECT_FALSE(lock.TryLockFor(milliseconds(20)));
  // Given up: a new reader is not held back.
  testing::Notification entered;
  std::thread reader([&] {
    lock.LockShared();
    entered.Notify();
    lock.UnlockShared();
  });
  EXPECT_TRUE(entered.WaitFor());
  reader.join();
  lock.UnlockShared();
  EXPECT_TRUE(lock.TryLockFor(milliseconds(0)));
  lock.Unlock();
}

TEST(MapLockTest, AWaitingResizeHoldsBackNewReadersUntilItIsDone) {
  MapLock lock;
  lock.LockShared();
  std::atomic<bool> resize_done{false};
  std::thread resizer([&] {
    ASSERT_TRUE(lock.TryLockFor(std::chrono::seconds(10)));
    resize_done = true;
    lock.Unlock();
  });
  // Once the resize has announced itself, a new reader must wait for it.
  ASSERT_TRUE(testing::WaitUntil([&] { return lock.resize_pending(); }));
  std::atomic<bool> reader_in{false};
  std::thread reader([&] {
    lock.LockShared();
    reader_in = true;
    EXPECT_TRUE(resize_done.load());  // only after the resize
    lock.UnlockShared();
  });
  lock.UnlockShared();  // the old reader leaves: the resize runs, then the new reader
  resizer.join();
  reader.join();
  EXPECT_TRUE(reader_in.load());
}

TEST(MapLockTest, SharedHoldMayBeReleasedOnAnotherThread) {
  MapLock lock;
  lock.LockShared();
  std::thread other([&] { lock.UnlockShared(); });
  other.join();
  EXPECT_TRUE(lock.TryLockFor(milliseconds(0)));
  lock.Unlock();
}

}  // namespace
}  // namespace cachecar::store
