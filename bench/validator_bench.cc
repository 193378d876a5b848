// validator_bench: cachecar's JSON Schema validator (the Rust `jsonschema` crate behind
// sidecar/schema/jsonschema_ffi) beside valijson (Debian's libvalijson-dev, with its
// nlohmann-json adapter), on the same documents and schema: bench/schemas/bench_record.json,
// the shape bench/produce.cc writes, with a pattern and uuid/email/date-time formats.
//
// Both sides start from the record's bytes, as the materializer does: valijson's time
// includes nlohmann's parse, ours includes serde_json's. valijson checks only the date,
// time and date-time formats (uuid and email pass unchecked), so it does less work here.
// The *_NoRegex variants drop "pattern" and "format" to show what the regexes cost.
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "schema/json_schema.h"

namespace {

std::string ReadSchemaText() {
  std::ifstream in(std::string(CACHECAR_SOURCE_DIR) + "/bench/schemas/bench_record.json");
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().empty()) {
    std::fprintf(stderr, "cannot read bench/schemas/bench_record.json\n");
    std::exit(1);
  }
  return text.str();
}

// The schema without "pattern" and "format": the cost of everything but the regexes.
std::string SchemaWithoutRegexes() {
  nlohmann::json schema = nlohmann::json::parse(ReadSchemaText());
  for (auto& [name, property] : schema["properties"].items()) {
    property.erase("pattern");
    property.erase("format");
  }
  return schema.dump();
}

// 1,000 distinct documents like bench/produce.cc's, with a timestamp.
const std::vector<std::string>& Documents(bool valid) {
  static const auto make = [](bool ok) {
    std::vector<std::string> docs;
    char buf[512];
    for (long i = 0; i < 1000; ++i) {
      std::snprintf(buf, sizeof(buf),
                    "{\"id\":\"%08lx-1111-4222-8333-%012ld\",\"email\":\"user%ld@example.com\","
                    "\"displayName\":\"User %ld\",\"n\":%ld,\"active\":true,\"pad\":\"xxxxxxxxx\","
                    "\"updatedAt\":\"2026-11-23T08:%02ld:%02ldZ\"}",
                    i, i, i, i, ok ? i : -i - 1, i % 60, (i / 60) % 60);
      docs.emplace_back(buf);
    }
    return docs;
  };
  static const std::vector<std::string> valid_docs = make(true), invalid_docs = make(false);
  return valid ? valid_docs : invalid_docs;
}

void RunCachecar(benchmark::State& state, const std::string& schema_text, bool valid) {
  auto compiled = cachecar::schema::JsonSchema::Compile(schema_text, {});
  if (!compiled.ok()) {
    state.SkipWithError(compiled.status().ToString().c_str());
    return;
  }
  const auto& docs = Documents(valid);
  const auto want = valid ? cachecar::schema::Verdict::kValid : cachecar::schema::Verdict::kInvalid;
  size_t i = 0;
  for (auto _ : state) {
    if ((*compiled)->Check(docs[i++ % docs.size()]) != want) {
      state.SkipWithError("unexpected verdict");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// An invalid document as Put and the read path really handle it: the verdict, then the
// violation list (Put: up to 100, quoting values; the read path: up to 4, masked).
void RunCachecarExplain(benchmark::State& state, size_t max, bool masked) {
  auto compiled = cachecar::schema::JsonSchema::Compile(ReadSchemaText(), {});
  if (!compiled.ok()) {
    state.SkipWithError(compiled.status().ToString().c_str());
    return;
  }
  const auto& docs = Documents(false);
  size_t i = 0;
  for (auto _ : state) {
    const std::string& doc = docs[i++ % docs.size()];
    if ((*compiled)->Check(doc) != cachecar::schema::Verdict::kInvalid ||
        (*compiled)->Explain(doc, max, masked).empty()) {
      state.SkipWithError("unexpected verdict");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void RunValijson(benchmark::State& state, const std::string& schema_text, bool valid) {
  nlohmann::json schema_doc = nlohmann::json::parse(schema_text);
  valijson::Schema schema;
  valijson::SchemaParser parser;
  valijson::adapters::NlohmannJsonAdapter schema_adapter(schema_doc);
  parser.populateSchema(schema_adapter, schema);
  valijson::Validator validator;
  const auto& docs = Documents(valid);
  size_t i = 0;
  for (auto _ : state) {
    nlohmann::json doc = nlohmann::json::parse(docs[i++ % docs.size()]);
    valijson::adapters::NlohmannJsonAdapter target(doc);
    if (validator.validate(schema, target, nullptr) != valid) {
      state.SkipWithError("unexpected verdict");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Cachecar_Valid(benchmark::State& s) { RunCachecar(s, ReadSchemaText(), true); }
void BM_Cachecar_Invalid(benchmark::State& s) { RunCachecar(s, ReadSchemaText(), false); }
void BM_Cachecar_Valid_NoRegex(benchmark::State& s) { RunCachecar(s, SchemaWithoutRegexes(), true); }
void BM_Cachecar_Invalid_ExplainPut(benchmark::State& s) { RunCachecarExplain(s, 100, false); }
void BM_Cachecar_Invalid_ExplainRead(benchmark::State& s) { RunCachecarExplain(s, 4, true); }
void BM_Valijson_Valid(benchmark::State& s) { RunValijson(s, ReadSchemaText(), true); }
void BM_Valijson_Invalid(benchmark::State& s) { RunValijson(s, ReadSchemaText(), false); }
void BM_Valijson_Valid_NoRegex(benchmark::State& s) { RunValijson(s, SchemaWithoutRegexes(), true); }

// The floor: parsing the document with nlohmann alone, no schema.
// The one JSON parser alone (what a schemaless json topic runs on every record).
void BM_IsJsonOnly(benchmark::State& state) {
  const auto& docs = Documents(true);
  size_t i = 0;
  for (auto _ : state) {
    if (!cachecar::schema::IsJson(docs[i++ % docs.size()]).ok()) {
      state.SkipWithError("not JSON");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_NlohmannParseOnly(benchmark::State& state) {
  const auto& docs = Documents(true);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(nlohmann::json::parse(docs[i++ % docs.size()]));
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Cachecar_Valid);
BENCHMARK(BM_Cachecar_Invalid);
BENCHMARK(BM_Cachecar_Invalid_ExplainPut);
BENCHMARK(BM_Cachecar_Invalid_ExplainRead);
BENCHMARK(BM_Cachecar_Valid_NoRegex);
BENCHMARK(BM_IsJsonOnly);
BENCHMARK(BM_Valijson_Valid);
BENCHMARK(BM_Valijson_Invalid);
BENCHMARK(BM_Valijson_Valid_NoRegex);
BENCHMARK(BM_NlohmannParseOnly);

}  // namespace

BENCHMARK_MAIN();
