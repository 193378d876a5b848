#include "schema/json_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "schema/compile_helpers.h"
#include "test_util.h"

namespace cachecar::schema {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

const std::string kSchemas = std::string(CACHECAR_SOURCE_DIR) + "/schemas/";

using schema_test::CompileError;
using schema_test::MustCompile;
using schema_test::WriteFile;

auto IsViolation(const std::string& pointer, const std::string& keyword) {
  return AllOf(Field(&Violation::pointer, pointer), Field(&Violation::keyword, keyword));
}

TEST(JsonSchemaTest, ExampleSchemasCompile) {
  for (const char* f : {"user.json", "organization.json", "session.json",
                        "cache_invalidation.json"}) {
    auto r = JsonSchema::CompileFile(kSchemas + f);
    EXPECT_TRUE(r.ok()) << f << ": " << r.status().ToString();
  }
}

TEST(JsonSchemaTest, ValidUserPassesAndEveryViolationIsListed) {
  auto user = JsonSchema::CompileFile(kSchemas + "user.json");
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ((*user)->draft(), "draft-07");
  const std::string good = R"({"id":"6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
      "email":"ada@example.com","displayName":"Ada",
      "groups":[{"id":"0b7e1f2a-3c4d-4e5f-8a6b-7c8d9e0f1a2b","name":"eng"}]})";
  EXPECT_EQ((*user)->Check(good), Verdict::kValid);

  const std::string bad = R"({"id":"not-a-uuid","displayName":"",
      "groups":[{"id":"0b7e1f2a-3c4d-4e5f-8a6b-7c8d9e0f1a2b"}],"nickname":"x"})";
  EXPECT_EQ((*user)->Check(bad), Verdict::kInvalid);
  std::vector<Violation> v = (*user)->Explain(bad);
  EXPECT_THAT(v, Contains(IsViolation("", "required")));       // email
  EXPECT_THAT(v, Contains(IsViolation("/id", "format")));
  EXPECT_THAT(v, Contains(IsViolation("/displayName", "minLength")));
  EXPECT_THAT(v, Contains(IsViolation("/groups/0", "required")));  // through $ref to a file
  EXPECT_THAT(v, Contains(IsViolation("", "additionalProperties")));
  EXPECT_EQ(v.size(), 5u);
  for (const auto& x : v) EXPECT_FALSE(x.message.empty());
}

TEST(JsonSchemaTest, MaskedMessagesDoNotQuoteTheDocument) {
  auto s = MustCompile(R"({"properties":{"email":{"type":"string","format":"email"}}})");
  std::vector<Violation> plain = s->Explain(R"({"email":"secret-value"})");
  std::vector<Violation> masked = s->Explain(R"({"email":"secret-value"})", 10, true);
  ASSERT_EQ(plain.size(), 1u);
  ASSERT_EQ(masked.size(), 1u);
  EXPECT_THAT(plain[0].message, HasSubstr("secret-value"));
  EXPECT_THAT(masked[0].message, ::testing::Not(HasSubstr("secret-value")));
}

TEST(JsonSchemaTest, NotJsonIsItsOwnVerdict) {
  auto s = MustCompile(R"({"type":"object"})");
  for (std::string_view doc : {"", "{", "{\"a\":}", "nul", "{\"a\":1}x", "\xff"}) {
    EXPECT_EQ(s->Check(doc), Verdict::kNotJson) << doc;
    std::vector<Violation> v = s->Explain(doc);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].keyword, "json");
  }
}

TEST(JsonSchemaTest, DeeplyNestedDocumentIsRefusedNotACrash) {
  auto s = MustCompile(R"({})");
  std::string deep(100000, '[');
  EXPECT_EQ(s->Check(deep + std::string(100000, ']')), Verdict::kNotJson);
}

TEST(JsonSchemaTest, NewerDraftsAreEnforced) {
  auto s = MustCompile(R"({"$schema":"https://json-schema.org/draft/2020-12/schema",
      "properties":{"a":{"type":"integer"}},"unevaluatedProperties":false,
      "prefixItems":[{"type":"string"}]})");
  EXPECT_EQ(s->draft(), "2020-12");
  EXPECT_EQ(s->Check(R"({"a":1})"), Verdict::kValid);
  EXPECT_EQ(s->Check(R"({"a":1,"b":2})"), Verdict::kInvalid);
  auto t = MustCompile(R"({"$schema":"https://json-schema.org/draft/2019-09/schema",
      "dependentRequired":{"a":["b"]}})");
  EXPECT_EQ(t->Check(R"({"a":1})"), Verdict::kInvalid);
  EXPECT_EQ(t->Check(R"({"a":1,"b":1})"), Verdict::kValid);
}

TEST(JsonSchemaTest, FormatsArePatternsAreAsserted) {
  auto s = MustCompile(R"({"properties":{"t":{"format":"date-time"},"p":{"pattern":"^[a-z]+$"},
      "u":{"format":"uuid"},"e":{"format":"email"},"ip":{"format":"ipv4"}}})");
  EXPECT_EQ(s->Check(R"({"t":"2026-11-23T10:00:00Z","p":"abc","u":"6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b","e":"a@b.c","ip":"10.0.0.1"})"),
            Verdict::kValid);
  for (const char* bad : {R"({"t":"yesterday"})", R"({"p":"ABC"})", R"({"u":"x"})",
                          R"({"e":"nope"})", R"({"ip":"300.1.1.1"})"}) {
    EXPECT_EQ(s->Check(bad), Verdict::kInvalid) << bad;
  }
}

TEST(JsonSchemaTest, KeywordsThatWouldNotBeEnforcedAreRefused) {
  EXPECT_THAT(CompileError(R"({"properties":{"a":{"type":"string","requried":true}}})"),
              AllOf(HasSubstr("#/properties/a/requried"), HasSubstr("draft-07")));
  // 2019-09 keywords in a draft-07 schema.
  EXPECT_THAT(CompileError(R"({"unevaluatedProperties":false})"),
              HasSubstr("unevaluatedProperties"));
  // draft-07 keywords in a 2020-12 schema.
  EXPECT_THAT(CompileError(R"({"$schema":"https://json-schema.org/draft/2020-12/schema",
                               "dependencies":{"a":["b"]}})"),
              HasSubstr("dependencies"));
  // Siblings of $ref are ignored by drafts 4-7.
  EXPECT_THAT(CompileError(R"({"definitions":{"x":{}},"properties":{"a":{"$ref":"#/definitions/x","minimum":3}}})"),
              AllOf(HasSubstr("minimum"), HasSubstr("$ref")));
  EXPECT_THAT(CompileError(R"({"format":"no-such-format"})"), HasSubstr("no-such-format"));
  EXPECT_THAT(CompileError(R"({"$schema":"http://example.com/my-meta"})"),
              HasSubstr("http://example.com/my-meta"));
  // Annotations pass.
  MustCompile(R"({"title":"t","description":"d","x-owner":"team-a","$comment":"c",
                  "examples":[1],"default":1,"readOnly":true})");
  // An unknown keyword inside enum/const values is data, not a keyword.
  MustCompile(R"({"enum":[{"requried":1}],"const":{"whatever":2}})");
}

TEST(JsonSchemaTest, MalformedSchemasAreRefusedNeverAbort) {
  EXPECT_THAT(CompileError("{"), HasSubstr("not JSON"));
  EXPECT_THAT(CompileError("[1,2]"), HasSubstr("object"));
  EXPECT_THAT(CompileError(R"({"type":"strnig"})"), HasSubstr("type"));
  EXPECT_THAT(CompileError(R"({"minimum":"three"})"), HasSubstr("minimum"));
  EXPECT_THAT(CompileError(R"({"pattern":"(unclosed"})"), HasSubstr("pattern"));
  EXPECT_THAT(CompileError(R"({"$ref":"#/definitions/missing"})"), HasSubstr("missing"));
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += R"({"not":)";
  deep += "{}" + std::string(300, '}');
  EXPECT_THAT(CompileError(deep), HasSubstr("nested deeper than 100 levels"));
  // Boolean schemas are schemas.
  EXPECT_EQ(MustCompile("true")->Check("1"), Verdict::kValid);
  EXPECT_EQ(MustCompile("false")->Check("1"), Verdict::kInvalid);
}

TEST(JsonSchemaTest, HostilePatternDoesNotHang) {
  auto s = MustCompile(R"({"pattern":"^(a+)+$"})");
  EXPECT_EQ(s->Check("\"" + std::string(50000, 'a') + "!\""), Verdict::kInvalid);
}

TEST(JsonSchemaTest, RefsResolveOnlyInsideTheSchemaFolder) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.path() + "/schemas");
  WriteFile(dir.path() + "/secret.json", R"({"type":"string"})");
  WriteFile(dir.path() + "/schemas/by-id.json",
            R"({"$id":"https://example.com/types/name.json","type":"string","maxLength":3})");
  WriteFile(dir.path() + "/schemas/a.json",
            R"({"properties":{"n":{"$ref":"https://example.com/types/name.json"}}})");
  WriteFile(dir.path() + "/schemas/escape.json", R"({"$ref":"../secret.json"})");
  WriteFile(dir.path() + "/schemas/remote.json", R"({"$ref":"https://example.org/x.json"})");
  WriteFile(dir.path() + "/schemas/missing.json", R"({"$ref":"nope.json"})");

  auto a = JsonSchema::CompileFile(dir.path() + "/schemas/a.json");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ((*a)->Check(R"({"n":"abcd"})"), Verdict::kInvalid);  // by $id
  auto escape = JsonSchema::CompileFile(dir.path() + "/schemas/escape.json");
  ASSERT_FALSE(escape.ok());
  EXPECT_THAT(escape.status().message(), AllOf(HasSubstr("escape.json"), HasSubstr("outside")));
  auto remote = JsonSchema::CompileFile(dir.path() + "/schemas/remote.json");
  ASSERT_FALSE(remote.ok());
  EXPECT_THAT(remote.status().message(), HasSubstr("https://example.org/x.json"));
  auto missing = JsonSchema::CompileFile(dir.path() + "/schemas/missing.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.json"));
  auto absent = JsonSchema::CompileFile(dir.path() + "/schemas/absent.json");
  ASSERT_FALSE(absent.ok());
  EXPECT_THAT(absent.status().message(), HasSubstr("absent.json"));
}

}  // namespace
}  // namespace cachecar::schema
