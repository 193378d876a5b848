#include "rpc/write_handler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace cachecar::rpc {
namespace {

using ::testing::HasSubstr;
using Clock = WriteHandler::Clock;

// Records what would be produced; answers each record at offset = its index, or holds
// the answer back (`hold`), or fails it (`fail`).
class FakeSink : public kafka::RecordSink {
 public:
  void Produce(kafka::ProduceRequest r, Callback done) override {
    sent.push_back(std::move(r));
    if (hold) {
      held.push_back(std::move(done));
      return;
    }
    kafka::Delivery d;
    d.status = fail;
    if (fail.ok()) {
      d.partition = 0;
      d.offset = static_cast<int64_t>(sent.size() - 1);
    }
    done(d);
  }
  std::vector<kafka::ProduceRequest> sent;
  std::vector<Callback> held;
  bool hold = false;
  Status fail;
};

// A Put of a valid record to the writable topic "items".
v1::PutRequest ValidItemPut() {
  v1::PutRequest req;
  req.set_topic("items");
  req.set_key("k");
  req.set_value(R"({"id":1})");
  return req;
}

struct Answer {
  testing::Notification done;
  Status status;
  WriteResult result;
  WriteHandler::Done Callback() {
    return [this](const Status& st, const WriteResult& r) {
      status = st;
      result = r;
      done.Notify();
    };
  }
};

class WriteHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.path() + "/item.json")
        << R"({"type":"object","required":["id"],"properties":{"id":{"type":"integer"},
              "tags":{"type":"array","items":{"type":"string"}}}})";
    config_.topics.resize(3);
    config_.topics[0].name = "items";
    config_.topics[0].read_only = false;
    config_.topics[0].max_value_bytes = 64;
    config_.topics[0].schema_path = dir_.path() + "/item.json";
    config_.topics[1].name = "ro";
    config_.topics[2].name = "plain";
    config_.topics[2].read_only = false;
    schemas_ = std::move(schema::SchemaSet::Load({{"items", config_.topics[0].schema_path},
                                                  {"ro", ""}, {"plain", ""}},
                                                 &registry_))
                   .value();
    handler_ = std::make_unique<WriteHandler>(&config_, schemas_.get(), &sink_, &notifier_, 16);
  }

  Status Put(const std::string& topic, const std::string& key, const std::string& value) {
    v1::PutRequest req;
    req.set_topic(topic);
    req.set_key(key);
    req.set_value(value);
    req.set_ack_only(true);
    Answer a;
    handler_->Put(req, Clock::now() + std::chrono::seconds(10), a.Callback());
    EXPECT_TRUE(a.done.WaitFor());
    return a.status;
  }

  std::string Violation(const Status& st, const std::string& field) {
    for (const auto& v : st.violations()) {
      if (v.field == field) return v.reason + ": " + v.description;
    }
    return "";
  }

  testing::TempDir dir_;
  prometheus::Registry registry_;
  config::Config config_;
  std::unique_ptr<schema::SchemaSet> schemas_;
  FakeSink sink_;
  store::ApplyNotifier notifier_{0};
  std::unique_ptr<WriteHandler> handler_;
};

TEST_F(WriteHandlerTest, MalformedAndHostileRequestsProduceNothing) {
  Status st = Put("", "", "{}");
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_EQ(Violation(st, "topic"), ": required");
  EXPECT_EQ(Violation(st, "key"), ": required");
  EXPECT_EQ(Put(std::string(10000, 'x'), "k", "{}").reason(), "TOPIC_NOT_FOUND");
  EXPECT_EQ(Put("ro", "k", "{}").reason(), "TOPIC_READ_ONLY");
  EXPECT_EQ(Put("ro", "k", "{}").code(), Code::kPermissionDenied);
  EXPECT_THAT(Violation(Put("items", std::string("\xff", 1), R"({"id":1})"), "key"),
              HasSubstr("UTF-8"));
  EXPECT_THAT(Violation(Put("items", std::string(17, 'k'), R"({"id":1})"), "key"),
              HasSubstr("at most 16"));
  EXPECT_EQ(Put("items", "k", R"({"id":1,"tags":[")" + std::string(100, 'a') + "\"]}").reason(),
            "VALUE_TOO_LARGE");
  EXPECT_EQ(Put("items", "k", "{nope").reason(), "INVALID_JSON");
  EXPECT_EQ(Put("items", "k", std::string(60, '[')).reason(), "INVALID_JSON");
  EXPECT_EQ(Put("plain", "k", "not json").reason(), "INVALID_JSON");
  EXPECT_TRUE(sink_.sent.empty());
}

TEST_F(WriteHandlerTest, EverySchemaViolationIsListedWithPointerAndKeyword) {
  Status st = Put("items", "k", R"({"tags":[1,"b",true]})");
  EXPECT_EQ(st.reason(), "SCHEMA_VIOLATION");
  ASSERT_EQ(st.violations().size(), 3u);
  EXPECT_THAT(Violation(st, "value"), HasSubstr("required: "));
  EXPECT_THAT(Violation(st, "value/tags/0"), HasSubstr("type: "));
  EXPECT_THAT(Violation(st, "value/tags/2"), HasSubstr("type: "));
  EXPECT_TRUE(sink_.sent.empty());
}

TEST_F(WriteHandlerTest, ValidPutAndDeleteAreProduced) {
  EXPECT_TRUE(Put("items", "k", R"({"id":1})").ok());
  v1::DeleteRequest del;
  del.set_topic("items");
  del.set_key("k");
  del.set_ack_only(true);
  Answer a;
  handler_->Delete(del, Clock::now() + std::chrono::seconds(10), a.Callback());
  ASSERT_TRUE(a.done.WaitFor());
  EXPECT_TRUE(a.status.ok()) << a.status.ToString();
  ASSERT_EQ(sink_.sent.size(), 2u);
  EXPECT_EQ(sink_.sent[0].value, R"({"id":1})");
  EXPECT_FALSE(sink_.sent[1].value.has_value());  // a tombstone
  EXPECT_EQ(a.result.offset, 1);
  EXPECT_FALSE(a.result.applied);
}

TEST_F(WriteHandlerTest, WaitsForApplyAndReportsTheRevision) {
  v1::PutRequest req = ValidItemPut();
  Answer a;
  handler_->Put(req, Clock::now() + std::chrono::minutes(5), a.Callback());
  EXPECT_FALSE(a.done.WaitFor(std::chrono::milliseconds(20)));  // produced, not applied
  notifier_.Published(42, {{{0, 0}, 1}});
  ASSERT_TRUE(a.done.WaitFor());
  EXPECT_TRUE(a.status.ok());
  EXPECT_TRUE(a.result.applied);
  EXPECT_EQ(a.result.revision, 42u);
}

// A caller that is gone (cancelled, disconnected) stops waiting at once, before the
// broker's ack and after it; its callback is never called.
TEST_F(WriteHandlerTest, AbandonedPutStopsWaitingAtOnce) {
  v1::PutRequest req = ValidItemPut();
  sink_.hold = true;
  Answer before_ack;
  WriteHandler::Abandon abandon =
      handler_->Put(req, Clock::now() + std::chrono::minutes(5), before_ack.Callback());
  EXPECT_EQ(notifier_.pending(), 1u);  // the deadline timer
  abandon();
  EXPECT_EQ(notifier_.pending(), 0u);
  kafka::Delivery d;
  d.partition = 0;
  d.offset = 0;
  sink_.held[0](d);  // the ack arrives after the caller left: nothing waits for it
  EXPECT_EQ(notifier_.pending(), 0u);

  sink_.hold = false;
  Answer after_ack;
  abandon = handler_->Put(req, Clock::now() + std::chrono::minutes(5), after_ack.Callback());
  EXPECT_EQ(notifier_.pending(), 1u);  // the wait for the apply
  abandon();
  EXPECT_EQ(notifier_.pending(), 0u);
  notifier_.Published(42, {{{0, 0}, 5}});
  EXPECT_FALSE(before_ack.done.WaitFor(std::chrono::milliseconds(50)));
  EXPECT_FALSE(after_ack.done.HasBeenNotified());
}

// Past the notifier's cap a Put is refused before anything is produced.
TEST_F(WriteHandlerTest, PutPastTheWaitingCapProducesNothing) {
  store::ApplyNotifier capped(0, nullptr, /*max_pending=*/1);
  WriteHandler handler(&config_, schemas_.get(), &sink_, &capped, 16);
  capped.WaitForRevision(100, Clock::now() + std::chrono::minutes(5), [](const Status&, uint64_t) {});
  v1::PutRequest req = ValidItemPut();
  Answer a;
  handler.Put(req, Clock::now() + std::chrono::minutes(5), a.Callback());
  ASSERT_TRUE(a.done.WaitFor());
  EXPECT_EQ(a.status.code(), Code::kResourceExhausted);
  EXPECT_EQ(a.status.reason(), "TOO_MANY_WAITING_CALLS");
  EXPECT_TRUE(sink_.sent.empty());
  capped.Shutdown();
}

TEST_F(WriteHandlerTest, DeadlineIsAnsweredBeforeAndAfterTheAck) {
  v1::PutRequest req = ValidItemPut();
  // Applied never comes: NOT_YET_APPLIED, with where it was written.
  Answer applied;
  handler_->Put(req, Clock::now() + std::chrono::milliseconds(30), applied.Callback());
  ASSERT_TRUE(applied.done.WaitFor());
  EXPECT_EQ(applied.status.reason(), "NOT_YET_APPLIED");
  EXPECT_EQ(applied.status.metadata().at("offset"), "0");
  // The broker never answers: KAFKA_TIMEOUT; its late answer is ignored.
  sink_.hold = true;
  Answer acked;
  handler_->Put(req, Clock::now() + std::chrono::milliseconds(30), acked.Callback());
  ASSERT_TRUE(acked.done.WaitFor());
  EXPECT_EQ(acked.status.reason(), "KAFKA_TIMEOUT");
  kafka::Delivery late;
  late.partition = 0;
  late.offset = 1;
  sink_.held.at(0)(late);  // must not answer twice (Notification would not tell; status would)
  EXPECT_EQ(acked.status.reason(), "KAFKA_TIMEOUT");
  // A deadline already past produces nothing.
  size_t before = sink_.sent.size();
  Answer past;
  handler_->Put(req, Clock::now() - std::chrono::seconds(1), past.Callback());
  ASSERT_TRUE(past.done.WaitFor());
  EXPECT_EQ(past.status.code(), Code::kDeadlineExceeded);
  EXPECT_EQ(sink_.sent.size(), before);
}

TEST_F(WriteHandlerTest, KafkaFailureCarriesTheBrokersReason) {
  sink_.fail = Status(Code::kUnavailable, "producing to items failed: Broker: Not enough replicas",
                      "KAFKA_UNAVAILABLE");
  Status st = Put("items", "k", R"({"id":1})");
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("Not enough replicas"));
}

TEST_F(WriteHandlerTest, FailingStoreRefusesWritesThatWaitButNotAckOnlyOnes) {
  notifier_.SetStoreFailure(Status(Code::kResourceExhausted,
                                   "lmdb commit: No space left on device", "DISK_FULL"));
  v1::PutRequest req = ValidItemPut();
  Answer a;
  handler_->Put(req, Clock::now() + std::chrono::seconds(10), a.Callback());
  ASSERT_TRUE(a.done.WaitFor());
  EXPECT_EQ(a.status.code(), Code::kResourceExhausted);
  EXPECT_EQ(a.status.reason(), "DISK_FULL");
  EXPECT_TRUE(sink_.sent.empty());  // nothing produced
  EXPECT_TRUE(Put("items", "k", R"({"id":1})").ok());  // ack_only needs no local store
  EXPECT_EQ(sink_.sent.size(), 1u);
  notifier_.SetStoreFailure(Status::Ok());
  Answer b;
  handler_->Put(req, Clock::now() + std::chrono::minutes(5), b.Callback());
  EXPECT_EQ(sink_.sent.size(), 2u);  // produced again once commits succeed
  notifier_.Published(7, {{{0, 0}, 2}});
  ASSERT_TRUE(b.done.WaitFor());
  EXPECT_TRUE(b.status.ok()) << b.status.ToString();
}

TEST_F(WriteHandlerTest, ApplyLatencyIsObservedPerTopic) {
  prometheus::Registry registry;
  WriteHandler handler(&config_, schemas_.get(), &sink_, &notifier_, 16, &registry);
  v1::PutRequest req = ValidItemPut();
  Answer a;
  handler.Put(req, Clock::now() + std::chrono::minutes(5), a.Callback());
  notifier_.Published(1, {{{0, 0}, 1}});
  ASSERT_TRUE(a.done.WaitFor());
  uint64_t observed = 0;
  for (const auto& f : registry.Collect()) {
    if (f.name != "cachecar_write_apply_duration_seconds") continue;
    for (const auto& m : f.metric) {
      if (m.label.size() == 1 && m.label[0].value == "items") {
        observed = m.histogram.sample_count;
      }
    }
  }
  EXPECT_EQ(observed, 1u);
}

// The sample count of cachecar_write_stage_duration_seconds{topic, stage}, or -1 if the
// series does not exist.
int64_t StageSamples(prometheus::Registry& registry, const std::string& topic,
                     const std::string& stage) {
  for (const auto& f : registry.Collect()) {
    if (f.name != "cachecar_write_stage_duration_seconds") continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["topic"] == topic && labels["stage"] == stage) {
        return static_cast<int64_t>(m.histogram.sample_count);
      }
    }
  }
  return -1;
}

TEST_F(WriteHandlerTest, EachStageOfAWriteIsObservedWhenItEnds) {
  prometheus::Registry registry;
  WriteHandler handler(&config_, schemas_.get(), &sink_, &notifier_, 16, &registry);
  // Every stage of every writable topic exists from the start, at 0.
  for (const char* stage : {"check", "ack", "apply"}) {
    EXPECT_EQ(StageSamples(registry, "items", stage), 0) << stage;
    EXPECT_EQ(StageSamples(registry, "plain", stage), 0) << stage;
    EXPECT_EQ(StageSamples(registry, "ro", stage), -1) << stage;
  }
  sink_.hold = true;
  v1::PutRequest req = ValidItemPut();
  Answer a;
  handler.Put(req, Clock::now() + std::chrono::minutes(5), a.Callback());
  EXPECT_EQ(StageSamples(registry, "items", "check"), 1);
  EXPECT_EQ(StageSamples(registry, "items", "ack"), 0);  // the broker has not answered
  kafka::Delivery d;
  d.partition = 0;
  d.offset = 0;
  sink_.held[0](d);
  EXPECT_EQ(StageSamples(registry, "items", "ack"), 1);
  EXPECT_EQ(StageSamples(registry, "items", "apply"), 0);  // not applied yet
  notifier_.Published(1, {{{0, 0}, 1}});
  ASSERT_TRUE(a.done.WaitFor());
  EXPECT_EQ(StageSamples(registry, "items", "apply"), 1);

  // An ack_only write has no apply stage; a refused one no stage at all.
  req.set_ack_only(true);
  Answer b;
  handler.Put(req, Clock::now() + std::chrono::minutes(5), b.Callback());
  sink_.held[1](d);
  ASSERT_TRUE(b.done.WaitFor());
  req.set_value("not json");
  Answer c;
  handler.Put(req, Clock::now() + std::chrono::minutes(5), c.Callback());
  ASSERT_TRUE(c.done.WaitFor());
  EXPECT_EQ(c.status.code(), Code::kInvalidArgument);
  EXPECT_EQ(StageSamples(registry, "items", "check"), 2);
  EXPECT_EQ(StageSamples(registry, "items", "ack"), 2);
  EXPECT_EQ(StageSamples(registry, "items", "apply"), 1);
}

}  // namespace
}  // namespace cachecar::rpc
