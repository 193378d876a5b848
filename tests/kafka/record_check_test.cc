#include "kafka/record_check.h"

#include <gtest/gtest.h>

namespace cachecar::kafka {
namespace {

config::TopicConfig Topic(config::KeyEncoding k, config::ValueFormat v) {
  config::TopicConfig t;
  t.name = "t";
  t.key_encoding = k;
  t.value_format = v;
  return t;
}

TEST(RecordCheckTest, AcceptsValidRecords) {
  auto t = Topic(config::KeyEncoding::kUtf8, config::ValueFormat::kJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, "{\"a\":1}"), RejectReason::kNone);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, "42"), RejectReason::kNone);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", false, ""), RejectReason::kNone);  // tombstone
}

TEST(RecordCheckTest, RejectsMissingAndEmptyKeys) {
  auto t = Topic(config::KeyEncoding::kBytes, config::ValueFormat::kBytes);
  EXPECT_EQ(CheckRecord(t, nullptr, false, "", true, "v"), RejectReason::kMissingKey);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "", true, "v"), RejectReason::kEmptyKey);
}

TEST(RecordCheckTest, Utf8TopicsRejectOtherKeysBytesTopicsDoNot) {
  std::string bad("\xff\xfe", 2);
  EXPECT_EQ(CheckRecord(Topic(config::KeyEncoding::kUtf8, config::ValueFormat::kBytes), nullptr, true, bad,
                        true, "v"),
            RejectReason::kInvalidUtf8Key);
  EXPECT_EQ(CheckRecord(Topic(config::KeyEncoding::kBytes, config::ValueFormat::kBytes), nullptr, true,
                        bad, true, "v"),
            RejectReason::kNone);
}

TEST(RecordCheckTest, JsonTopicsRejectInvalidJson) {
  auto t = Topic(config::KeyEncoding::kUtf8, config::ValueFormat::kJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, "not json"), RejectReason::kInvalidJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, "{\"a\":"), RejectReason::kInvalidJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, ""), RejectReason::kInvalidJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, "{\"a\":\"\xff\"}"), RejectReason::kInvalidJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, std::string(100000, '[')), RejectReason::kInvalidJson);
  auto bytes = Topic(config::KeyEncoding::kUtf8, config::ValueFormat::kBytes);
  EXPECT_EQ(CheckRecord(bytes, nullptr, true, "k", true, "not json"), RejectReason::kNone);
}

}  // namespace
}  // namespace cachecar::kafka
