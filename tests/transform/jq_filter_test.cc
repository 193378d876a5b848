#include "transform/jq_filter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace cachecar::transform {
namespace {

Result RunOn(const JqFilter& f, const std::string& value) {
  Input in;
  in.key = "k";
  in.value = value;
  return f.Run(in, 1 << 20);
}

// Filters that only pick fields run without the interpreter (jq.rs Projection); the same
// filter behind `. |` always goes through jaq. Both must give the same value, or both
// fail, on every input.
TEST(JqFilterTest, ProjectionsGiveWhatTheInterpreterGives) {
  const std::vector<std::string> filters = {
      "{id, email}",
      R"({id, name: .profile.name, "the city": .profile.address.city, zip: .a.b.c.d})",
      "{ a : .x , b: .y.z }",
      R"({"k": .k})",
  };
  const std::vector<std::string> inputs = {
      R"({"id":1,"email":"a@x","other":[1,2]})",
      R"({"id":"u","profile":{"name":"N","address":{"city":"Oslo"}},"a":{"b":null}})",
      R"({"profile":null,"a":{"b":{"c":{"d":[1,{"e":2.50}]}}}})",
      R"({"profile":{"address":"not an object"}})",
      R"({"x":{"nested":true},"y":{"z":"\u00e9\n"},"k":1.5e300})",
      R"({"x":null,"y":null})",
      "null",
      R"("a string")",
      "[1,2,3]",
      "42",
      R"(  {  "id" : 7 , "email" : null }  )",
      R"({"a":{"b":[]},"y":7})",
      R"({"\u0069d":3})",
  };
  for (const std::string& code : filters) {
    auto fast = JqFilter::Compile(code);
    auto slow = JqFilter::Compile(". | " + code);
    ASSERT_TRUE(fast.ok() && slow.ok()) << code;
    ASSERT_TRUE((*fast)->is_projection()) << code;
    ASSERT_FALSE((*slow)->is_projection()) << code;
    for (const std::string& value : inputs) {
      Result a = RunOn(**fast, value);
      Result b = RunOn(**slow, value);
      ASSERT_EQ(a.outcome, b.outcome) << code << " on " << value << ": " << a.text << " / " << b.text;
      if (a.outcome == Outcome::kValue) {
        EXPECT_EQ(nlohmann::json::parse(a.text), nlohmann::json::parse(b.text))
            << code << " on " << value;
      }
    }
  }
}

TEST(JqFilterTest, ProjectionsAgreeOnRandomDocuments) {
  auto fast = JqFilter::Compile("{a, b: .c.d, e: .c, f: .g.h.i}");
  auto slow = JqFilter::Compile(". | {a, b: .c.d, e: .c, f: .g.h.i}");
  ASSERT_TRUE(fast.ok() && slow.ok());
  ASSERT_TRUE((*fast)->is_projection());
  std::mt19937 rnd(3);
  auto leaf = [&]() -> nlohmann::json {
    switch (rnd() % 6) {
      case 0: return nullptr;
      case 1: return static_cast<int>(rnd() % 100);
      case 2: return "s" + std::to_string(rnd() % 10);
      case 3: return nlohmann::json::array({1, "x"});
      case 4: return true;
      default: return 0.5;
    }
  };
  for (int n = 0; n < 2000; ++n) {
    nlohmann::json doc = nlohmann::json::object();
    for (const char* k : {"a", "c", "g"}) {
      if (rnd() % 4 == 0) continue;  // missing
      if (rnd() % 2 == 0) {
        doc[k] = leaf();
      } else {
        nlohmann::json inner = nlohmann::json::object();
        for (const char* k2 : {"d", "h"}) {
          if (rnd() % 3 == 0) continue;
          inner[k2] = rnd() % 2 ? leaf() : nlohmann::json{{"i", leaf()}};
        }
        doc[k] = inner;
      }
    }
    const std::string value = doc.dump();
    Result a = RunOn(**fast, value);
    Result b = RunOn(**slow, value);
    ASSERT_EQ(a.outcome, b.outcome) << value << ": " << a.text << " / " << b.text;
    if (a.outcome == Outcome::kValue) {
      ASSERT_EQ(nlohmann::json::parse(a.text), nlohmann::json::parse(b.text)) << value;
    }
  }
}

TEST(JqFilterTest, OnlyPlainProjectionsTakeTheShortPath) {
  // Each of these is more than a projection; all must still be right (through jaq).
  struct Case {
    const char* code;
    const char* value;
    const char* result;
  };
  const Case cases[] = {
      {"{a, a: .b}", R"({"a":1,"b":2})", R"({"a":2})"},
      {R"({"a\u0062": .x})", R"({"x":1})", R"({"ab":1})"},
      {"{a: .b[0]}", R"({"b":[5]})", R"({"a":5})"},
      {"{a: .b?}", R"({"b":3})", R"({"a":3})"},
      {"{(.k): .v}", R"({"k":"name","v":1})", R"({"name":1})"},
      {"{a: .b} | .a", R"({"b":4})", "4"},
      {"{a: .b} + {c: 1}", R"({"b":4})", R"({"a":4,"c":1})"},
      {"{if: .x}", R"({"x":1})", nullptr},  // whatever jaq says; only that it runs
  };
  for (const Case& c : cases) {
    auto f = JqFilter::Compile(c.code);
    if (!f.ok()) continue;  // not jq either way
    EXPECT_FALSE((*f)->is_projection()) << c.code;
    Result r = RunOn(**f, c.value);
    if (c.result != nullptr) {
      ASSERT_EQ(r.outcome, Outcome::kValue) << c.code << ": " << r.text;
      EXPECT_EQ(nlohmann::json::parse(r.text), nlohmann::json::parse(c.result)) << c.code;
    }
  }
}

}  // namespace
}  // namespace cachecar::transform
