#include "api/page_token.h"

#include <gtest/gtest.h>

namespace cachecar::api {
namespace {

TEST(PageTokenTest, RoundTripsAndIsBound) {
  std::string t = EncodePageToken("users", "pre", std::string("\0cursor\xff", 8));
  auto c = DecodePageToken(t, "users", "pre");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, std::string("\0cursor\xff", 8));
  EXPECT_FALSE(DecodePageToken(t, "sessions", "pre").ok());
  EXPECT_FALSE(DecodePageToken(t, "users", "pr").ok());
  EXPECT_FALSE(DecodePageToken("", "users", "pre").ok());
}

}  // namespace
}  // namespace cachecar::api
