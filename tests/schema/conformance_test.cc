// Runs the official JSON-Schema-Test-Suite (scripts/setup.sh fetches it) through JsonSchema
// exactly as the sidecar compiles schemas (strict, formats asserted), for draft-04, -06, -07,
// 2019-09 and 2020-12, required and optional tests.
//
// Every test not passed is listed in conformance_known_failures.txt with its draft, place,
// outcome ("refused": the schema is refused at load, on purpose; "wrong": a wrong verdict)
// and the reason; the list must match exactly (a listed test that passes fails this test
// too). Required tests may not have wrong answers. The summary it prints is the README's
// conformance table.
#include <gtest/gtest.h>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/utils/nlohmann_json_utils.hpp>
#include <valijson/validator.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "schema/json_schema.h"

namespace cachecar::schema {
namespace {

namespace fs = std::filesystem;

struct Draft {
  const char* dir;   // under tests/
  const char* name;  // CompileOptions::default_draft
};
constexpr Draft kDrafts[] = {{"draft4", "draft-04"},
                             {"draft6", "draft-06"},
                             {"draft7", "draft-07"},
                             {"draft2019-09", "2019-09"},
                             {"draft2020-12", "2020-12"}};

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "draft | file | group | test" -> "outcome | reason"
std::map<std::string, std::string> KnownFailures(const fs::path& p) {
  std::map<std::string, std::string> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t reason = line.rfind(" | ");
    if (reason == std::string::npos) continue;
    size_t outcome = line.rfind(" | ", reason - 1);
    if (outcome == std::string::npos) continue;
    out[line.substr(0, outcome)] = line.substr(outcome + 3);
  }
  return out;
}

struct Tally {
  int total = 0, passed = 0, refused = 0, wrong = 0, format_asserted = 0;
};

struct Outcome {
  std::string kind;  // "pass", "refused", "wrong"
  std::string why;
};

Outcome RunOne(const nlohmann::json& group, const nlohmann::json& test,
            const CompileOptions& options) {
  auto compiled = JsonSchema::Compile(group["schema"].dump(), options);
  if (!compiled.ok()) return {"refused", compiled.status().message()};
  bool expect_valid = test["valid"].get<bool>();
  Verdict v = (*compiled)->Check(test["data"].dump());
  if ((v == Verdict::kValid) == expect_valid) return {"pass", ""};
  return {"wrong", expect_valid ? "rejected a valid document" : "accepted an invalid one"};
}

// valijson (Debian's libvalijson-dev) on the same test, for the README's comparison only:
// "pass", "refused" (its parser threw) or "wrong". Remote refs load from the suite's remotes.
std::string RunValijson(const nlohmann::json& group, const nlohmann::json& test,
                        valijson::SchemaParser::Version version, const fs::path& remotes) {
  try {
    valijson::Schema schema;
    valijson::SchemaParser parser(version);
    valijson::adapters::NlohmannJsonAdapter adapter(group["schema"]);
    auto fetch = [&](const std::string& uri) -> const nlohmann::json* {
      const std::string prefix = "http://localhost:1234/";
      if (uri.rfind(prefix, 0) != 0) return nullptr;
      auto* doc = new nlohmann::json(
          nlohmann::json::parse(ReadAll(remotes / uri.substr(prefix.size())), nullptr, false));
      if (doc->is_discarded()) {
        delete doc;
        return nullptr;
      }
      return doc;
    };
    auto release = [](const nlohmann::json* doc) { delete doc; };
    parser.populateSchema(adapter, schema, fetch, release);
    valijson::Validator validator;
    valijson::adapters::NlohmannJsonAdapter target(test["data"]);
    return validator.validate(schema, target, nullptr) == test["valid"].get<bool>() ? "pass"
                                                                                   : "wrong";
  } catch (...) {
    return "refused";
  }
}

// RunValijson for every test of a group, in a child process: valijson crashes (recursion)
// on some of the suite's schemas. A crash counts as "crashed" for each test of the group.
std::vector<std::string> RunValijsonGroup(const nlohmann::json& group,
                                          valijson::SchemaParser::Version version,
                                          const fs::path& remotes) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    for (const auto& test : group["tests"]) out += RunValijson(group, test, version, remotes)[0];
    ssize_t n = write(fds[1], out.data(), out.size());
    _exit(n == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::vector<std::string> verdicts;
  for (size_t i = 0; i < group["tests"].size(); ++i) {
    if (i >= got.size()) {
      verdicts.push_back("crashed");
    } else {
      verdicts.push_back(got[i] == 'p' ? "pass" : got[i] == 'r' ? "refused" : "wrong");
    }
  }
  return verdicts;
}

TEST(ConformanceTest, EveryDraftRequiredAndOptional) {
  const fs::path suite = CACHECAR_JSON_SCHEMA_TEST_SUITE;
  ASSERT_TRUE(fs::is_directory(suite / "tests/draft2020-12"))
      << suite << " missing: scripts/setup.sh fetches the JSON-Schema-Test-Suite";
  std::map<std::string, std::string> known = KnownFailures(
      fs::path(CACHECAR_SOURCE_DIR) / "tests/schema/conformance_known_failures.txt");

  std::map<std::string, Outcome> failures;  // id -> outcome
  std::vector<std::string> format_differs;
  std::vector<std::string> valijson_rows;  // tests whose verdict "format" as annotation changes
  std::printf("| draft | required passed | refused at load | format asserted | wrong | "
              "optional passed |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Draft& d : kDrafts) {
    CompileOptions options;
    options.default_draft = d.name;
    options.url_map = {{"http://localhost:1234/", (suite / "remotes").string()}};
    CompileOptions annotate = options;
    annotate.assert_formats = false;
    const fs::path dir = suite / "tests" / d.dir;
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    Tally required, optional, valijson_required;
    const auto valijson_version = d.name == std::string("draft-04")
                                      ? valijson::SchemaParser::kDraft4
                                      : valijson::SchemaParser::kDraft7;
    for (const auto& file : files) {
      std::string rel = fs::relative(file, dir).string();
      bool is_optional = rel.rfind("optional/", 0) == 0;
      Tally& tally = is_optional ? optional : required;
      nlohmann::json groups = nlohmann::json::parse(ReadAll(file), nullptr, false);
      ASSERT_FALSE(groups.is_discarded()) << file;
      for (const auto& group : groups) {
        std::vector<std::string> valijson;
        if (!is_optional) valijson = RunValijsonGroup(group, valijson_version, suite / "remotes");
        size_t index = 0;
        for (const auto& test : group["tests"]) {
          ++tally.total;
          std::string id = std::string(d.name) + " | " + rel + " | " +
                           group["description"].get<std::string>() + " | " +
                           test["description"].get<std::string>();
          Outcome o = RunOne(group, test, options);
          if (!is_optional) {
            ++valijson_required.total;
            const std::string& v = valijson[index++];
            if (v == "pass") ++valijson_required.passed;
            if (v == "refused") ++valijson_required.refused;
            if (v == "wrong") ++valijson_required.wrong;
            if (v == "crashed") ++valijson_required.format_asserted;  // crashes, for the table
          }
          bool newer = d.name == std::string("2019-09") || d.name == std::string("2020-12");
          if (newer && RunOne(group, test, annotate).kind != o.kind) {
            format_differs.push_back(id);
            // Their default is "format" as an annotation; cachecar asserts it unless the
            // topic says schema_formats: annotate, and then passes these.
            if (o.kind == "wrong") o = {"format-asserted", "cachecar asserts format by default"};
          }
          if (o.kind == "pass") {
            ++tally.passed;
          } else {
            if (o.kind == "refused") ++tally.refused;
            if (o.kind == "wrong") ++tally.wrong;
            if (o.kind == "format-asserted") ++tally.format_asserted;
            failures[id] = o;
          }
        }
      }
    }
    std::printf("| %s | %d of %d (%.1f%%) | %d | %d | %d | %d of %d |\n", d.name,
                required.passed, required.total, 100.0 * required.passed / required.total,
                required.refused, required.format_asserted, required.wrong, optional.passed,
                optional.total);
    EXPECT_EQ(required.wrong, 0) << d.name << ": wrong answers in required tests";
    valijson_rows.push_back(std::string("| ") + d.name + " | " +
                            std::to_string(valijson_required.passed) + " of " +
                            std::to_string(valijson_required.total) + " | " +
                            std::to_string(valijson_required.refused) + " | " +
                            std::to_string(valijson_required.wrong) + " | " +
                            std::to_string(valijson_required.format_asserted) + " |");
  }
  std::printf("\nvalijson (Debian), required tests:\n"
              "| draft | passed | refused | wrong | crashed |\n|---|---|---|---|---|\n");
  for (const auto& row : valijson_rows) std::printf("%s\n", row.c_str());
  std::printf("With format as an annotation (schema_formats: annotate), %zu tests of "
              "2019-09 and 2020-12 change verdict:\n",
              format_differs.size());
  for (const auto& id : format_differs) std::printf("  %s\n", id.c_str());
  for (const auto& [id, o] : failures) {
    auto it = known.find(id);
    EXPECT_TRUE(it != known.end() && it->second.rfind(o.kind + " | ", 0) == 0)
        << "not listed as " << o.kind << ": " << id << " | " << o.kind << " | "
        << o.why.substr(0, 300);
  }
  for (const auto& [id, why] : known) {
    EXPECT_TRUE(failures.count(id)) << "listed but passes (update the list): " << id;
  }
}

}  // namespace
}  // namespace cachecar::schema
