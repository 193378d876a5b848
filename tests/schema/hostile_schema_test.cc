// What a hostile or careless schema or document can do to the validator (issue 15): it may
// not stall (bounded work), abort (bounded memory), read outside the schema folder, or give
// a wrong verdict; JSON means the same with and without a schema.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "schema/json_schema.h"
#include "schema/compile_helpers.h"
#include "test_util.h"

namespace cachecar::schema {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::SizeIs;

using schema_test::CompileError;
using schema_test::MustCompile;
using schema_test::WriteFile;

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// --- Bounded time ------------------------------------------------------------------------

constexpr char kPasswordRule[] = R"((?=.*[A-Z])(?=.*[0-9]).{8,})";

TEST(HostileSchemaTest, BacktrackingPatternIsRefusedAtLoadNamingIt) {
  for (const char* where : {R"({"type":"string","pattern":"%s"})",
                            R"({"patternProperties":{"%s":{}}})",
                            R"({"propertyNames":{"pattern":"%s"}})"}) {
    std::string schema = where;
    schema.replace(schema.find("%s"), 2, kPasswordRule);
    EXPECT_THAT(CompileError(schema),
                AllOf(HasSubstr(kPasswordRule), HasSubstr("backtracking")))
        << schema;
  }
  EXPECT_THAT(CompileError(R"({"pattern":"(a)\\1"})"), HasSubstr("backtracking"));
}

TEST(HostileSchemaTest, OptedInBacktrackingPatternRunsUnderItsBudget) {
  CompileOptions options;
  options.backtracking_patterns = true;
  auto s = MustCompile(std::string(R"({"type":"string","pattern":")") + kPasswordRule + "\"}",
                       options);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Check(Quoted("Passw0rdLong")), Verdict::kValid);
  EXPECT_EQ(s->Check(Quoted("password")), Verdict::kInvalid);
  // Neither a match nor a non-match: over the budget, and says so.
  std::string big = Quoted(std::string(1 << 20, 'a'));
  EXPECT_EQ(s->Check(big), Verdict::kBudgetExceeded);
  std::vector<Violation> v = s->Explain(big);
  ASSERT_THAT(v, SizeIs(1));
  EXPECT_EQ(v[0].keyword, "budget");
  // Within the string budget, a match that backtracks too much is given up too.
  auto exponential = MustCompile(R"({"pattern":"^(a|a)+b\\1$"})", options);
  std::string many_a = Quoted(std::string(3000, 'a'));
  EXPECT_EQ(exponential->Check(many_a), Verdict::kBudgetExceeded);
  EXPECT_EQ(exponential->Check(Quoted("aab")), Verdict::kInvalid);
}

TEST(HostileSchemaTest, OptedInLinearPatternsKeepTheLinearEngine) {
  CompileOptions options;
  options.backtracking_patterns = true;
  auto s = MustCompile(R"({"pattern":"^[a-z]+$"})", options);
  EXPECT_EQ(s->Check(Quoted(std::string(1 << 20, 'a'))), Verdict::kValid);
}

TEST(HostileSchemaTest, UndecidedMatchIsNeverAVerdictUnderNotOrPatternProperties) {
  CompileOptions options;
  options.backtracking_patterns = true;
  auto under_not = MustCompile(
      std::string(R"({"not":{"pattern":")") + kPasswordRule + "\"}}", options);
  auto props = MustCompile(
      std::string(R"({"patternProperties":{")") + kPasswordRule + R"(":false}})", options);
  std::string big(1 << 20, 'a');
  EXPECT_EQ(under_not->Check(Quoted(big)), Verdict::kBudgetExceeded);
  EXPECT_EQ(props->Check("{" + Quoted(big) + ":1}"), Verdict::kBudgetExceeded);
  // Given up by the engine (not the string budget): still not a verdict.
  auto exponential = MustCompile(R"({"not":{"pattern":"^(a|a)+b\\1$"}})", options);
  EXPECT_EQ(exponential->Check(Quoted(std::string(3000, 'a'))), Verdict::kBudgetExceeded);
  EXPECT_EQ(exponential->Check(Quoted("xyz")), Verdict::kValid);
}

TEST(HostileSchemaTest, LinearPatternsDecideLargeStrings) {
  // Patterns the linear engine can run are decided on any input, right.
  auto s = MustCompile(R"({"not":{"pattern":"^(a|aa)+$"}})");
  EXPECT_EQ(s->Check(Quoted(std::string(1 << 20, 'a'))), Verdict::kInvalid);
  EXPECT_EQ(s->Check(Quoted(std::string(1 << 20, 'a') + "!")), Verdict::kValid);
}

// --- Bounded memory ----------------------------------------------------------------------

// d0 -> allOf [d1, d1] -> ... : 2^levels paths to the last definition.
std::string ChainedAllOf(int levels) {
  std::string defs;
  for (int i = 0; i < levels; ++i) {
    defs += "\"d" + std::to_string(i) + R"(":{"allOf":[{"$ref":"#/definitions/d)" +
            std::to_string(i + 1) + R"("},{"$ref":"#/definitions/d)" + std::to_string(i + 1) +
            "\"}]},";
  }
  defs += "\"d" + std::to_string(levels) + R"(":{"type":"string"})";
  return R"({"definitions":{)" + defs + R"(},"$ref":"#/definitions/d0"})";
}

TEST(HostileSchemaTest, ExponentialRefChainIsRefusedAtLoad) {
  std::string schema = ChainedAllOf(30);
  EXPECT_LT(schema.size(), 3000u);
  EXPECT_THAT(CompileError(schema), HasSubstr("cannot be bounded"));
}

TEST(HostileSchemaTest, ViolationListIsCappedWhateverTheSchema) {
  auto s = MustCompile(ChainedAllOf(8));  // 256 paths: allowed
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Check("5"), Verdict::kInvalid);
  EXPECT_THAT(s->Explain("5", 100), SizeIs(Le(100u)));
  EXPECT_THAT(s->Explain("5", 3), SizeIs(Le(3u)));
}

// --- One notion of JSON ------------------------------------------------------------------

TEST(HostileSchemaTest, DuplicateKeysAreNotJson) {
  auto s = MustCompile("{}");
  EXPECT_EQ(s->Check(R"({"a":1,"a":2})"), Verdict::kNotJson);
  EXPECT_EQ(s->Check(R"({"x":{"b":true,"b":false}})"), Verdict::kNotJson);
  EXPECT_EQ(s->Check(R"({"a":1,"b":2})"), Verdict::kValid);
  EXPECT_FALSE(IsJson(R"({"a":1,"a":2})").ok());
}

TEST(HostileSchemaTest, NestingAndBomMeanTheSameWithAndWithoutASchema) {
  auto s = MustCompile("{}");
  for (int depth : {10, kMaxJsonDepth - 1, kMaxJsonDepth, kMaxJsonDepth + 1, 127, 128, 129}) {
    std::string doc = std::string(depth, '[') + std::string(depth, ']');
    bool json = IsJson(doc).ok();
    EXPECT_EQ(json, depth <= kMaxJsonDepth) << depth;
    EXPECT_EQ(s->Check(doc) != Verdict::kNotJson, json) << depth;
  }
  std::string bom = "\xEF\xBB\xBF{}";
  EXPECT_FALSE(IsJson(bom).ok());
  EXPECT_EQ(s->Check(bom), Verdict::kNotJson);
}

TEST(HostileSchemaTest, NumbersAreComparedExactly) {
  auto max = MustCompile(R"({"maximum":18446744073709551616})");
  EXPECT_EQ(max->Check("18446744073709551617"), Verdict::kInvalid);
  EXPECT_EQ(max->Check("18446744073709551616"), Verdict::kValid);
  auto positive = MustCompile(R"({"exclusiveMinimum":0})");
  EXPECT_EQ(positive->Check("1e-400"), Verdict::kValid);
  EXPECT_EQ(positive->Check("0"), Verdict::kInvalid);
  EXPECT_EQ(positive->Check("-1e-400"), Verdict::kInvalid);
}

// --- Schema files --------------------------------------------------------------------------

TEST(HostileSchemaTest, DuplicateKeywordInASchemaIsRefused) {
  EXPECT_THAT(CompileError(R"({"type":"string","maxLength":3,"type":"number"})"),
              HasSubstr("type"));
  EXPECT_THAT(CompileError(R"({"properties":{"a":{},"a":{"type":"string"}}})"),
              HasSubstr("duplicate"));
}

TEST(HostileSchemaTest, SymlinksOutOfTheFolderAreNotFollowed) {
  testing::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.path() + "/outside/sub");
  fs::create_directories(dir.path() + "/schemas");
  WriteFile(dir.path() + "/outside/secret.json",
            R"({"$id":"https://example.com/secret.json","type":"string"})");
  WriteFile(dir.path() + "/outside/sub/hidden.json",
            R"({"$id":"https://example.com/hidden.json","type":"string"})");
  fs::create_symlink(dir.path() + "/outside/secret.json", dir.path() + "/schemas/link.json");
  fs::create_symlink(dir.path() + "/outside/sub", dir.path() + "/schemas/linkdir");
  WriteFile(dir.path() + "/schemas/by-file.json", R"({"$ref":"link.json"})");
  WriteFile(dir.path() + "/schemas/by-id.json", R"({"$ref":"https://example.com/secret.json"})");
  WriteFile(dir.path() + "/schemas/by-dir-id.json",
            R"({"$ref":"https://example.com/hidden.json"})");
  WriteFile(dir.path() + "/schemas/by-dir.json", R"({"$ref":"linkdir/hidden.json"})");
  for (const char* f : {"by-file.json", "by-id.json", "by-dir-id.json", "by-dir.json"}) {
    auto r = JsonSchema::CompileFile(dir.path() + "/schemas/" + f);
    EXPECT_FALSE(r.ok()) << f << " read a file outside the schema folder";
  }
}

TEST(HostileSchemaTest, FifoInTheFolderIsRefusedNotWaitedOn) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/a.json", R"({"$ref":"pipe.json"})");
  WriteFile(dir.path() + "/b.json", R"({"type":"string"})");
  ASSERT_EQ(mkfifo((dir.path() + "/pipe.json").c_str(), 0600), 0);
  auto a = JsonSchema::CompileFile(dir.path() + "/a.json");
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("pipe.json"));
  // Not only where it is used: a FIFO among the schemas is a mistake to fix, said at load.
  auto b = JsonSchema::CompileFile(dir.path() + "/b.json");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), AllOf(HasSubstr("pipe.json"), HasSubstr("regular file")));
}

TEST(HostileSchemaTest, TwoFilesWithOneIdAreRefusedNamingBoth) {
  testing::TempDir dir;
  WriteFile(dir.path() + "/one.json", R"({"$id":"https://example.com/t.json","type":"string"})");
  WriteFile(dir.path() + "/two.json", R"({"$id":"https://example.com/t.json","type":"number"})");
  WriteFile(dir.path() + "/main.json", R"({"$ref":"https://example.com/t.json"})");
  auto r = JsonSchema::CompileFile(dir.path() + "/main.json");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr("one.json"), HasSubstr("two.json")));
}

// --- Bounded messages ----------------------------------------------------------------------

TEST(HostileSchemaTest, QuotedValuesAreBounded) {
  auto s = MustCompile(R"({"properties":{"a":{"enum":["x","y"]},"b":{"const":"z"},
      "c":{"maxLength":2},"d":{"type":"number"}}})");
  std::string big(5000, 'q');
  std::string doc = R"({"a":")" + big + R"(","b":")" + big + R"(","c":")" + big +
                    R"(","d":")" + big + "\"}";
  std::vector<Violation> v = s->Explain(doc);
  ASSERT_THAT(v, SizeIs(4));
  for (const auto& x : v) {
    EXPECT_LE(x.message.size(), kMaxViolationMessageBytes) << x.message.substr(0, 80);
    if (x.keyword != "const") {
      EXPECT_THAT(x.message, HasSubstr("qqq"));  // still quotes a prefix, to recognise it
    }
  }
}

// --- Formats ---------------------------------------------------------------------------------

TEST(HostileSchemaTest, FormatAssertionIsAnOption) {
  const char* schema = R"({"$schema":"https://json-schema.org/draft/2020-12/schema",
                           "format":"email"})";
  EXPECT_EQ(MustCompile(schema)->Check(R"("nope")"), Verdict::kInvalid);  // default: assert
  CompileOptions annotate;
  annotate.assert_formats = false;
  EXPECT_EQ(MustCompile(schema, annotate)->Check(R"("nope")"), Verdict::kValid);
}

}  // namespace
}  // namespace cachecar::schema
