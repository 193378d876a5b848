#include "kafka/record_check.h"

#include <gtest/gtest.h>

#include "schema/json_schema.h"

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

// One notion of JSON: a record that is JSON on a schemaless json topic stays JSON when the
// topic gets a schema, even `{}`, so records already cached never fail on their next read.
TEST(RecordCheckTest, JsonMeansTheSameWithAndWithoutASchema) {
  auto t = Topic(config::KeyEncoding::kUtf8, config::ValueFormat::kJson);
  auto any = schema::JsonSchema::Compile("{}", {});
  ASSERT_TRUE(any.ok());
  std::string deep128 = std::string(128, '[') + std::string(128, ']');
  std::string deep50 = std::string(50, '[') + std::string(50, ']');
  for (const std::string& value :
       {deep128, deep50, std::string("\xEF\xBB\xBF{}"), std::string(R"({"a":1,"a":2})"),
        std::string(R"({"a":1})"), std::string("18446744073709551617"), std::string("1e-400")}) {
    EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, value),
              CheckRecord(t, any->get(), true, "k", true, value))
        << value.substr(0, 40);
  }
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, deep128), RejectReason::kInvalidJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, R"({"a":1,"a":2})"),
            RejectReason::kInvalidJson);
  EXPECT_EQ(CheckRecord(t, nullptr, true, "k", true, deep50), RejectReason::kNone);
}

TEST(RecordCheckTest, AnUndecidedRecordIsItsOwnReason) {
  auto t = Topic(config::KeyEncoding::kUtf8, config::ValueFormat::kJson);
  schema::CompileOptions options;
  options.backtracking_patterns = true;
  auto s = schema::JsonSchema::Compile(R"j({"pattern":"(?=.*[0-9])"})j", options);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string value = "\"" + std::string(10000, 'a') + "\"";
  EXPECT_EQ(CheckRecord(t, s->get(), true, "k", true, value), RejectReason::kSchemaBudgetExceeded);
  EXPECT_STREQ(RejectReasonName(RejectReason::kSchemaBudgetExceeded), "schema_budget_exceeded");
  std::string why = DescribeReject(RejectReason::kSchemaBudgetExceeded, s->get(), value);
  EXPECT_NE(why.find("budget"), std::string::npos) << why;
  EXPECT_EQ(why.find("aaaa"), std::string::npos) << "quotes the record: " << why;
}

}  // namespace
}  // namespace cachecar::kafka
