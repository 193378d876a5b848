// Views kept by the store (README "Views"): a view follows its topic in the same
// transaction, through key changes, deletes and resets.
#include <gtest/gtest.h>

#include "store/store.h"
#include "store/view_codec.h"
#include "test_util.h"

namespace cachecar::store {
namespace {

constexpr size_t kUsers = 0, kByEmail = 1, kByTeam = 2;

class ViewTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open(size_t reset_chunk_keys = 10000, size_t max_per_team = 1000) {
    Options o;
    o.path = dir_.path();
    o.topics = {"users", "users-by-email", "users-by-team"};
    o.views = {{kByEmail, kUsers}, {kByTeam, kUsers, max_per_team}};
    o.map_size_bytes = 64 << 20;
    o.reset_chunk_keys = reset_chunk_keys;
    auto s = Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static Mutation Put(std::string key, std::string value, std::vector<std::string> emails,
                      std::vector<std::string> teams, int64_t offset) {
    Mutation m;
    m.topic = kUsers;
    m.key = std::move(key);
    m.value = std::move(value);
    m.offset = offset;
    m.view_keys = {std::move(emails), std::move(teams)};
    return m;
  }
  static Mutation Del(std::string key, int64_t offset) {
    Mutation m;
    m.topic = kUsers;
    m.key = std::move(key);
    m.offset = offset;
    return m;
  }
  void Apply(Store& s, std::vector<Mutation> ms) {
    WriteBatch b;
    b.mutations = std::move(ms);
    auto r = s.Apply(b);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // The view's value at `key`, or "" when absent.
  std::string Get(Store& s, size_t table, const std::string& key) {
    auto snap = s.NewSnapshot();
    EXPECT_TRUE(snap.ok());
    auto e = snap->Get(table, key);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() && e->has_value() ? (*e)->value : "";
  }
  uint64_t Count(Store& s, size_t table) {
    auto n = s.KeyCount(table);
    EXPECT_TRUE(n.ok());
    return n.ok() ? *n : 0;
  }

  testing::TempDir dir_;
};

TEST_F(ViewTest, AViewKeyHoldsEveryEntryUnderItByKey) {
  auto s = Open();
  Apply(*s, {Put("u2", R"({"n":2})", {"b@x"}, {"red"}, 1),
             Put("u1", R"({"n":1})", {"a@x"}, {"red"}, 2)});
  EXPECT_EQ(Get(*s, kByEmail, "a@x"), R"([{"key":"u1","value":{"n":1}}])");
  EXPECT_EQ(Get(*s, kByEmail, "b@x"), R"([{"key":"u2","value":{"n":2}}])");
  EXPECT_EQ(Get(*s, kByTeam, "red"),
            R"([{"key":"u1","value":{"n":1}},{"key":"u2","value":{"n":2}}])");
}

TEST_F(ViewTest, AChangedViewKeyLeavesTheOldOne) {
  auto s = Open();
  Apply(*s, {Put("u1", R"({"e":"a"})", {"a@x"}, {"red"}, 1)});
  Apply(*s, {Put("u1", R"({"e":"c"})", {"c@x"}, {"red"}, 2)});
  EXPECT_EQ(Get(*s, kByEmail, "a@x"), "");
  EXPECT_EQ(Get(*s, kByEmail, "c@x"), R"([{"key":"u1","value":{"e":"c"}}])");
  EXPECT_EQ(Get(*s, kByTeam, "red"), R"([{"key":"u1","value":{"e":"c"}}])");
  EXPECT_EQ(Count(*s, kByEmail), 1u);
}

TEST_F(ViewTest, ADeleteLeavesEveryViewAndAnotherMemberStays) {
  auto s = Open();
  Apply(*s, {Put("u1", "1", {"a@x"}, {"red"}, 1), Put("u2", "2", {"b@x"}, {"red"}, 2)});
  Apply(*s, {Del("u1", 3)});
  EXPECT_EQ(Get(*s, kByEmail, "a@x"), "");
  EXPECT_EQ(Get(*s, kByTeam, "red"), R"([{"key":"u2","value":2}])");
  Apply(*s, {Del("u2", 4)});
  EXPECT_EQ(Count(*s, kByTeam), 0u);
  EXPECT_EQ(Count(*s, kByEmail), 0u);
}

TEST_F(ViewTest, ChangesInOneBatchSeeEachOther) {
  auto s = Open();
  Apply(*s, {Put("u1", "1", {"a@x"}, {}, 1), Put("u1", "2", {"b@x"}, {}, 2),
             Put("u2", "3", {"a@x"}, {}, 3), Del("u1", 4)});
  EXPECT_EQ(Get(*s, kByEmail, "a@x"), R"([{"key":"u2","value":3}])");
  EXPECT_EQ(Get(*s, kByEmail, "b@x"), "");
}

TEST_F(ViewTest, AnEntryUnderSeveralKeysOrNoneAndRepeatedKeysOnce) {
  auto s = Open();
  Apply(*s, {Put("u1", "1", {"a", "b", "a", ""}, {}, 1)});
  EXPECT_EQ(Get(*s, kByEmail, "a"), R"([{"key":"u1","value":1}])");
  EXPECT_EQ(Get(*s, kByEmail, "b"), R"([{"key":"u1","value":1}])");
  Apply(*s, {Put("u1", "2", {}, {}, 2)});
  EXPECT_EQ(Count(*s, kByEmail), 0u);
  EXPECT_EQ(Get(*s, kUsers, "u1"), "2");
}

TEST_F(ViewTest, ViewChangesAreInTheHistoryForWatchers) {
  auto s = Open();
  Apply(*s, {Put("u1", "1", {"a@x"}, {}, 1)});
  Apply(*s, {Put("u1", "2", {"b@x"}, {}, 2)});
  auto snap = s->NewSnapshot();
  ASSERT_TRUE(snap.ok());
  auto page = snap->ReadHistory(0, 100, 1 << 20);
  ASSERT_TRUE(page.ok());
  std::vector<std::string> seen;
  for (const auto& e : page->events) {
    seen.push_back(e.topic + " " + e.key + " " + (e.value ? *e.value : "deleted") +
                   (e.prev ? " prev " + e.prev->value : ""));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "users u1 1",
                      R"(users-by-email a@x [{"key":"u1","value":1}])",
                      "users u1 2 prev 1",
                      R"(users-by-email a@x deleted prev [{"key":"u1","value":1}])",
                      R"(users-by-email b@x [{"key":"u1","value":2}])",
                  }));
  EXPECT_EQ(s->revision(), 5u);
}

TEST_F(ViewTest, AResetOfTheTopicEmptiesItsViewsInChunks) {
  auto s = Open(/*reset_chunk_keys=*/3);
  std::vector<Mutation> ms;
  for (int i = 0; i < 5; ++i) {
    ms.push_back(Put("u" + std::to_string(i), "1", {"e" + std::to_string(i)}, {"t"}, i));
  }
  Apply(*s, std::move(ms));
  WriteBatch reset;
  reset.reset_topics.insert(kUsers);
  auto r = s->Apply(reset);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->resetting.count(kUsers));
  for (int i = 0; i < 10; ++i) {
    auto done = s->ContinueReset(kUsers);
    ASSERT_TRUE(done.ok());
    if (*done) break;
  }
  EXPECT_EQ(Count(*s, kUsers), 0u);
  EXPECT_EQ(Count(*s, kByEmail), 0u);
  EXPECT_EQ(Count(*s, kByTeam), 0u);
  // The reverse tables went too: the same keys come back as new.
  Apply(*s, {Put("u1", "2", {"e9"}, {}, 10)});
  EXPECT_EQ(Get(*s, kByEmail, "e1"), "");
  EXPECT_EQ(Get(*s, kByEmail, "e9"), R"([{"key":"u1","value":2}])");
  EXPECT_EQ(Get(*s, kByTeam, "t"), "");
}

TEST_F(ViewTest, ViewsSurviveARestart) {
  {
    auto s = Open();
    Apply(*s, {Put("u1", "1", {"a@x"}, {}, 1)});
  }
  auto s = Open();
  Apply(*s, {Put("u1", "2", {"b@x"}, {}, 2)});
  EXPECT_EQ(Get(*s, kByEmail, "a@x"), "");
  EXPECT_EQ(Get(*s, kByEmail, "b@x"), R"([{"key":"u1","value":2}])");
}

TEST_F(ViewTest, AFullViewKeyLeavesOutTheEntryPastItAndSaysSo) {
  auto s = Open(10000, /*max_per_team=*/2);
  WriteBatch b;
  for (int i = 1; i <= 3; ++i) {
    b.mutations.push_back(Put("u" + std::to_string(i), std::to_string(i), {}, {"red"}, i));
  }
  auto r = s->Apply(b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Get(*s, kByTeam, "red"), R"([{"key":"u1","value":1},{"key":"u2","value":2}])");
  ASSERT_EQ(r->view_overflows.count(1), 1u);
  EXPECT_EQ(r->view_overflows.at(1).first, 1u);
  EXPECT_EQ(r->view_overflows.at(1).second,
            (std::pair<std::string, std::string>{"red", "u3"}));
  // u3 is not recorded under the key: once room is made, a change of u3 joins it.
  Apply(*s, {Del("u1", 4)});
  Apply(*s, {Put("u3", "33", {}, {"red"}, 5)});
  EXPECT_EQ(Get(*s, kByTeam, "red"), R"([{"key":"u2","value":2},{"key":"u3","value":33}])");
  // A member's own change never counts against the bound.
  WriteBatch again;
  again.mutations.push_back(Put("u2", "22", {}, {"red"}, 6));
  auto r2 = s->Apply(again);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->view_overflows.empty());
  EXPECT_EQ(Get(*s, kByTeam, "red"), R"([{"key":"u2","value":22},{"key":"u3","value":33}])");
}

TEST(ViewCodecTest, ValuesComeBackByteForByte) {
  const std::string big = "123456789012345678901234567890";
  std::vector<ViewMember> in = {{"a\"\\\n\x01", R"({"x": [1, {"y": "}],\""}]})"},
                                {"b", big},
                                {"c", R"("s,]}")"},
                                {"d", "true"}};
  std::string text;
  EncodeViewValue(in, &text);
  auto out = DecodeViewValue(text);
  ASSERT_TRUE(out.has_value()) << text;
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ((*out)[i].key, in[i].key);
    EXPECT_EQ((*out)[i].value, in[i].value);
  }
}

TEST(ViewCodecTest, SurroundingWhitespaceOfAValueIsDropped) {
  std::string text;
  EncodeViewValue({{"k", " {\"a\": 1} \n"}}, &text);
  EXPECT_EQ(text, R"([{"key":"k","value":{"a": 1}}])");
}

TEST(ViewCodecTest, ForeignTextIsRefused) {
  for (const char* bad : {"", "[", "[{}]", R"([{"key":1,"value":2}])", R"([{"key":"a","value":1})",
                          R"([{"key":"a","value":{"b":1}])", "{}", R"([{"key":"a"}])"}) {
    EXPECT_FALSE(DecodeViewValue(bad).has_value()) << bad;
  }
  EXPECT_TRUE(DecodeViewValue("[]").has_value());
}

TEST(ViewCodecTest, ViewKeysRoundTripAndTruncationIsRefused) {
  std::string s;
  EncodeViewKeys("topic-key", {"a", "", "ccc"}, &s);
  auto d = DecodeViewKeys(s);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->topic_key, "topic-key");
  EXPECT_EQ(d->view_keys, (std::vector<std::string_view>{"a", "", "ccc"}));
  EXPECT_FALSE(DecodeViewKeys(std::string_view(s).substr(0, s.size() - 1)).has_value());
}

}  // namespace
}  // namespace cachecar::store
