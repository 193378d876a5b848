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

// Any client's default metadata limit (8 KiB in gRPC core, grpcio and grpc-js) must hold a
// refusal, whatever the value quoted and however many violations: the message and details
// are bounded, and what is left out is counted.
TEST(ErrorsTest, ErrorsFitEveryClientsMetadataLimit) {
  std::vector<FieldViolation> many;
  for (int i = 0; i < 200; ++i) {
    many.push_back({"value/" + std::string(3000, 'k') + std::to_string(i),
                    std::string(5000, 'd'), "enum"});
  }
  Status st = Status(Code::kInvalidArgument, "the value breaks the schema of topic t",
                     "SCHEMA_VIOLATION", many)
                  .With("topic", std::string(5000, 't'));
  grpc::Status g = ToGrpcStatus(st);
  EXPECT_LE(g.error_message().size(), kMaxErrorMessageBytes);
  EXPECT_LE(g.error_details().size(), kMaxErrorDetailsBytes);
  EXPECT_NE(g.error_message().find("the value breaks the schema"), std::string::npos);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(g.error_details()));
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad));
  ASSERT_GE(bad.field_violations_size(), 2);
  // The last entry says how many were left out.
  const auto& last = bad.field_violations(bad.field_violations_size() - 1);
  EXPECT_NE(last.description().find("more"), std::string::npos) << last.description();
}

// The client shows each violation once: the short message plus the violations.
TEST(ErrorsTest, ClientToStringListsEachViolationOnce) {
  Status st = InvalidArgument("the request is invalid", {{"key", "required-x"}});
  std::string text = client::FromGrpcStatus(ToGrpcStatus(st)).ToString();
  EXPECT_EQ(text.find("required-x"), text.rfind("required-x")) << text;
  EXPECT_NE(text.find("required-x"), std::string::npos) << text;
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
