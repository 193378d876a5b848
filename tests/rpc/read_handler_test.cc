#include "rpc/read_handler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"

namespace cachecar::rpc {
namespace {

using ::testing::HasSubstr;

class ReadHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.topics.resize(2);
    config_.topics[0].name = "users";
    config_.topics[1].name = "blobs";
    config_.topics[1].key_encoding = config::KeyEncoding::kBytes;
    store::Options so;
    so.path = dir_.path();
    so.topics = {"users", "blobs"};
    so.map_size_bytes = 64 << 20;
    store_ = std::move(store::Store::Open(so)).value();
    tracker_ = std::make_unique<health::CatchUpTracker>(so.topics);
    ReadLimits limits;
    limits.max_key_bytes = 1024;
    limits.max_batch_keys = 10;
    limits.max_page_size = 50;
    handler_ = std::make_unique<ReadHandler>(&config_, store_.get(), tracker_.get(), nullptr,
                                             limits);
  }

  void MakeReady() {
    health::PartitionProgress p;
    p.applied = 0;
    tracker_->SetAssigned(0, {p});
    tracker_->SetAssigned(1, {p});
  }

  void Put(size_t topic, const std::string& key, const std::string& value,
           int64_t timestamp_ms = 0) {
    store::WriteBatch b;
    store::Mutation m;
    m.topic = topic;
    m.key = key;
    m.value = value;
    m.timestamp_ms = timestamp_ms;
    b.mutations.push_back(m);
    ASSERT_TRUE(store_->Apply(b).ok());
  }

  std::string Violation(const Status& st, const std::string& field) {
    for (const auto& v : st.violations()) {
      if (v.field == field) return v.description;
    }
    return "";
  }

  testing::TempDir dir_;
  config::Config config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  std::unique_ptr<ReadHandler> handler_;
};

TEST_F(ReadHandlerTest, KafkaTimestampIsConvertedOrLeftUnsetWhenAbsent) {
  MakeReady();
  Put(0, "stamped", "1", 1700000000123);
  Put(0, "unstamped", "2", -1);  // Kafka's "no timestamp"
  v1::GetRequest req;
  req.set_topic("users");
  req.set_key("stamped");
  v1::GetResponse resp;
  ASSERT_TRUE(handler_->Get(req, &resp).ok());
  ASSERT_TRUE(resp.entry().has_kafka_timestamp());
  EXPECT_EQ(resp.entry().kafka_timestamp().seconds(), 1700000000);
  EXPECT_EQ(resp.entry().kafka_timestamp().nanos(), 123000000);
  req.set_key("unstamped");
  resp.Clear();
  ASSERT_TRUE(handler_->Get(req, &resp).ok());
  ASSERT_TRUE(resp.found());
  EXPECT_FALSE(resp.entry().has_kafka_timestamp());
}

TEST_F(ReadHandlerTest, GetReturnsEntryOrMiss) {
  MakeReady();
  Put(0, "u1", "{\"a\":1}");
  v1::GetRequest req;
  req.set_topic("users");
  req.set_key("u1");
  v1::GetResponse resp;
  ASSERT_TRUE(handler_->Get(req, &resp).ok());
  EXPECT_TRUE(resp.found());
  EXPECT_EQ(resp.entry().value(), "{\"a\":1}");
  EXPECT_EQ(resp.entry().key(), "u1");
  EXPECT_EQ(resp.store_revision(), 1u);
  req.set_key("nobody");
  resp.Clear();
  ASSERT_TRUE(handler_->Get(req, &resp).ok());
  EXPECT_FALSE(resp.found());
  EXPECT_FALSE(resp.has_entry());
}

TEST_F(ReadHandlerTest, UnknownTopicIsNotFoundWithReason) {
  MakeReady();
  v1::GetRequest req;
  req.set_topic("nope");
  req.set_key("k");
  v1::GetResponse resp;
  Status st = handler_->Get(req, &resp);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.reason(), "TOPIC_NOT_FOUND");
  EXPECT_EQ(st.metadata().at("topic"), "nope");
}

TEST_F(ReadHandlerTest, HostileTopicNameIsNotEchoedWhole) {
  MakeReady();
  v1::GetRequest req;
  req.set_topic(std::string(100000, 'x'));
  req.set_key("k");
  v1::GetResponse resp;
  Status st = handler_->Get(req, &resp);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_LT(st.message().size(), 400u);
}

TEST_F(ReadHandlerTest, ReadBeforeReadyIsUnavailableUnlessColdIsAllowed) {
  Put(0, "u1", "{}");
  v1::GetRequest req;
  req.set_topic("users");
  req.set_key("u1");
  v1::GetResponse resp;
  Status st = handler_->Get(req, &resp);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_EQ(st.reason(), "CACHE_NOT_READY");
  req.set_allow_cold_cache(true);
  ASSERT_TRUE(handler_->Get(req, &resp).ok());
  EXPECT_TRUE(resp.found());
}

TEST_F(ReadHandlerTest, MissingFieldsAreAllListed) {
  v1::GetRequest req;
  v1::GetResponse resp;
  Status st = handler_->Get(req, &resp);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_EQ(Violation(st, "topic"), "required");
  EXPECT_EQ(Violation(st, "key"), "required");
}

TEST_F(ReadHandlerTest, KeysAreCheckedForSizeAndEncoding) {
  MakeReady();
  v1::GetRequest req;
  v1::GetResponse resp;
  req.set_topic("users");
  req.set_key(std::string("\xc3\x28", 2));
  Status st = handler_->Get(req, &resp);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_THAT(Violation(st, "key"), HasSubstr("UTF-8"));
  req.set_key(std::string(2000, 'k'));
  st = handler_->Get(req, &resp);
  EXPECT_THAT(Violation(st, "key"), HasSubstr("at most 1024"));
  req.set_topic("blobs");  // bytes keys: any bytes are fine
  req.set_key(std::string("\xc3\x28", 2));
  EXPECT_TRUE(handler_->Get(req, &resp).ok());
}

TEST_F(ReadHandlerTest, BatchGetAnswersInRequestOrderFromOneSnapshot) {
  MakeReady();
  Put(0, "a", "1");
  Put(0, "c", "3");
  v1::BatchGetRequest req;
  req.set_topic("users");
  for (const char* k : {"c", "b", "a", "c"}) req.add_keys(k);
  v1::BatchGetResponse resp;
  ASSERT_TRUE(handler_->BatchGet(req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 4);
  EXPECT_EQ(resp.results(0).key(), "c");
  EXPECT_EQ(resp.results(0).entry().value(), "3");
  EXPECT_FALSE(resp.results(1).found());
  EXPECT_EQ(resp.results(2).entry().value(), "1");
  EXPECT_TRUE(resp.results(3).found());
  EXPECT_EQ(resp.store_revision(), 2u);
}

TEST_F(ReadHandlerTest, BatchGetLimitsAndBadKeys) {
  MakeReady();
  v1::BatchGetRequest req;
  req.set_topic("users");
  v1::BatchGetResponse resp;
  EXPECT_THAT(Violation(handler_->BatchGet(req, &resp), "keys"), HasSubstr("at least one"));
  for (int i = 0; i < 11; ++i) req.add_keys("k");
  EXPECT_THAT(Violation(handler_->BatchGet(req, &resp), "keys"), HasSubstr("at most 10"));
  req.clear_keys();
  req.add_keys("ok");
  req.add_keys("");
  req.add_keys(std::string("\xff", 1));
  Status st = handler_->BatchGet(req, &resp);
  EXPECT_EQ(Violation(st, "keys[1]"), "required");
  EXPECT_THAT(Violation(st, "keys[2]"), HasSubstr("UTF-8"));
  EXPECT_EQ(Violation(st, "keys[0]"), "");
}

TEST_F(ReadHandlerTest, ListPagesWithTokensAndCoercesPageSize) {
  MakeReady();
  for (int i = 0; i < 120; ++i) {
    char k[16];
    std::snprintf(k, sizeof(k), "p:%03d", i);
    Put(0, k, "v");
  }
  Put(0, "q", "v");
  v1::ListRequest req;
  req.set_topic("users");
  req.set_prefix("p:");
  req.set_page_size(1000);  // above the max of 50: coerced
  std::vector<std::string> keys;
  int pages = 0;
  do {
    v1::ListResponse resp;
    Status st = handler_->List(req, &resp);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_LE(resp.entries_size(), 50);
    for (const auto& e : resp.entries()) keys.push_back(e.key());
    req.set_page_token(resp.next_page_token());
    ++pages;
  } while (!req.page_token().empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(keys.size(), 120u);
  EXPECT_EQ(keys.front(), "p:000");
  EXPECT_EQ(keys.back(), "p:119");
}

TEST_F(ReadHandlerTest, ListRejectsBadPageSizeAndForeignOrForgedTokens) {
  MakeReady();
  Put(0, "a1", "v");
  Put(0, "a2", "v");
  v1::ListRequest req;
  req.set_topic("users");
  req.set_page_size(-1);
  v1::ListResponse resp;
  EXPECT_THAT(Violation(handler_->List(req, &resp), "page_size"), HasSubstr("negative"));

  req.set_page_size(1);
  req.set_prefix("a");
  ASSERT_TRUE(handler_->List(req, &resp).ok());
  std::string token = resp.next_page_token();
  ASSERT_FALSE(token.empty());
  req.set_prefix("b");  // a token from another prefix
  req.set_page_token(token);
  EXPECT_THAT(Violation(handler_->List(req, &resp), "page_token"), HasSubstr("another"));
  req.set_prefix("a");
  req.set_page_token("!!!not base64!!!");
  EXPECT_THAT(Violation(handler_->List(req, &resp), "page_token"), HasSubstr("not a page token"));
  req.set_page_token(token.substr(0, 4));
  EXPECT_EQ(handler_->List(req, &resp).code(), Code::kInvalidArgument);
}

TEST_F(ReadHandlerTest, StatusReportsTopicsAndPartitions) {
  health::PartitionProgress p;
  p.partition = 0;
  p.applied = 3;
  p.start_end_offset = 5;
  p.end_offset = 9;
  tracker_->SetAssigned(0, {p});
  Put(0, "k", "v");
  v1::GetStatusResponse resp;
  ASSERT_TRUE(handler_->GetStatus(v1::GetStatusRequest(), &resp).ok());
  EXPECT_FALSE(resp.ready());
  EXPECT_EQ(resp.store_id(), store_->store_id());
  ASSERT_EQ(resp.topics_size(), 2);
  EXPECT_EQ(resp.topics(0).topic(), "users");
  EXPECT_EQ(resp.topics(0).key_count(), 1u);
  ASSERT_EQ(resp.topics(0).partitions_size(), 1);
  EXPECT_EQ(resp.topics(0).partitions(0).applied_offset(), 3);
  EXPECT_EQ(resp.topics(0).partitions(0).lag(), 6);
  EXPECT_FALSE(resp.topics(0).partitions(0).ready());
  EXPECT_EQ(resp.topics(1).partitions_size(), 0);
}

}  // namespace
}  // namespace cachecar::rpc
