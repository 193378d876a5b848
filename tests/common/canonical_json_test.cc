#include "common/canonical_json.h"

#include <gtest/gtest.h>

#include <string>

namespace cachecar {
namespace {

TEST(CanonicalJsonTest, MembersSortedAndCompact) {
  EXPECT_EQ(CanonicalJson(R"({ "region" : "eu", "id": 1, "tags": [ 1, {"b":1,"a":2} ] })"),
            R"({"id":1,"region":"eu","tags":[1,{"a":2,"b":1}]})");
  EXPECT_EQ(CanonicalJson("\"\\u00e9\""), "\"\xc3\xa9\"");
  EXPECT_FALSE(CanonicalJson("{").has_value());
  EXPECT_FALSE(CanonicalJson("").has_value());
  EXPECT_FALSE(CanonicalJson("1 2").has_value());
}

TEST(CanonicalJsonTest, DeepNestingIsRefusedNotRecursedInto) {
  // A 1 MiB key of nested arrays (what a client may send as a key): an answer, not a
  // stack overflow on the thread that serves the call.
  const size_t depth = 512 * 1024;
  std::string deep = std::string(depth, '[') + std::string(depth, ']');
  EXPECT_FALSE(CanonicalJson(deep).has_value());
  std::string ok = std::string(kMaxCanonicalJsonDepth, '[') +
                   std::string(kMaxCanonicalJsonDepth, ']');
  EXPECT_EQ(CanonicalJson(ok), ok);
  std::string objects;
  for (size_t i = 0; i < depth / 8; ++i) objects += "{\"a\":";
  objects += "1" + std::string(depth / 8, '}');
  EXPECT_FALSE(CanonicalJson(objects).has_value());
}

}  // namespace
}  // namespace cachecar
