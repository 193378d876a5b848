// The materializer with a schema: every on_invalid policy, against a scripted source and
// the real store, SchemaSet and ApplyNotifier.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kafka/fake_source.h"
#include "store/apply_notifier.h"
#include "kafka/materializer.h"
#include "test_util.h"

namespace cachecar::kafka {
namespace {

using ::testing::HasSubstr;

// Captures dead letters; answers with `fail` when set.
class FakeSink : public RecordSink {
 public:
  void Produce(ProduceRequest r, Callback done) override {
    Delivery d;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++attempts_;
      if (!fail.ok()) {
        d.status = fail;
      } else {
        d.partition = 0;
        d.offset = static_cast<int64_t>(sent.size());
        sent.push_back(std::move(r));
      }
    }
    done(d);
  }
  int attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }
  std::mutex mu_;
  Status fail;
  std::vector<ProduceRequest> sent;
  int attempts_ = 0;
};

std::string Header(const ProduceRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<none>";
}

class InvalidPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteSchema(R"({"type":"object","required":["id"],"properties":{"id":{"type":"integer"}}})");
    store::Options so;
    so.path = dir_.path() + "/store";
    so.topics = {"users"};
    so.map_size_bytes = 64 << 20;
    store_ = std::move(store::Store::Open(so)).value();
    tracker_ = std::make_unique<health::CatchUpTracker>(so.topics);
    notifier_ = std::make_unique<store::ApplyNotifier>(store_->revision());
    schemas_ = std::move(schema::SchemaSet::Load({{"users", schema_path_}}, &registry_)).value();
    source_.SetPartitions(0, 1, {3});
  }

  void WriteSchema(const std::string& text) {
    std::ofstream(schema_path_ + ".tmp") << text;
    std::filesystem::rename(schema_path_ + ".tmp", schema_path_);
  }

  std::unique_ptr<Materializer> Make(config::InvalidPolicy policy) {
    MaterializerOptions o;
    config::TopicConfig users;
    users.name = "users";
    users.on_invalid = policy;
    users.dead_letter_topic = "users.dlq";
    o.topics = {users};
    o.batch_max_delay = std::chrono::milliseconds(5);
    o.retry_backoff = std::chrono::milliseconds(10);
    o.idle_poll = std::chrono::milliseconds(5);
    o.dead_letter_timeout = std::chrono::seconds(5);
    o.schemas = schemas_.get();
    o.dead_letters = &sink_;
    o.rejected = &rejected_;
    o.observers = {notifier_.get()};
    return std::make_unique<Materializer>(o, store_.get(), &source_, tracker_.get(), &registry_);
  }

  std::optional<std::string> Value(const std::string& key) {
    auto e = store_->NewSnapshot()->Get(0, key);
    if (!e.ok() || !e->has_value()) return std::nullopt;
    return (*e)->value;
  }

  bool WaitReady() {
    return tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }

  // The backlog: a good record, one against the schema, another good one.
  void PushBacklog() {
    source_.PushRecord(0, 0, 0, "k", R"({"id":1})");
    source_.PushRecord(0, 0, 1, "k", R"({"id":"two","email":"secret@example.com"})");
    source_.PushRecord(0, 0, 2, "j", R"({"id":3})");
  }

  testing::TempDir dir_;
  std::string schema_path_ = dir_.path() + "/user.json";
  prometheus::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<health::CatchUpTracker> tracker_;
  std::unique_ptr<store::ApplyNotifier> notifier_;
  std::unique_ptr<schema::SchemaSet> schemas_;
  FakeSource source_;
  FakeSink sink_;
  RejectedLog rejected_{{10}};
};

TEST_F(InvalidPolicyTest, SkipKeepsThePreviousValueAndRemembersWhy) {
  PushBacklog();
  auto m = Make(config::InvalidPolicy::kSkip);
  m->Start();
  ASSERT_TRUE(WaitReady());
  m->Stop();
  EXPECT_EQ(Value("k"), R"({"id":1})");
  EXPECT_EQ(Value("j"), R"({"id":3})");
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 3);
  std::vector<RejectedRecord> r = rejected_.List(0);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].offset, 1);
  EXPECT_EQ(r[0].key, "k");
  EXPECT_EQ(r[0].reason, "schema_violation");
  EXPECT_EQ(r[0].action, "skipped");
  EXPECT_THAT(r[0].detail, HasSubstr("/id"));
  EXPECT_THAT(r[0].detail, ::testing::Not(HasSubstr("two")));  // values are not quoted
  EXPECT_TRUE(sink_.sent.empty());
}

TEST_F(InvalidPolicyTest, TombstonesAreDeletesAndNotValidated) {
  source_.PushRecord(0, 0, 0, "k", R"({"id":1})");
  source_.PushRecord(0, 0, 1, "k", std::nullopt);
  source_.PushRecord(0, 0, 2, "j", R"({"id":3})");
  auto m = Make(config::InvalidPolicy::kFail);
  m->Start();
  ASSERT_TRUE(WaitReady());
  m->Stop();
  EXPECT_FALSE(Value("k").has_value());
  EXPECT_TRUE(rejected_.List(0).empty());
}

TEST_F(InvalidPolicyTest, DeadLetterProducesTheRecordWithErrorHeaders) {
  PushBacklog();
  auto m = Make(config::InvalidPolicy::kDeadLetter);
  m->Start();
  ASSERT_TRUE(WaitReady());
  m->Stop();
  ASSERT_EQ(sink_.sent.size(), 1u);
  const ProduceRequest& dl = sink_.sent[0];
  EXPECT_EQ(dl.topic, "users.dlq");
  EXPECT_EQ(dl.key, "k");
  EXPECT_EQ(dl.value, R"({"id":"two","email":"secret@example.com"})");
  EXPECT_EQ(Header(dl, "cachecar.error.reason"), "schema_violation");
  EXPECT_THAT(Header(dl, "cachecar.error.detail"), HasSubstr("/id"));
  EXPECT_EQ(Header(dl, "cachecar.source.topic"), "users");
  EXPECT_EQ(Header(dl, "cachecar.source.partition"), "0");
  EXPECT_EQ(Header(dl, "cachecar.source.offset"), "1");
  EXPECT_EQ(Value("k"), R"({"id":1})");
  EXPECT_EQ(Value("j"), R"({"id":3})");
  EXPECT_EQ(rejected_.List(0).at(0).action, "dead-lettered");
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 3);
}

TEST_F(InvalidPolicyTest, DeadLetterThatFailsHaltsInsteadOfLosingTheRecord) {
  sink_.fail = Status(Code::kUnavailable, "broker down", "KAFKA_UNAVAILABLE");
  PushBacklog();
  auto m = Make(config::InvalidPolicy::kDeadLetter);
  m->Start();
  ASSERT_TRUE(source_.WaitDrained());
  m->Stop();
  EXPECT_FALSE(tracker_->Ready());
  EXPECT_THAT(tracker_->NotReadyReason(), AllOf(HasSubstr("offset 1"), HasSubstr("broker down")));
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 1);  // resumes at the record after a restart
  EXPECT_FALSE(Value("j").has_value());
}

// A dead letter the broker did not take halts the partition only until it does: the
// writer retries it with backoff and the partition goes on by itself, no restart needed.
TEST_F(InvalidPolicyTest, AFailedDeadLetterIsRetriedAndThePartitionGoesOnByItself) {
  {
    std::lock_guard<std::mutex> lock(sink_.mu_);
    sink_.fail = Status(Code::kUnavailable, "broker down", "KAFKA_UNAVAILABLE");
  }
  PushBacklog();
  auto m = Make(config::InvalidPolicy::kDeadLetter);
  m->Start();
  ASSERT_TRUE(source_.WaitDrained());
  ASSERT_TRUE(testing::WaitUntil([&] { return sink_.attempts() >= 2; }));  // retried
  EXPECT_FALSE(tracker_->Ready());
  EXPECT_THAT(tracker_->NotReadyReason(), AllOf(HasSubstr("offset 1"), HasSubstr("broker down")));
  int assigns = source_.assigns();
  {
    std::lock_guard<std::mutex> lock(sink_.mu_);
    sink_.fail = Status::Ok();  // the broker is back
  }
  ASSERT_TRUE(source_.WaitAssigns(assigns));
  EXPECT_EQ(source_.assignment().at(0).offset, 2);  // past the dead-lettered record
  EXPECT_TRUE(source_.paused().empty());
  source_.PushRecord(0, 0, 2, "j", R"({"id":3})");
  ASSERT_TRUE(WaitReady());
  m->Stop();
  EXPECT_EQ(Value("j"), R"({"id":3})");
  EXPECT_EQ(Value("k"), R"({"id":1})");
  std::lock_guard<std::mutex> lock(sink_.mu_);
  ASSERT_EQ(sink_.sent.size(), 1u);
  EXPECT_EQ(Header(sink_.sent[0], "cachecar.source.offset"), "1");
}

TEST_F(InvalidPolicyTest, FailHaltsThePartitionAndReportsNotReady) {
  PushBacklog();
  auto m = Make(config::InvalidPolicy::kFail);
  // A Put waiting on the halted partition fails fast rather than at its deadline.
  testing::Notification waited;
  Status wait_status;
  notifier_->WaitForOffset(0, 0, 2, std::chrono::steady_clock::now() + std::chrono::minutes(5),
                           [&](const Status& st, uint64_t) {
                             wait_status = st;
                             waited.Notify();
                           });
  m->Start();
  ASSERT_TRUE(waited.WaitFor());
  EXPECT_EQ(wait_status.reason(), "PARTITION_HALTED");
  ASSERT_TRUE(source_.WaitDrained());
  EXPECT_FALSE(tracker_->Ready());
  EXPECT_THAT(tracker_->NotReadyReason(),
              AllOf(HasSubstr("topic users partition 0 halted at offset 1"),
                    HasSubstr("schema_violation"), HasSubstr("/id")));
  EXPECT_EQ(source_.paused(), (std::set<std::pair<size_t, int32_t>>{{0, 0}}));
  EXPECT_EQ(rejected_.List(0).at(0).action, "halted");
  m->Stop();
  EXPECT_EQ(Value("k"), R"({"id":1})");
  EXPECT_FALSE(Value("j").has_value());  // nothing after the bad record is applied
  EXPECT_EQ(store_->LoadPositions(0)->at(0), 1);
}

TEST_F(InvalidPolicyTest, HaltedPartitionResumesWhenTheSchemaIsReplaced) {
  PushBacklog();
  auto m = Make(config::InvalidPolicy::kFail);
  m->Start();
  ASSERT_TRUE(source_.WaitDrained());
  int assigns = source_.assigns();
  ASSERT_FALSE(tracker_->Ready());
  // The schema is fixed (ConfigMap update): ids may be strings too.
  WriteSchema(R"({"type":"object","required":["id"],"properties":{"id":{"type":["integer","string"]}}})");
  ASSERT_EQ(schemas_->Reload().replaced, 1);
  ASSERT_TRUE(source_.WaitAssigns(assigns));
  EXPECT_EQ(source_.assignment().at(0).offset, 1);  // refetched from the halted record
  EXPECT_TRUE(source_.paused().empty());
  source_.PushRecord(0, 0, 1, "k", R"({"id":"two"})");
  source_.PushRecord(0, 0, 2, "j", R"({"id":3})");
  ASSERT_TRUE(WaitReady());
  m->Stop();
  EXPECT_EQ(Value("k"), R"({"id":"two"})");
  EXPECT_EQ(Value("j"), R"({"id":3})");
}

// A Put checked its value against the schema in force when it was made; if the schema
// changed before the record came back, the materializer refuses it. The Put must hear
// that, not "applied" while the cache keeps the old value.
TEST_F(InvalidPolicyTest, AWaiterForARecordRefusedOnApplyHearsItWasRefused) {
  source_.PushRecord(0, 0, 0, "k", R"({"id":1})");
  source_.PushRecord(0, 0, 1, "k", R"({"id":"two"})");
  auto m = Make(config::InvalidPolicy::kSkip);
  testing::Notification answered, late_answered;
  Status status, late;
  notifier_->WaitForOffset(0, 0, 1, std::chrono::steady_clock::now() + std::chrono::minutes(5),
                           [&](const Status& st, uint64_t) {
                             status = st;
                             answered.Notify();
                           });
  m->Start();
  ASSERT_TRUE(answered.WaitFor());
  EXPECT_EQ(status.code(), Code::kFailedPrecondition) << status.ToString();
  EXPECT_EQ(status.reason(), "REJECTED_ON_APPLY");
  EXPECT_THAT(status.message(), HasSubstr("schema_violation"));
  // Asked after the fact (the producer's ack can come after the record was read back).
  notifier_->WaitForOffset(0, 0, 1, std::chrono::steady_clock::now() + std::chrono::minutes(5),
                           [&](const Status& st, uint64_t) {
                             late = st;
                             late_answered.Notify();
                           });
  ASSERT_TRUE(late_answered.WaitFor());
  EXPECT_EQ(late.reason(), "REJECTED_ON_APPLY");
  m->Stop();
  EXPECT_EQ(Value("k"), R"({"id":1})");
}

TEST_F(InvalidPolicyTest, CommitsAreAnnouncedToWaiters) {
  source_.PushRecord(0, 0, 0, "k", R"({"id":1})");
  auto m = Make(config::InvalidPolicy::kSkip);
  testing::Notification applied;
  uint64_t revision = 0;
  notifier_->WaitForOffset(0, 0, 0, std::chrono::steady_clock::now() + std::chrono::minutes(5),
                           [&](const Status& st, uint64_t r) {
                             EXPECT_TRUE(st.ok()) << st.ToString();
                             revision = r;
                             applied.Notify();
                           });
  m->Start();
  ASSERT_TRUE(applied.WaitFor());
  EXPECT_EQ(Value("k"), R"({"id":1})");  // readable by the time the waiter hears of it
  EXPECT_GE(revision, 1u);
  m->Stop();
}

}  // namespace
}  // namespace cachecar::kafka
