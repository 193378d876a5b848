// The materializer with transforms and merge-patch, on the real store and the real
// transform worker (this test binary started again: tests/worker_main.cc), fed by a
// scripted source. The expected states are computed here, independently.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "kafka/fake_source.h"
#include "kafka/materializer.h"
#include "test_util.h"

namespace cachecar::kafka {
namespace {

class MaterializerTransformTest : public ::testing::Test {
 protected:
  void Open(config::TopicConfig topic, uint32_t batch_records,
            std::string worker_path = "/proc/self/exe") {
    store::Options so;
    so.path = dir_.path();
    so.topics = {topic.name};
    so.map_size_bytes = 64 << 20;
    store_ = std::move(store::Store::Open(so)).value();
    tracker_ = std::make_unique<health::CatchUpTracker>(so.topics);
    options_.topics = {topic};
    options_.commit_interval = std::chrono::milliseconds(0);
    options_.batch_max_records = batch_records;
    options_.batch_max_delay = std::chrono::milliseconds(5);
    options_.retry_backoff = std::chrono::milliseconds(10);
    options_.idle_poll = std::chrono::milliseconds(5);
    config::Config cfg;
    cfg.topics = {topic};
    cfg.transforms.record_budget_ms = 500;
    auto sandbox = StartTransforms(cfg, nullptr, worker_path);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status().ToString();
    sandbox_ = std::move(*sandbox);
    options_.transforms = sandbox_.get();
    options_.rejected = &rejected_;
  }

  std::map<std::string, nlohmann::json> State() {
    std::map<std::string, nlohmann::json> out;
    auto snap = store_->NewSnapshot();
    auto page = snap->Scan(0, "", "", 1 << 20, 1 << 30);
    for (const auto& e : page->entries) out[e.key] = nlohmann::json::parse(e.value);
    return out;
  }

  bool WaitReady() {
    return tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  std::unique_ptr<transform::Sandbox> sandbox_;
  RejectedLog rejected_{std::vector<size_t>{100}};
  MaterializerOptions options_;
  prometheus::Registry registry_;
  FakeSource source_;
};

TEST_F(MaterializerTransformTest, RecordsKeepTheirOrderThroughBatchesCommitsAndTombstones) {
  config::TopicConfig t;
  t.name = "users";
  t.transform = "if .drop then empty elif .del then null else {v: .v, p: $partition} end";
  Open(t, 700);  // commits inside the worker's 2,000-record batches
  std::mt19937 rnd(5);
  std::map<std::string, nlohmann::json> expected;
  std::vector<int64_t> next(2, 0);
  for (int i = 0; i < 9000; ++i) {
    const int32_t p = static_cast<int32_t>(rnd() % 2);
    const std::string key = "k" + std::to_string(rnd() % 150);
    const int kind = static_cast<int>(rnd() % 10);
    if (kind == 0) {
      source_.PushRecord(0, p, next[p]++, key, std::nullopt);  // tombstone
      expected.erase(key);
    } else if (kind == 1) {
      source_.PushRecord(0, p, next[p]++, key, R"({"drop":true})");  // unchanged
    } else if (kind == 2) {
      source_.PushRecord(0, p, next[p]++, key, R"({"del":true})");
      expected.erase(key);
    } else {
      source_.PushRecord(0, p, next[p]++, key, R"({"v":)" + std::to_string(i) + R"(,"x":1})");
      expected[key] = {{"v", i}, {"p", p}};
    }
  }
  source_.SetPartitions(0, 2, next);
  Materializer m(options_, store_.get(), &source_, tracker_.get(), &registry_);
  m.Start();
  ASSERT_TRUE(WaitReady());
  m.Stop();
  EXPECT_EQ(State(), expected);
  EXPECT_EQ(*store_->LoadPositions(0), (std::map<int32_t, int64_t>{{0, next[0]}, {1, next[1]}}));
}

TEST_F(MaterializerTransformTest, MergePatchFollowsTheBatchAndTheStore) {
  config::TopicConfig t;
  t.name = "users";
  t.apply = config::ApplyMode::kMergePatch;
  Open(t, 3);  // small commits: merges onto the store as well as onto the batch
  std::mt19937 rnd(9);
  std::map<std::string, nlohmann::json> expected;
  int64_t offset = 0;
  for (int i = 0; i < 600; ++i) {
    const std::string key = "k" + std::to_string(rnd() % 20);
    if (rnd() % 25 == 0) {
      source_.PushRecord(0, 0, offset++, key, std::nullopt);
      expected.erase(key);
      continue;
    }
    nlohmann::json patch = {{"f" + std::to_string(rnd() % 4), i}};
    if (rnd() % 3 == 0) patch["f" + std::to_string(rnd() % 4)] = nullptr;
    if (rnd() % 5 == 0) patch["nested"] = {{"a", i}, {"b", nullptr}};
    source_.PushRecord(0, 0, offset++, key, patch.dump());
    nlohmann::json doc = expected.count(key) ? expected[key] : nlohmann::json();
    doc.merge_patch(patch);
    expected[key] = doc;
  }
  source_.SetPartitions(0, 1, {offset});
  Materializer m(options_, store_.get(), &source_, tracker_.get(), &registry_);
  m.Start();
  ASSERT_TRUE(WaitReady());
  m.Stop();
  EXPECT_EQ(State(), expected);
}

TEST_F(MaterializerTransformTest, OnInvalidFailHaltsAtTheRecordTheTransformFailsOn) {
  config::TopicConfig t;
  t.name = "users";
  t.on_invalid = config::InvalidPolicy::kFail;
  t.transform = R"(if .bad then error("bad") else . end)";
  Open(t, 1000);
  source_.SetPartitions(0, 2, {3, 1});
  source_.PushRecord(0, 0, 0, "a", R"({"n":0})");
  source_.PushRecord(0, 0, 1, "b", R"({"bad":true})");
  source_.PushRecord(0, 0, 2, "c", R"({"n":2})");  // queued behind the failure: never applied
  source_.PushRecord(0, 1, 0, "d", R"({"n":3})");  // the other partition goes on
  Materializer m(options_, store_.get(), &source_, tracker_.get(), &registry_);
  m.Start();
  ASSERT_TRUE(source_.WaitDrained());
  ASSERT_TRUE(testing::WaitUntil([&] { return store_->LoadPositions(0)->count(1) > 0; }));
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return tracker_->NotReadyReason().find("halted") != std::string::npos; }));
  EXPECT_FALSE(tracker_->Ready());
  EXPECT_NE(tracker_->NotReadyReason().find("transform_error"), std::string::npos)
      << tracker_->NotReadyReason();
  m.Stop();
  auto state = State();
  EXPECT_EQ(state.count("a"), 1u);
  EXPECT_EQ(state.count("b") + state.count("c"), 0u);
  EXPECT_EQ(state.count("d"), 1u);
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 1);
  EXPECT_EQ(rejected_.List(0).at(0).reason, "transform_error");
}

TEST_F(MaterializerTransformTest, AWorkerThatCannotBeStartedAgainLosesNothing) {
  // The worker is a copy of this binary that is deleted once running: after the crash of
  // the first worker none can be started, so nothing may be applied, and a later start
  // with a worker applies everything.
  const std::string copy = dir_.path() + "/worker-copy";
  std::filesystem::copy_file("/proc/self/exe", copy);
  std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
  config::TopicConfig t;
  t.name = "users";
  t.transform = "if .crash then (def f: [f]; f) else . end";
  Open(t, 1000, copy);
  std::filesystem::remove(copy);
  source_.SetPartitions(0, 1, {3});
  source_.PushRecord(0, 0, 0, "a", R"({"n":0})");
  source_.PushRecord(0, 0, 1, "b", R"({"crash":true})");
  source_.PushRecord(0, 0, 2, "c", R"({"n":2})");
  {
    Materializer m(options_, store_.get(), &source_, tracker_.get(), &registry_);
    m.Start();
    ASSERT_TRUE(source_.WaitDrained());
    EXPECT_FALSE(tracker_->Ready());
    m.Stop();  // while retrying, or before its first flush: either way nothing applied
  }
  EXPECT_TRUE(State().empty());
  EXPECT_TRUE(store_->LoadPositions(0)->empty());

  // Started again with a worker that can be started: everything, the crash rejected.
  sandbox_.reset();
  config::Config cfg;
  cfg.topics = {t};
  auto sandbox = StartTransforms(cfg, nullptr);
  ASSERT_TRUE(sandbox.ok());
  sandbox_ = std::move(*sandbox);
  options_.transforms = sandbox_.get();
  FakeSource source;  // Kafka, read again from the stored position (none)
  source.SetPartitions(0, 1, {4});  // and one more since
  source.PushRecord(0, 0, 0, "a", R"({"n":0})");
  source.PushRecord(0, 0, 1, "b", R"({"crash":true})");
  source.PushRecord(0, 0, 2, "c", R"({"n":2})");
  source.PushRecord(0, 0, 3, "d", R"({"n":3})");
  tracker_ = std::make_unique<health::CatchUpTracker>(std::vector<std::string>{"users"});
  prometheus::Registry registry;
  Materializer again(options_, store_.get(), &source, tracker_.get(), &registry);
  again.Start();
  ASSERT_TRUE(WaitReady());
  again.Stop();
  auto state = State();
  EXPECT_EQ(state.size(), 3u);
  EXPECT_EQ(state.count("b"), 0u);
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 4);
}

}  // namespace
}  // namespace cachecar::kafka
