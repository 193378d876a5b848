#include "common/status.h"

#include <gtest/gtest.h>

namespace cachecar {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, CodesMatchGrpcNumbering) {
  EXPECT_EQ(static_cast<int>(Code::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(Code::kNotFound), 5);
  EXPECT_EQ(static_cast<int>(Code::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(Code::kUnauthenticated), 16);
}

TEST(StatusTest, ToStringListsEveryViolation) {
  Status s = InvalidArgument("bad", {{"a", "x"}, {"b", "y"}});
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: bad; a: x; b: y");
  EXPECT_EQ(s.reason(), "INVALID_ARGUMENT");
}

TEST(StatusTest, MetadataIsKept) {
  Status s = NotFound("no", "TOPIC_NOT_FOUND").With("topic", "t");
  EXPECT_EQ(s.metadata().at("topic"), "t");
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<int> good = 5;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 5);
  Result<int> bad = Internal("boom");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace cachecar
