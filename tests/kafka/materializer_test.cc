#include "kafka/materializer.h"

#include <gtest/gtest.h>

#include "kafka/fake_source.h"
#include "test_util.h"

namespace cachecar::kafka {
namespace {

class MaterializerTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  void OpenStore() {
    store::Options so;
    so.path = dir_.path();
    so.topics = {"users", "raw"};
    so.map_size_bytes = 64 << 20;
    store_ = std::move(store::Store::Open(so)).value();
    tracker_ = std::make_unique<health::CatchUpTracker>(so.topics);
  }

  std::unique_ptr<Materializer> Make(uint32_t batch_records = 1000) {
    MaterializerOptions o;
    config::TopicConfig users;
    users.name = "users";
    config::TopicConfig raw;
    raw.name = "raw";
    raw.key_encoding = config::KeyEncoding::kBytes;
    raw.value_format = config::ValueFormat::kBytes;
    o.topics = {users, raw};
    o.batch_max_records = batch_records;
    o.batch_max_delay = std::chrono::milliseconds(5);
    o.retry_backoff = std::chrono::milliseconds(10);
    o.idle_poll = std::chrono::milliseconds(5);
    return std::make_unique<Materializer>(o, store_.get(), &source_, tracker_.get(), &registry_);
  }

  std::optional<std::string> Value(size_t topic, const std::string& key) {
    auto snap = store_->NewSnapshot();
    auto e = snap->Get(topic, key);
    if (!e.ok() || !e->has_value()) return std::nullopt;
    return (*e)->value;
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  prometheus::Registry registry_;
  FakeSource source_;
};

TEST_F(MaterializerTest, AppliesLatestValuePerKeyAndBecomesReady) {
  source_.SetPartitions(0, 2, {3, 1});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "u1", "{\"v\":1}");
  source_.PushRecord(0, 0, 1, "u2", "{\"v\":2}");
  source_.PushRecord(0, 0, 2, "u1", "{\"v\":3}");
  source_.PushRecord(0, 1, 0, "u2", std::nullopt);  // tombstone
  source_.PushEnd(1, 0, 0);
  auto m = Make();
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(Value(0, "u1"), "{\"v\":3}");
  EXPECT_FALSE(Value(0, "u2").has_value());
  m->Stop();
  EXPECT_EQ(*store_->LoadPositions(0), (std::map<int32_t, int64_t>{{0, 3}, {1, 1}}));
  EXPECT_EQ(*store_->LoadPositions(1), (std::map<int32_t, int64_t>{{0, 0}}));
  auto counters = m->Counters();
  EXPECT_EQ(counters[0].applied, 4u);
  EXPECT_EQ(counters[0].rejected, 0u);
}

TEST_F(MaterializerTest, PartitionEndPastMarkersMakesItReady) {
  // Offsets 0..1 were a committed transaction (record + marker): the source delivers the
  // record, then reports the end at 2. Readiness must not wait for a record at offset 1.
  source_.SetPartitions(0, 1, {2});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "k", "1");
  source_.PushEnd(0, 0, 2);
  source_.PushEnd(1, 0, 0);
  auto m = Make();
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 2);
}

TEST_F(MaterializerTest, InvalidRecordsAreSkippedCountedAndKeepThePreviousValue) {
  source_.SetPartitions(0, 1, {5});
  source_.SetPartitions(1, 1, {1});
  source_.PushRecord(0, 0, 0, "k", "{\"good\":1}");
  source_.PushRecord(0, 0, 1, "k", "not json");
  source_.PushRecord(0, 0, 2, std::nullopt, "{}");
  source_.PushRecord(0, 0, 3, std::string("\xff", 1), "{}");
  source_.PushRecord(0, 0, 4, "", "{}");
  source_.PushRecord(1, 0, 0, std::string("\xff", 1), "not json either");  // bytes topic: fine
  auto m = Make();
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  EXPECT_EQ(Value(0, "k"), "{\"good\":1}");
  EXPECT_EQ(Value(1, std::string("\xff", 1)), "not json either");
  EXPECT_EQ(m->Counters()[0].rejected, 4u);
  EXPECT_EQ(m->Counters()[0].applied, 1u);
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 5);  // rejected records still advance
  auto families = registry_.Collect();
  bool found = false;
  for (const auto& f : families) {
    if (f.name != "cachecar_materializer_records_rejected_total") continue;
    for (const auto& metric : f.metric) {
      for (const auto& l : metric.label) {
        if (l.name == "reason" && l.value == "invalid_json") {
          EXPECT_EQ(metric.counter.value, 1);
          found = true;
        }
      }
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(MaterializerTest, ResumesFromStoredPositions) {
  {
    store::WriteBatch b;
    b.positions[{0, 0}] = 7;
    ASSERT_TRUE(store_->Apply(b).ok());
  }
  source_.SetPartitions(0, 2, {7, 0});
  source_.SetPartitions(1, 1, {0});
  source_.PushEnd(0, 1, 0);
  source_.PushEnd(1, 0, 0);
  auto m = Make();
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  auto a = source_.assignment();
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].topic, 0u);
  EXPECT_EQ(a[0].partition, 0);
  EXPECT_EQ(a[0].offset, 7);
  EXPECT_EQ(a[1].offset, kOffsetBeginning);
}

TEST_F(MaterializerTest, MissingTopicIsRetriedAndBlocksReadinessMeanwhile) {
  source_.SetPartitions(0, 1, {0});
  source_.PushEnd(0, 0, 0);
  testing::Notification first_ready;
  tracker_->AddListener([&](std::optional<size_t> topic, bool ready) {
    if (topic == 0u && ready) first_ready.Notify();
  });
  auto m = Make();
  m->Start();
  ASSERT_TRUE(first_ready.WaitFor());
  EXPECT_TRUE(tracker_->TopicReady(0));
  EXPECT_FALSE(tracker_->Ready());  // "raw" does not exist yet
  source_.SetPartitions(1, 1, {1});
  source_.PushRecord(1, 0, 0, "late", "v");
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  EXPECT_EQ(Value(1, "late"), "v");
}

TEST_F(MaterializerTest, CommitsInBatchesOfTheConfiguredSize) {
  source_.SetPartitions(0, 1, {25});
  source_.SetPartitions(1, 1, {0});
  source_.PushEnd(1, 0, 0);
  for (int i = 0; i < 25; ++i) source_.PushRecord(0, 0, i, "k" + std::to_string(i), "1");
  auto m = Make(/*batch_records=*/10);
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  double commits = 0;
  for (const auto& f : registry_.Collect()) {
    if (f.name == "cachecar_store_commits_total") commits = f.metric[0].counter.value;
  }
  EXPECT_GE(commits, 3);  // 25 records cannot fit in fewer batches of 10
  EXPECT_EQ(store_->revision(), 25u);
}

TEST_F(MaterializerTest, StopCommitsWhatWasConsumed) {
  source_.SetPartitions(0, 1, {1000});
  source_.SetPartitions(1, 1, {0});
  auto m = Make(/*batch_records=*/100000);
  m->Start();
  for (int i = 0; i < 50; ++i) source_.PushRecord(0, 0, i, "k" + std::to_string(i), "1");
  ASSERT_TRUE(source_.WaitDrained());
  m->Stop();
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 50);
  EXPECT_EQ(*store_->KeyCount(0), 50u);
}

}  // namespace
}  // namespace cachecar::kafka
