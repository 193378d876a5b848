#include "kafka/materializer.h"

#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <set>

#include "kafka/fake_source.h"
#include "store/apply_notifier.h"
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

  // The options every test starts from: topics "users" (JSON) and "raw" (bytes), short
  // delays, no offset commits.
  static MaterializerOptions Options(uint32_t batch_records = 1000) {
    MaterializerOptions o;
    o.commit_interval = std::chrono::milliseconds(0);
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
    return o;
  }

  std::unique_ptr<Materializer> Make(uint32_t batch_records = 1000,
                                     store::ApplyNotifier* notifier = nullptr,
                                     std::chrono::milliseconds commit_interval =
                                         std::chrono::milliseconds(0)) {
    MaterializerOptions o = Options(batch_records);
    if (notifier != nullptr) o.observers = {notifier};
    o.commit_interval = commit_interval;
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
      std::map<std::string, std::string> labels;
      for (const auto& l : metric.label) labels[l.name] = l.value;
      if (labels["topic"] == "users" && labels["reason"] == "invalid_json") {
        EXPECT_EQ(metric.counter.value, 1);
        found = true;
      }
    }
  }
  EXPECT_TRUE(found);
}

// An alert on a labelled counter needs its series before the first event (else
// `rate(...) > 0` has nothing to compare until something went wrong once): every series
// whose labels are known at start exists at 0 from the start.
TEST_F(MaterializerTest, LabelledSeriesExistAtZeroFromTheStart) {
  MaterializerOptions o = Options();
  o.topics[0].on_invalid = config::InvalidPolicy::kDeadLetter;
  o.topics[0].dead_letter_topic = "users-dlq";
  Materializer m(o, store_.get(), &source_, tracker_.get(), &registry_);
  std::map<std::string, std::set<std::map<std::string, std::string>>> series;
  for (const auto& f : registry_.Collect()) {
    for (const auto& metric : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : metric.label) labels[l.name] = l.value;
      series[f.name].insert(labels);
    }
  }
  using L = std::map<std::string, std::string>;
  for (const char* topic : {"users", "raw"}) {
    for (const char* reason : {"missing_key", "empty_key", "invalid_utf8_key", "invalid_json",
                               "schema_violation", "schema_budget_exceeded"}) {
      EXPECT_TRUE(series["cachecar_materializer_records_rejected_total"].count(
          L{{"topic", topic}, {"reason", reason}}))
          << topic << " " << reason;
    }
    for (const char* reason : {"offset_out_of_range", "topic_deleted"}) {
      EXPECT_TRUE(series["cachecar_materializer_topic_rebuilds_total"].count(
          L{{"topic", topic}, {"reason", reason}}))
          << topic << " " << reason;
    }
  }
  for (const char* result : {"ok", "failed"}) {
    EXPECT_TRUE(series["cachecar_materializer_dead_letters_total"].count(
        L{{"topic", "users"}, {"result", result}}))
        << result;
    EXPECT_FALSE(series["cachecar_materializer_dead_letters_total"].count(
        L{{"topic", "raw"}, {"result", result}}))
        << "raw has no dead-letter topic";
  }
  for (const char* reason : {"KAFKA_UNAVAILABLE", "KAFKA_TOPIC_NOT_FOUND", "KAFKA_ERROR"}) {
    EXPECT_TRUE(series["cachecar_kafka_consumer_errors_total"].count(L{{"reason", reason}}))
        << reason;
  }
  for (const char* reason : {"DISK_FULL", "STORE_FULL", "STORE_RESIZE_WAITING"}) {
    EXPECT_TRUE(series["cachecar_store_write_failing"].count(L{{"reason", reason}})) << reason;
  }
}

// Lag in time: 0 for a partition that has applied everything; for one behind its end,
// the age of the last record it applied (the records after it are younger, so the data
// served is at most that old).
TEST_F(MaterializerTest, LagInSecondsIsTheAgeOfTheLastAppliedRecordWhileBehind) {
  source_.ReportCachedEnds(true);
  source_.SetPartitions(0, 2, {5, 1});  // partition 0 ends at 5 but only 0..1 arrive
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "a", "{}");
  source_.PushRecord(0, 0, 1, "b", "{}");  // timestamp 1000 ms after the epoch
  source_.PushRecord(0, 1, 0, "c", "{}");
  auto m = Make();
  m->Start();
  auto value = [&](const std::string& partition) -> std::optional<double> {
    for (const auto& f : registry_.Collect()) {
      if (f.name != "cachecar_partition_lag_seconds") continue;
      for (const auto& metric : f.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& l : metric.label) labels[l.name] = l.value;
        if (labels["topic"] == "users" && labels["partition"] == partition) {
          return metric.gauge.value;
        }
      }
    }
    return std::nullopt;
  };
  const double age = static_cast<double>(std::time(nullptr)) - 1.0;
  EXPECT_TRUE(testing::WaitUntil([&] { return value("0").value_or(0) > 0; }));
  m->Stop();
  EXPECT_NEAR(*value("0"), age, 60);
  EXPECT_EQ(value("1"), 0.0);
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
  // The reason names the cause, not "catching up" (/readyz, WaitReady, GetStatus).
  EXPECT_TRUE(testing::WaitUntil([&] {
    return tracker_->NotReadyReason() == "topic raw does not exist in Kafka (yet)";
  })) << tracker_->NotReadyReason();
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

TEST_F(MaterializerTest, EveryCommitsDurationAndItsBatchsDelayAreObserved) {
  source_.SetPartitions(0, 1, {25});
  source_.SetPartitions(1, 1, {0});
  source_.PushEnd(1, 0, 0);
  for (int i = 0; i < 25; ++i) source_.PushRecord(0, 0, i, "k" + std::to_string(i), "1");
  auto m = Make(/*batch_records=*/10);
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  double commits = 0;
  uint64_t durations = 0, delays = 0;
  for (const auto& f : registry_.Collect()) {
    if (f.name == "cachecar_store_commits_total") commits = f.metric[0].counter.value;
    if (f.name == "cachecar_store_commit_duration_seconds") {
      durations = f.metric[0].histogram.sample_count;
    }
    if (f.name == "cachecar_materializer_batch_delay_seconds") {
      delays = f.metric[0].histogram.sample_count;
    }
  }
  EXPECT_GE(commits, 3);
  EXPECT_EQ(durations, static_cast<uint64_t>(commits));
  // Only commits that carried records have a batch delay: 25 records in batches of 10.
  EXPECT_GE(delays, 3u);
  EXPECT_LE(delays, static_cast<uint64_t>(commits));
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

TEST_F(MaterializerTest, PositionOutOfTheLogRebuildsTheTopicFromTheBeginning) {
  source_.SetPartitions(0, 1, {2});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "stale", "{\"v\":1}");
  source_.PushRecord(0, 0, 1, "kept", "{\"v\":1}");
  source_.PushEnd(1, 0, 0);
  store::ApplyNotifier notifier(0);
  auto m = Make(1000, &notifier);
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  int assigns = source_.assigns();
  testing::Notification not_ready, ready_again;
  std::mutex reasons_mu;
  std::vector<std::string> reasons;  // as each not-ready change was told
  tracker_->AddListener([&](std::optional<size_t> topic, bool ready) {
    if (topic == 0u && !ready) {
      // Read here, on the thread that made the change and before it goes on (re-assigning
      // replaces the reason with "catching up" at once: read later, it was a race).
      std::string reason = tracker_->NotReadyReason();
      std::lock_guard<std::mutex> lock(reasons_mu);
      reasons.push_back(std::move(reason));
      not_ready.Notify();
    }
    if (topic == 0u && ready && not_ready.HasBeenNotified()) ready_again.Notify();
  });
  // Retention removed records the sidecar had not read: "stale" was deleted by one of
  // them; the log now starts at 5 with one record.
  source_.SetPartitions(0, 1, {6});
  source_.PushOutOfRange(0, 0);
  ASSERT_TRUE(not_ready.WaitFor());
  EXPECT_TRUE(testing::WaitUntil([&] {
    std::lock_guard<std::mutex> lock(reasons_mu);
    for (const auto& r : reasons) {
      if (r.find("offset_out_of_range") != std::string::npos) return true;
    }
    return false;
  })) << "the rebuild's reason was never the not-ready reason";
  ASSERT_TRUE(source_.WaitAssigns(assigns + 1));  // re-assigned from the beginning
  bool from_beginning = false;
  for (const auto& a : source_.assignment()) {
    if (a.topic == 0) from_beginning = a.offset == kOffsetBeginning;
  }
  EXPECT_TRUE(from_beginning);
  source_.PushRecord(0, 0, 5, "kept", "{\"v\":2}");
  ASSERT_TRUE(ready_again.WaitFor());
  m->Stop();
  EXPECT_FALSE(Value(0, "stale").has_value());
  EXPECT_EQ(Value(0, "kept"), "{\"v\":2}");
  EXPECT_EQ(Value(1, "x"), std::nullopt);
  EXPECT_EQ(*store_->LoadPositions(0), (std::map<int32_t, int64_t>{{0, 6}}));
}

TEST_F(MaterializerTest, DeletedTopicIsEmptiedAndWaitsToBeCreatedAgain) {
  source_.SetPartitions(0, 1, {1});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "gone", "{\"v\":1}");
  source_.PushEnd(1, 0, 0);
  auto m = Make();
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  testing::Notification not_ready;
  tracker_->AddListener([&](std::optional<size_t> topic, bool ready) {
    if (topic == 0u && !ready) not_ready.Notify();
  });
  source_.RemoveTopic(0);
  // As librdkafka reports it: a client-level error naming no topic index.
  source_.PushError(99, NotFound("kafka: users [0]: topic does not exist",
                                 "KAFKA_TOPIC_NOT_FOUND"));
  ASSERT_TRUE(not_ready.WaitFor());
  EXPECT_NE(tracker_->NotReadyReason().find("topic_deleted"), std::string::npos);
  // Emptied, so nothing stale is served.
  ASSERT_TRUE(testing::WaitUntil([&] { return *store_->KeyCount(0) == 0; }));
  source_.SetPartitions(0, 1, {1});  // created again, with one record
  source_.PushRecord(0, 0, 0, "new", "{\"v\":2}");
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m->Stop();
  EXPECT_EQ(Value(0, "new"), "{\"v\":2}");
  EXPECT_FALSE(Value(0, "gone").has_value());
}

TEST_F(MaterializerTest, ABrokerThatDoesNotAnswerIsNotTakenForADeletedTopic) {
  source_.SetPartitions(0, 1, {1});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "k", "{\"v\":1}");
  source_.PushEnd(1, 0, 0);
  auto m = Make();
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  // The topic exists: an unknown-topic error from a confused broker changes nothing.
  source_.PushError(0, NotFound("transient", "KAFKA_TOPIC_NOT_FOUND"));
  source_.PushRecord(0, 0, 1, "after", "{\"v\":2}");
  ASSERT_TRUE(testing::WaitUntil([&] { return Value(0, "after").has_value(); }));
  m->Stop();
  EXPECT_EQ(Value(0, "k"), "{\"v\":1}");
  EXPECT_TRUE(tracker_->Ready());
}

TEST_F(MaterializerTest, AppliedPositionsAreCommittedToKafkaOnlyOnceDurable) {
  source_.SetPartitions(0, 2, {1, 0});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "k", "{\"v\":1}");
  source_.PushEnd(0, 1, 0);
  source_.PushEnd(1, 0, 0);
  auto m = Make(1000, nullptr, std::chrono::milliseconds(1));
  m->Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  ASSERT_TRUE(testing::WaitUntil([&] {
    for (const auto& c : source_.commits()) {
      for (const auto& a : c) {
        if (a.topic == 0 && a.partition == 0 && a.offset == 1) return true;
      }
    }
    return false;
  }));
  m->Stop();
  for (const auto& c : source_.commits()) {
    for (const auto& a : c) {
      auto stored = store_->LoadPositions(a.topic);
      ASSERT_TRUE(stored->count(a.partition));
      EXPECT_LE(a.offset, stored->at(a.partition));  // never ahead of the store
    }
  }
}

}  // namespace
}  // namespace cachecar::kafka

namespace cachecar::kafka {
namespace {

// Records what it is told, and what the tracker already knew at that moment.
class RecordingObserver : public store::CommitObserver {
 public:
  RecordingObserver(std::string name, std::vector<std::string>* log,
                    const health::CatchUpTracker* tracker)
      : name_(std::move(name)), log_(log), tracker_(tracker) {}
  void OnCommit(const store::CommitInfo& c) override {
    if (c.changes == 0) return;  // the positions found at start
    bool tracker_knew = false;
    for (const auto& t : tracker_->Progress()) {
      for (const auto& p : t.partitions) tracker_knew = tracker_knew || p.applied > 0;
    }
    std::lock_guard<std::mutex> lock(mu_);
    log_->push_back(name_ + ":commit r" + std::to_string(c.revision) +
                    (tracker_knew ? " after tracker" : " before tracker"));
  }
  void OnPartitionHalted(size_t, int32_t, const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    log_->push_back(name_ + (reason.empty() ? ":resumed" : ":halted"));
  }

  static std::mutex mu_;

 private:
  std::string name_;
  std::vector<std::string>* log_;
  const health::CatchUpTracker* tracker_;
};
std::mutex RecordingObserver::mu_;

TEST_F(MaterializerTest, ObserversAreToldAfterTheTrackerInTheirOrder) {
  source_.SetPartitions(0, 1, {1});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "u1", "{\"v\":1}");
  source_.PushEnd(1, 0, 0);
  std::vector<std::string> log;
  RecordingObserver first("first", &log, tracker_.get());
  RecordingObserver second("second", &log, tracker_.get());
  MaterializerOptions o = Options();
  o.observers = {&first, &second};
  Materializer m(o, store_.get(), &source_, tracker_.get(), &registry_);
  m.Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  ASSERT_TRUE(testing::WaitUntil([&] {
    std::lock_guard<std::mutex> lock(RecordingObserver::mu_);
    return log.size() >= 2;
  }));
  m.Stop();
  std::lock_guard<std::mutex> lock(RecordingObserver::mu_);
  EXPECT_EQ(log, (std::vector<std::string>{"first:commit r1 after tracker",
                                           "second:commit r1 after tracker"}));
}

}  // namespace
}  // namespace cachecar::kafka

namespace cachecar::kafka {
namespace {

// `kafka-topics --alter --partitions`: the new partitions are found, read from their
// beginning, and counted in readiness (not ready until they have caught up too).
TEST_F(MaterializerTest, PartitionsAddedToATopicAreReadAndCountedInReadiness) {
  source_.SetPartitions(0, 1, {1});
  source_.SetPartitions(1, 1, {0});
  source_.PushRecord(0, 0, 0, "u1", "{\"v\":1}");
  source_.PushEnd(1, 0, 0);
  MaterializerOptions o = Options();
  o.metadata_refresh = std::chrono::milliseconds(20);
  Materializer m(o, store_.get(), &source_, tracker_.get(), &registry_);
  m.Start();
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  int assigns = source_.assigns();
  testing::Notification not_ready;
  tracker_->AddListener([&](std::optional<size_t> topic, bool ready) {
    if (!topic && !ready) not_ready.Notify();
  });

  source_.SetPartitions(0, 3, {1, 2, 0});  // two partitions added; one holds records
  ASSERT_TRUE(source_.WaitAssigns(assigns));
  std::map<int32_t, int64_t> assigned;
  for (const auto& a : source_.assignment()) {
    if (a.topic == 0) assigned[a.partition] = a.offset;
  }
  EXPECT_EQ(assigned, (std::map<int32_t, int64_t>{{0, 1}, {1, kOffsetBeginning},
                                                  {2, kOffsetBeginning}}));
  EXPECT_TRUE(not_ready.WaitFor());  // partition 1 has two records to read first
  source_.PushRecord(0, 1, 0, "u7", "{\"v\":7}");
  source_.PushRecord(0, 1, 1, "u8", "{\"v\":8}");
  source_.PushEnd(0, 2, 0);
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  m.Stop();
  EXPECT_EQ(Value(0, "u7"), "{\"v\":7}");
  EXPECT_EQ(Value(0, "u8"), "{\"v\":8}");
  EXPECT_EQ(tracker_->Progress()[0].partitions.size(), 3u);
  EXPECT_EQ(*store_->LoadPositions(0), (std::map<int32_t, int64_t>{{0, 1}, {1, 2}, {2, 0}}));
}

}  // namespace
}  // namespace cachecar::kafka

namespace cachecar::kafka {
namespace {

// A read transaction held open (a slow Watch snapshot) keeps the map from growing: the
// writer must say so (not ready, with the reason) instead of retrying in silence.
TEST_F(MaterializerTest, AWriterKeptFromGrowingTheMapByReadersSaysSo) {
  store::Options so;
  so.path = dir_.path() + "/small";
  so.topics = {"users", "raw"};
  so.map_size_bytes = 1 << 20;  // 1 MiB: the backlog below needs more
  store_ = std::move(store::Store::Open(so)).value();
  source_.SetPartitions(0, 1, {3000});
  source_.SetPartitions(1, 1, {0});
  source_.PushEnd(1, 0, 0);
  const std::string value = "{\"v\":\"" + std::string(1000, 'x') + "\"}";
  for (int i = 0; i < 3000; ++i) source_.PushRecord(0, 0, i, "k" + std::to_string(i), value);
  // e.g. a Watch snapshot being read slowly
  auto held = std::make_unique<store::Snapshot>(std::move(store_->NewSnapshot()).value());
  MaterializerOptions o = Options(/*batch_records=*/3000);
  o.resize_waits_before_failure = 1;
  Materializer m(o, store_.get(), &source_, tracker_.get(), &registry_);
  m.Start();
  ASSERT_TRUE(testing::WaitUntil([&] {
    return tracker_->NotReadyReason().find("cannot grow") != std::string::npos;
  })) << tracker_->NotReadyReason();
  held.reset();  // the snapshot ends
  ASSERT_TRUE(tracker_->WaitReady(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  m.Stop();
  EXPECT_EQ(*store_->KeyCount(0), 3000u);
}

}  // namespace
}  // namespace cachecar::kafka
