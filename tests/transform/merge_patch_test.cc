#include "transform/merge_patch.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace cachecar::transform {
namespace {

// RFC 7396 Appendix A: every example, target + patch -> result.
TEST(MergePatchTest, TheRfcsExamples) {
  struct Case {
    const char* target;
    const char* patch;
    const char* result;
  };
  const Case cases[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Case& c : cases) {
    auto got = MergePatch(std::string_view(c.target), c.patch);
    ASSERT_TRUE(got.has_value()) << c.target << " + " << c.patch;
    EXPECT_EQ(nlohmann::json::parse(*got), nlohmann::json::parse(c.result))
        << c.target << " + " << c.patch;
  }
  // {"a":"foo"} + null: the result is null, the key is deleted.
  EXPECT_FALSE(MergePatch(std::string_view(R"({"a":"foo"})"), "null").has_value());
}

TEST(MergePatchTest, OntoNoValueAPatchIsItsOwnResultLessItsNulls) {
  EXPECT_EQ(*MergePatch(std::nullopt, R"({"b":1,"a":{"x":2}})"), R"({"b":1,"a":{"x":2}})");
  EXPECT_EQ(nlohmann::json::parse(*MergePatch(std::nullopt, R"({"a":1,"b":null,"c":{"d":null}})")),
            nlohmann::json::parse(R"({"a":1,"c":{}})"));
  EXPECT_EQ(*MergePatch(std::nullopt, "[1]"), "[1]");
  EXPECT_FALSE(MergePatch(std::nullopt, "null").has_value());
  // A stored value that is not JSON counts as none.
  EXPECT_EQ(*MergePatch(std::string_view("{oops"), R"({"a":1})"), R"({"a":1})");
}

TEST(MergePatchTest, MembersKeepTheirOrder) {
  EXPECT_EQ(*MergePatch(std::string_view(R"({"z":1,"a":2})"), R"({"m":3,"z":4})"),
            R"({"z":4,"a":2,"m":3})");
}

}  // namespace
}  // namespace cachecar::transform
