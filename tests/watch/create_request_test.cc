#include "watch/create_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cachecar::watch {
namespace {

using ::testing::HasSubstr;

class CreateRequestTest : public ::testing::Test {
 protected:
  CreateRequestTest() {
    config::TopicConfig users;
    users.name = "users";
    topics_.push_back(users);
    index_["users"] = 0;
    options_.max_key_bytes = 16;
    options_.max_watches_per_stream = 2;
    options_.max_watches = 3;
    ctx_.topics = &topics_;
    ctx_.topic_index = &index_;
    ctx_.options = &options_;
    ctx_.head = 10;
    ctx_.store_id = "store-a";
    ctx_.oldest = 5;
  }

  static v1::WatchCreateRequest Request(std::string key) {
    v1::WatchCreateRequest c;
    c.set_watch_id(7);
    c.set_topic("users");
    c.set_key(std::move(key));
    return c;
  }

  Refusal Refused(const v1::WatchCreateRequest& c) {
    auto r = CheckCreate(c, ctx_);
    EXPECT_TRUE(std::holds_alternative<Refusal>(r));
    return std::holds_alternative<Refusal>(r) ? std::get<Refusal>(r) : Refusal{};
  }

  std::vector<config::TopicConfig> topics_;
  std::unordered_map<std::string, size_t> index_;
  Options options_;
  CreateContext ctx_;
};

TEST_F(CreateRequestTest, AGoodRequestBecomesASpec) {
  v1::WatchCreateRequest c = Request("u1");
  c.set_prev_entry(true);
  c.set_resume_revision(6);
  auto r = CheckCreate(c, ctx_);
  ASSERT_TRUE(std::holds_alternative<WatchSpec>(r));
  const WatchSpec& s = std::get<WatchSpec>(r);
  EXPECT_EQ(s.id, 7);
  EXPECT_EQ(s.topic, 0u);
  EXPECT_EQ(s.key, "u1");
  EXPECT_TRUE(s.prev_entry);
  EXPECT_EQ(s.resume_revision, 6u);
}

TEST_F(CreateRequestTest, OriginalValuesAreAskedOfTopicsThatHaveThem) {
  v1::WatchCreateRequest c = Request("u1");
  c.set_original_value(true);
  auto r = CheckCreate(c, ctx_);  // users stores its values as they came
  ASSERT_TRUE(std::holds_alternative<WatchSpec>(r));
  EXPECT_TRUE(std::get<WatchSpec>(r).original_value);
  topics_[0].transform = "{id}";
  Refusal refused = Refused(c);
  EXPECT_EQ(refused.reason, v1::WatchCanceled::INVALID_REQUEST);
  EXPECT_THAT(refused.message, HasSubstr("original_value: topic users stores its values "
                                         "transformed"));
  topics_[0].transform.clear();
  topics_[0].value_format = config::ValueFormat::kRegistry;
  topics_[0].keep_original = false;
  EXPECT_THAT(Refused(c).message, HasSubstr("set keep_original: true"));
  topics_[0].keep_original = true;
  EXPECT_TRUE(std::holds_alternative<WatchSpec>(CheckCreate(c, ctx_)));
}

TEST_F(CreateRequestTest, EveryFieldProblemIsListedAtOnce) {
  v1::WatchCreateRequest c = Request("");
  c.set_snapshot(true);
  c.set_resume_revision(1);
  c.set_no_put(true);
  c.set_no_delete(true);
  Refusal r = Refused(c);
  EXPECT_EQ(r.reason, v1::WatchCanceled::INVALID_REQUEST);
  EXPECT_THAT(r.message, HasSubstr("key: required (or set prefix)"));
  EXPECT_THAT(r.message, HasSubstr("snapshot: cannot be combined with resume_revision"));
  EXPECT_THAT(r.message, HasSubstr("no_put: together with no_delete"));
  c = Request(std::string(17, 'p'));
  c.set_prefix(true);
  c.set_topic(std::string(1000, 't'));
  r = Refused(c);
  EXPECT_THAT(r.message, HasSubstr("the prefix is 17 bytes; at most 16"));
  EXPECT_THAT(r.message, HasSubstr("is not configured"));
  EXPECT_LT(r.message.size(), 400u);  // a hostile topic name is echoed only in part
}

TEST_F(CreateRequestTest, RefusalsComeInTheirDocumentedOrder) {
  ctx_.shutting_down = true;
  ctx_.id_in_use = true;
  EXPECT_EQ(Refused(Request("")).reason, v1::WatchCanceled::SHUTTING_DOWN);
  ctx_.shutting_down = false;
  EXPECT_EQ(Refused(Request("")).reason, v1::WatchCanceled::WATCH_ID_IN_USE);
  ctx_.id_in_use = false;
  ctx_.ready = false;
  EXPECT_EQ(Refused(Request("")).reason, v1::WatchCanceled::INVALID_REQUEST);
  EXPECT_EQ(Refused(Request("u1")).reason, v1::WatchCanceled::CACHE_NOT_READY);
  v1::WatchCreateRequest cold = Request("u1");
  cold.set_allow_cold_cache(true);
  cold.set_store_id("store-b");
  EXPECT_EQ(Refused(cold).reason, v1::WatchCanceled::STORE_CHANGED);
  cold.clear_store_id();
  cold.set_resume_revision(11);
  EXPECT_THAT(Refused(cold).message, HasSubstr("ahead of this store"));
  cold.set_resume_revision(3);
  Refusal compacted = Refused(cold);
  EXPECT_EQ(compacted.reason, v1::WatchCanceled::HISTORY_COMPACTED);
  EXPECT_EQ(compacted.compact_revision, 5u);
  cold.set_resume_revision(4);  // revision 5 onwards is held: complete
  EXPECT_TRUE(std::holds_alternative<WatchSpec>(CheckCreate(cold, ctx_)));
  ctx_.stream_watches = 2;
  EXPECT_THAT(Refused(cold).message, HasSubstr("watch.max_watches_per_stream"));
  ctx_.stream_watches = 0;
  ctx_.total_watches = 3;
  EXPECT_THAT(Refused(cold).message, HasSubstr("watch.max_watches)"));
}

}  // namespace
}  // namespace cachecar::watch
