#include "transform/sandbox.h"

#include "schema/json_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cachecar::transform {
namespace {

using ::testing::HasSubstr;

SandboxOptions TestOptions() {
  SandboxOptions o;  // worker_path: this test binary (tests/worker_main.cc)
  o.record_budget = std::chrono::milliseconds(300);
  o.max_memory_bytes = 512ull << 20;
  return o;
}

std::unique_ptr<Sandbox> MustStart(std::vector<std::string> filters,
                                   SandboxOptions o = TestOptions()) {
  auto s = Sandbox::Start(std::move(filters), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

Input Rec(std::string_view value, uint32_t filter = 0) {
  Input in;
  in.filter = filter;
  in.key = "user-1";
  in.value = value;
  in.partition = 3;
  in.offset = 42;
  in.timestamp_ms = 1700000000000;
  in.headers_json = R"({"trace":"abc","empty":null})";
  return in;
}

Result RunOne(Sandbox& s, std::string_view value, size_t max_output = 1 << 20) {
  auto r = s.Run({Rec(value)}, max_output);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() && r->size() == 1 ? (*r)[0] : Result{};
}

TEST(SandboxTest, ProjectionKeepsOnlyTheNamedFields) {
  auto s = MustStart({"{id, name}"});
  Result r = RunOne(*s, R"({"id":7,"name":"Ada","password":"x","extra":[1,2]})");
  EXPECT_EQ(r.outcome, Outcome::kValue);
  EXPECT_EQ(r.text, R"({"id":7,"name":"Ada"})");
}

TEST(SandboxTest, RenamesAFieldAndAddsDerivedOnesFromTheRecord) {
  auto s = MustStart({R"jq(del(.id) + {user_id: .id, full: "\(.first) \(.last)",
                        key: $key, partition: $partition, offset: $offset,
                        ts: $timestamp, trace: $headers.trace, none: $headers.empty})jq"});
  Result r = RunOne(*s, R"({"id":7,"first":"Ada","last":"Lovelace"})");
  ASSERT_EQ(r.outcome, Outcome::kValue) << r.text;
  EXPECT_EQ(nlohmann::json::parse(r.text),
            nlohmann::json::parse(
                R"({"first":"Ada","last":"Lovelace","user_id":7,"full":"Ada Lovelace",)"
                R"("key":"user-1","partition":3,"offset":42,"ts":1700000000000,"trace":"abc",)"
                R"("none":null})"));
}

TEST(SandboxTest, SelectDropsRecordsAndNullDeletes) {
  auto s = MustStart({"select(.active)", "if .deleted then null else . end"});
  auto r = s->Run({Rec(R"({"active":false})", 0), Rec(R"({"active":true})", 0),
                   Rec(R"({"deleted":true})", 1), Rec(R"({"deleted":false})", 1)},
                  1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, Outcome::kSkip);
  EXPECT_EQ((*r)[1].outcome, Outcome::kValue);
  EXPECT_EQ((*r)[2].outcome, Outcome::kDelete);
  EXPECT_EQ((*r)[3].outcome, Outcome::kValue);
  EXPECT_EQ((*r)[3].text, R"({"deleted":false})");
}

TEST(SandboxTest, ErrorsManyValuesAndNotJsonAreTheirOwnOutcomes) {
  auto s = MustStart({R"jq(if .bad then error("bad record \(.id)") else .x + 1 end)jq", ".[]"});
  auto r = s->Run({Rec(R"({"bad":true,"id":9})"), Rec(R"({"x":"text"})"), Rec("not json"),
                   Rec("[1,2]", 1), Rec("[1]", 1)},
                  1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, Outcome::kError);
  EXPECT_THAT((*r)[0].text, HasSubstr("bad record 9"));
  EXPECT_EQ((*r)[1].outcome, Outcome::kError);  // string + number
  EXPECT_EQ((*r)[2].outcome, Outcome::kNotJson);
  EXPECT_EQ((*r)[3].outcome, Outcome::kManyValues);
  EXPECT_EQ((*r)[4].outcome, Outcome::kValue);
  EXPECT_EQ((*r)[4].text, "1");
}

TEST(SandboxTest, ValuesJsonCannotHoldAreErrorsNotStoredText) {
  std::string deep;
  for (int i = 0; i < 101; ++i) deep += "[";
  deep += "1";
  for (int i = 0; i < 101; ++i) deep += "]";
  auto s = MustStart({"nan", "[infinite]", "{(1): 2}", R"("\u00ff" | tobytes)",
                      "[[[.]]]", deep + " | .[0]"});
  auto r = s->Run({Rec("{}", 0), Rec("{}", 1), Rec("{}", 2), Rec("{}", 3), Rec("{}", 4),
                   Rec("{}", 5)},
                  1 << 20);
  ASSERT_TRUE(r.ok());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ((*r)[i].outcome, Outcome::kError) << i << ": " << (*r)[i].text;
    EXPECT_THAT((*r)[i].text, HasSubstr("not JSON")) << i;
  }
  EXPECT_EQ((*r)[4].text, "[[[{}]]]");
  // 101 levels of nesting are not JSON to cachecar's parser; 100 are.
  EXPECT_EQ((*r)[5].outcome, Outcome::kValue) << (*r)[5].text;
  EXPECT_TRUE(schema::IsJson((*r)[5].text).ok());
  auto too_deep = MustStart({deep});
  EXPECT_EQ(RunOne(*too_deep, "{}").outcome, Outcome::kError);
}

TEST(SandboxTest, OutputOverTheLimitIsRefusedWithoutBuildingIt) {
  auto s = MustStart({"[range(1000000)]"});
  Result r = RunOne(*s, "{}", 1000);
  EXPECT_EQ(r.outcome, Outcome::kTooLarge);
}

TEST(SandboxTest, AFilterThatNeverEndsCostsItsRecordOnlyAndTheWorkerIsReplaced) {
  prometheus::Registry registry;
  SandboxOptions o = TestOptions();
  o.registry = &registry;
  auto s = MustStart({"if .loop then last(repeat(.)) else .n end"}, o);
  std::vector<Input> batch;
  std::vector<std::string> values;
  for (int i = 0; i < 50; ++i) values.push_back(R"({"n":)" + std::to_string(i) + "}");
  values[20] = R"({"loop":true})";
  for (const auto& v : values) batch.push_back(Rec(v));
  auto r = s->Run(batch, 1 << 20);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (int i = 0; i < 50; ++i) {
    if (i == 20) {
      EXPECT_EQ((*r)[i].outcome, Outcome::kBudgetExceeded);
      EXPECT_THAT((*r)[i].text, HasSubstr("300 ms"));
    } else {
      EXPECT_EQ((*r)[i].outcome, Outcome::kValue) << i;
      EXPECT_EQ((*r)[i].text, std::to_string(i));
    }
  }
  EXPECT_EQ(s->restarts(), 1u);
  // The new worker goes on with the same filters.
  EXPECT_EQ(RunOne(*s, R"({"n":5})").text, "5");
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kUnderSanitizer = true;
#else
constexpr bool kUnderSanitizer = false;
#endif

TEST(SandboxTest, UnboundedRecursionAndMemoryKillOnlyTheWorker) {
  auto s = MustStart({"def f: [f]; if .deep then f else .n end",
                      "if .big then [range(1e10)] | length else .n end"});
  auto r = s->Run({Rec(R"({"n":1})", 0), Rec(R"({"deep":true})", 0), Rec(R"({"n":2})", 0),
                   Rec(R"({"big":true})", 1), Rec(R"({"n":3})", 1)},
                  1 << 20);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].text, "1");
  if (kUnderSanitizer && (*r)[1].outcome == Outcome::kBudgetExceeded) {
    // A sanitizer's runtime catches the overflow and symbolizes the deep stack before the
    // worker dies, which on a loaded machine outlasts the budget: killed either way.
    EXPECT_THAT((*r)[1].text, HasSubstr("300 ms"));
  } else {
    EXPECT_EQ((*r)[1].outcome, Outcome::kCrashed) << (*r)[1].text;
    EXPECT_THAT((*r)[1].text, HasSubstr("worker died"));
  }
  EXPECT_EQ((*r)[2].text, "2");
  // Out of memory (512 MiB) or over budget, whichever it reaches first; never a value.
  EXPECT_TRUE((*r)[3].outcome == Outcome::kCrashed ||
              (*r)[3].outcome == Outcome::kBudgetExceeded)
      << OutcomeName((*r)[3].outcome);
  EXPECT_EQ((*r)[4].text, "3");
}

TEST(SandboxTest, FiltersThatDoNotCompileAreEachNamed) {
  auto s = Sandbox::Start({".ok", "{a: }", "undefined_fn(1)", ".fine"}, TestOptions());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  const auto& v = s.status().violations();
  ASSERT_EQ(v.size(), 2u) << s.status().ToString();
  EXPECT_EQ(v[0].field, "filters[1]");
  EXPECT_THAT(v[0].description, HasSubstr("line 1, column"));
  EXPECT_EQ(v[1].field, "filters[2]");
  EXPECT_THAT(v[1].description, HasSubstr("undefined_fn"));
}

TEST(SandboxTest, AFilterReachesNothingButItsRecord) {
  // No modules, no inputs, no environment, no exit.
  for (const char* code : {R"(include "x"; .)", R"(import "x" as x; .)", "input", "inputs",
                           "$ENV", "input_filename"}) {
    auto s = Sandbox::Start({code}, TestOptions());
    EXPECT_FALSE(s.ok()) << code;
  }
  auto s = MustStart({"env", "halt", R"(halt_error("x"))", "debug | stderr | .n"});
  auto r = s->Run({Rec("{}", 0), Rec("{}", 1), Rec("{}", 2), Rec(R"({"n":1})", 3)}, 1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].text, "{}");
  EXPECT_EQ((*r)[1].outcome, Outcome::kError);
  EXPECT_EQ((*r)[2].outcome, Outcome::kError);
  EXPECT_EQ((*r)[3].text, "1");
}

TEST(SandboxTest, AFilterThatCrashesTheCompilerIsNamed) {
  std::string deep(200000, '[');
  deep += std::string(200000, ']');
  auto s = Sandbox::Start({".", deep}, TestOptions());
  ASSERT_FALSE(s.ok());
  ASSERT_EQ(s.status().violations().size(), 1u) << s.status().ToString();
  EXPECT_EQ(s.status().violations()[0].field, "filters[1]");
}

TEST(SandboxTest, HostileInputsAreOrdinaryRecords) {
  auto s = MustStart({".a"});
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  std::string bytes("\xff\xfe\x00\x01", 4);
  auto r = s->Run({Rec(deep), Rec(bytes), Rec(""), Rec(R"({"a":"\u0000"})")}, 1 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_NE((*r)[0].outcome, Outcome::kValue);
  EXPECT_EQ((*r)[1].outcome, Outcome::kNotJson);
  EXPECT_EQ((*r)[2].outcome, Outcome::kNotJson);
  EXPECT_EQ((*r)[3].outcome, Outcome::kValue);
  EXPECT_EQ((*r)[3].text, R"("\u0000")");
}

TEST(SandboxTest, AWorkerThatCannotStartIsUnavailable) {
  SandboxOptions o = TestOptions();
  o.worker_path = "/nonexistent/cachecar";
  auto s = Sandbox::Start({"."}, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace cachecar::transform
