#include "common/utf8.h"

#include <gtest/gtest.h>

namespace cachecar {
namespace {

TEST(Utf8Test, AcceptsWellFormed) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("user-1"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9t\xc3\xa9"));          // été
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));           // emoji
}

TEST(Utf8Test, RejectsMalformed) {
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));                      // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                  // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));              // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));          // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8(std::string("ok\xfe", 3)));
}

}  // namespace
}  // namespace cachecar
