// The materializer with views, on the real store and the real view keys worker (this test
// binary started again: tests/worker_main.cc), fed by a scripted source. A plain path key
// runs in-process; the same key behind `. |` goes through the worker: both must index
// every kind of value the same way.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "kafka/fake_source.h"
#include "kafka/materializer.h"
#include "test_util.h"

namespace cachecar::kafka {
namespace {

TEST(MaterializerViewTest, APathKeyInProcessAndThroughTheWorkerIndexAlike) {
  testing::TempDir dir;
  config::Config cfg;
  config::TopicConfig users;
  users.name = "users";
  users.views = {1, 2};
  config::TopicConfig fast, slow;
  fast.name = "by-id-fast";
  fast.view_key = ".user.id";
  slow.name = "by-id-slow";
  slow.view_key = ". | .user.id";
  for (auto* v : {&fast, &slow}) {
    v->view_of = 0;
    v->view_topic = "users";
  }
  cfg.topics = {users, fast, slow};
  cfg.transforms.record_budget_ms = 500;

  store::Options so;
  so.path = dir.path();
  so.topics = {"users", "by-id-fast", "by-id-slow"};
  so.views = {{1, 0}, {2, 0}};
  so.map_size_bytes = 64 << 20;
  auto store = std::move(store::Store::Open(so)).value();
  health::CatchUpTracker tracker({"users"});
  auto keys = StartViewKeys(cfg, nullptr);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  MaterializerOptions mo;
  mo.topics = {users};
  mo.views = {fast, slow};
  mo.view_keys = keys->get();
  mo.commit_interval = std::chrono::milliseconds(0);
  mo.batch_max_delay = std::chrono::milliseconds(5);
  mo.idle_poll = std::chrono::milliseconds(5);

  const std::vector<std::string> values = {
      R"({"user":{"id":"a"}})",          R"({"user":{"id":"a\u0040b"}})",
      R"({"user":{"id":42}})",           R"({"user":{"id":-7}})",
      R"({"user":{"id":1.50}})",         R"({"user":{"id":1e3}})",
      R"({"user":{"id":123456789012345678901}})",
      R"({"user":{"id":9007199254740993}})",
      R"({"user":{"id":true}})",         R"({"user":{"id":null}})",
      R"({"user":{}})",                  R"({"other":1})",
      R"({"user":{"id":[1,2]}})",        R"({"user":{"id":{"x":1}}})",
      R"({"user":"flat"})",              R"(5)",
      R"("text")",                       R"({"user":{"id":""}})",
  };
  FakeSource source;
  int64_t offset = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    source.PushRecord(0, 0, offset++, "k" + std::to_string(i), values[i]);
  }
  source.SetPartitions(0, 1, {offset});
  prometheus::Registry registry;
  Materializer m(mo, store.get(), &source, &tracker, &registry);
  m.Start();
  ASSERT_TRUE(tracker.WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  m.Stop();

  auto view = [&](size_t table) {
    std::map<std::string, std::string> out;
    auto snap = store->NewSnapshot();
    auto page = snap->Scan(table, "", "", 1 << 20, 1 << 30);
    for (const auto& e : page->entries) out[e.key] = e.value;
    return out;
  };
  const auto got = view(1);
  EXPECT_EQ(got, view(2));
  // What the keys are, independently: strings as they are, integers and booleans as text.
  EXPECT_EQ(got.count("a"), 1u);
  EXPECT_EQ(got.count("a@b"), 1u);
  EXPECT_EQ(got.count("42"), 1u);
  EXPECT_EQ(got.count("-7"), 1u);
  EXPECT_EQ(got.count("true"), 1u);
  EXPECT_EQ(store->KeyCount(0).value(), values.size());  // every entry is in its topic
}

}  // namespace
}  // namespace cachecar::kafka
