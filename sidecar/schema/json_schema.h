// JsonSchema: one compiled JSON Schema, checked against JSON documents.
//
// Backed by the Rust `jsonschema` crate through a small C ABI (jsonschema_ffi/): drafts 4,
// 6, 7, 2019-09 and 2020-12, formats asserted, regexes compiled once. Compiling is strict:
// a keyword the draft does not define (so the validator would not enforce it), a keyword
// beside "$ref" in drafts 4-7 (ignored by those drafts), an unknown format, an unknown
// "$schema", or a "$ref" that leaves the schema folder is refused with a message naming the
// place. Keywords prefixed "x-" pass as annotations. A schema without "$schema" is draft-07.
//
// Thread-safe: a compiled JsonSchema is immutable; any number of threads may call Check and
// Explain at once.
#pragma once

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
  // Refuse keywords that would not be enforced (see above). Default true.
  bool strict = true;
};

enum class Verdict { kValid, kInvalid, kNotJson };

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
  // Reads and compiles a file; "$ref"s resolve within its folder. The message names the
  // file.
  static Result<std::shared_ptr<const JsonSchema>> CompileFile(const std::string& path);

  ~JsonSchema();
  JsonSchema(const JsonSchema&) = delete;
  JsonSchema& operator=(const JsonSchema&) = delete;

  // The fast path: is the document JSON, and does it match?
  Verdict Check(std::string_view document) const;

  // Every violation, up to `max_violations`. A document that is not JSON gives one
  // violation with keyword "json". With `mask_values`, messages do not quote the
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
