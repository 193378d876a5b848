// JsonSchema: one compiled JSON Schema, checked against JSON documents.
//
// Backed by the Rust `jsonschema` crate through a small C ABI (jsonschema_ffi/): drafts 4,
// 6, 7, 2019-09 and 2020-12, formats asserted (unless a topic chooses annotations), regexes
// compiled once. Bounded by construction, whatever the schema and document:
// - time: patterns run on a linear-time engine; one that needs backtracking (lookaround,
//   backreferences) is refused at load unless `backtracking_patterns`, and then runs under
//   a budget: `backtrack_limit` steps per match, and documents whose strings are all at
//   most `backtracking_max_string_bytes` (a match costs up to steps times length). Over
//   the budget the verdict is kBudgetExceeded, never a guess. A schema that applies more than 10,000 subschemas to one
//   value (allOf/$ref chains multiply) is refused at load.
// - memory: the violations listed are capped, and each message quotes at most 64 bytes of
//   a value and is at most kMaxViolationMessageBytes.
// - files: "$ref" reads only regular files inside the schema folder's real path; two files
//   with one "$id" are refused, naming both.
// Documents and schema files go through one JSON parser (IsJson): duplicate keys, a byte
// order mark, or more than kMaxJsonDepth levels of nesting are not JSON; numbers compare
// exactly. Compiling is strict:
// a keyword the draft does not define (so the validator would not enforce it), a keyword
// beside "$ref" in drafts 4-7 (ignored by those drafts), an unknown format, an unknown
// "$schema", or a "$ref" that leaves the schema folder is refused with a message naming the
// place. Keywords prefixed "x-" pass as annotations. A schema without "$schema" is draft-07.
//
// Thread-safe: a compiled JsonSchema is immutable; any number of threads may call Check and
// Explain at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct CcjsSchema;  // the Rust side's opaque handle (jsonschema_ffi::Schema)

namespace cachecar::schema {

struct CompileOptions {
  // URI the schema's relative "$ref"s resolve against, e.g. "file:///schemas/user.json".
  std::string base_uri;
  // Folder "$ref" may read from (files by path, or by the "$id" of a file there). Empty:
  // no file is read.
  std::string root_dir;
  // Extra URL prefix -> folder mappings (the conformance suite's http://localhost:1234/).
  std::vector<std::pair<std::string, std::string>> url_map;
  // Schemas a "$ref" may name, given here rather than read (a registry's schema
  // references): name -> JSON text. A relative name also answers to itself resolved
  // against the schema's "$id" (or the default base, json-schema:///).
  std::vector<std::pair<std::string, std::string>> documents;
  // The draft of a schema without "$schema": "draft-04", "draft-06", "draft-07" (the
  // default when empty), "2019-09" or "2020-12".
  std::string default_draft;
  // Refuse keywords that would not be enforced (see above). Default true.
  bool strict = true;
  // Run patterns that need backtracking, under the budget above.
  bool backtracking_patterns = false;
  uint64_t backtrack_limit = 10000;
  uint64_t backtracking_max_string_bytes = 4096;
  // "format" asserted (every draft) or, when false, an annotation (2019-09 and 2020-12's
  // default).
  bool assert_formats = true;
};

enum class Verdict {
  kValid,
  kInvalid,
  kNotJson,
  // The engine gave up on a match the verdict depends on: neither valid nor invalid.
  kBudgetExceeded,
};

// Levels of arrays and objects a JSON document may nest ("[[1]]" is 2), and its size.
constexpr int kMaxJsonDepth = 100;
constexpr size_t kMaxJsonBytes = 64u << 20;
// The most bytes of one Violation::message.
constexpr size_t kMaxViolationMessageBytes = 512;

// Whether `document` is JSON under the one parser every path uses (with or without a
// schema): INVALID_ARGUMENT (reason INVALID_JSON) saying where it is not.
Status IsJson(std::string_view document);

// One reason a document does not match.
struct Violation {
  std::string pointer;  // JSON Pointer into the document ("" is the root)
  std::string keyword;  // the schema keyword that failed ("required", "format", ...)
  std::string message;  // for a person
};

class JsonSchema {
 public:
  // Compiles schema text. INVALID_ARGUMENT (reason SCHEMA_INVALID) with the compiler's
  // message on any problem; never aborts.
  static Result<std::shared_ptr<const JsonSchema>> Compile(std::string_view text,
                                                           const CompileOptions& options);
  // Reads and compiles a regular file; "$ref"s resolve within its folder (base_uri and
  // root_dir of `options` are set from the path). The message names the file.
  static Result<std::shared_ptr<const JsonSchema>> CompileFile(const std::string& path,
                                                               CompileOptions options = {});

  ~JsonSchema();
  JsonSchema(const JsonSchema&) = delete;
  JsonSchema& operator=(const JsonSchema&) = delete;

  // The fast path: is the document JSON, and does it match?
  Verdict Check(std::string_view document) const;

  // Every violation, up to `max_violations`. A document that is not JSON gives one
  // violation with keyword "json"; one the engine could not decide, one with keyword
  // "budget". With `mask_values`, messages do not quote the
  // document's values (for logs and the rejected-records list; values may be personal).
  std::vector<Violation> Explain(std::string_view document, size_t max_violations = 100,
                                 bool mask_values = false) const;

  // "draft-07", "2020-12", ...
  std::string_view draft() const { return draft_; }

 private:
  explicit JsonSchema(::CcjsSchema* handle);
  ::CcjsSchema* handle_;
  std::string_view draft_;
};

}  // namespace cachecar::schema
