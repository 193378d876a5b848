#include "watch/watch_index.h"

#include <gtest/gtest.h>

#include <set>

namespace cachecar::watch {
namespace {

std::shared_ptr<Watch> MakeWatch(size_t topic, std::string key, bool prefix) {
  auto w = std::make_shared<Watch>();
  w->topic = topic;
  w->key = std::move(key);
  w->prefix = prefix;
  return w;
}

std::set<Watch*> Matches(const WatchIndex& index, size_t topic, const std::string& key) {
  std::set<Watch*> out;
  index.ForEachMatch(topic, key, [&](const std::shared_ptr<Watch>& w) { out.insert(w.get()); });
  return out;
}

TEST(WatchIndexTest, FindsExactAndPrefixWatchesOfTheTopicOnly) {
  WatchIndex index({"users", "sessions"});
  auto exact = MakeWatch(0, "u1", false);
  auto prefix = MakeWatch(0, "u", true);
  auto all = MakeWatch(0, "", true);
  auto other = MakeWatch(1, "u1", false);
  for (auto& w : {exact, prefix, all, other}) EXPECT_TRUE(index.Add(w));
  EXPECT_FALSE(index.Add(exact));
  EXPECT_EQ(index.size(), 4u);
  EXPECT_EQ(Matches(index, 0, "u1"), (std::set<Watch*>{exact.get(), prefix.get(), all.get()}));
  EXPECT_EQ(Matches(index, 0, "x"), (std::set<Watch*>{all.get()}));
  EXPECT_EQ(Matches(index, 1, "u1"), (std::set<Watch*>{other.get()}));
  EXPECT_TRUE(index.Any("users", "zzz"));
  EXPECT_TRUE(index.Any("sessions", "u1"));
  EXPECT_FALSE(index.Any("sessions", "u2"));
  EXPECT_FALSE(index.Any("nope", "u1"));
}

TEST(WatchIndexTest, RemovedWatchesMatchNothing) {
  WatchIndex index({"users"});
  auto a = MakeWatch(0, "k", false);
  auto b = MakeWatch(0, "k", false);
  auto p = MakeWatch(0, "k", true);
  index.Add(a);
  index.Add(b);
  index.Add(p);
  EXPECT_TRUE(index.Remove(a));
  EXPECT_FALSE(index.Remove(a));
  EXPECT_EQ(Matches(index, 0, "k"), (std::set<Watch*>{b.get(), p.get()}));
  EXPECT_TRUE(index.Remove(b));
  EXPECT_TRUE(index.Remove(p));
  EXPECT_EQ(index.size(), 0u);
  EXPECT_FALSE(index.Any("users", "k"));
}

}  // namespace
}  // namespace cachecar::watch
