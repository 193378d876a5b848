#include "rpc/errors.h"

#include <gtest/gtest.h>

#include "client/client.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace cachecar::rpc {
namespace {

TEST(ErrorsTest, OkMapsToOk) { EXPECT_TRUE(ToGrpcStatus(Status::Ok()).ok()); }

TEST(ErrorsTest, CarriesErrorInfoAndBadRequest) {
  Status st = InvalidArgument("the request is invalid", {{"key", "required"}, {"topic", "required"}});
  grpc::Status g = ToGrpcStatus(st);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(g.error_message().find("key: required"), std::string::npos);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(g.error_details()));
  EXPECT_EQ(details.code(), 3);
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "INVALID_ARGUMENT");
  EXPECT_EQ(info.domain(), "cachecar.dev");
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(0).field(), "key");
}

TEST(ErrorsTest, EveryRowOfTheTableKeepsCodeReasonAndMetadata) {
  const Status rows[] = {
      NotFound("t", "TOPIC_NOT_FOUND").With("topic", "x"),
      Unavailable("t", "CACHE_NOT_READY").With("topic", "x"),
      Unavailable("t", "SHUTTING_DOWN"),
      Internal("t"),
      Status(Code::kResourceExhausted, "t", "STORE_FULL"),
      Status(Code::kDataLoss, "t", "STORE_CORRUPT"),
  };
  for (const Status& row : rows) {
    Status back = client::FromGrpcStatus(ToGrpcStatus(row));
    EXPECT_EQ(back.code(), row.code()) << row.ToString();
    EXPECT_EQ(back.reason(), row.reason()) << row.ToString();
    EXPECT_EQ(back.metadata(), row.metadata()) << row.ToString();
  }
}

TEST(ErrorsTest, ClientToleratesMissingOrGarbageDetails) {
  Status a = client::FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_EQ(a.code(), Code::kUnavailable);
  EXPECT_EQ(a.reason(), "");
  Status b = client::FromGrpcStatus(grpc::Status(grpc::StatusCode::INTERNAL, "x", "\xff\xff garbage"));
  EXPECT_EQ(b.code(), Code::kInternal);
}

}  // namespace
}  // namespace cachecar::rpc
