#include "schema/json_schema.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

extern "C" {
// jsonschema_ffi/src/lib.rs
::CcjsSchema* ccjs_compile(const char* schema, size_t schema_len, const char* options,
                       size_t options_len, char** error);
void ccjs_schema_free(::CcjsSchema* schema);
const char* ccjs_schema_draft(const ::CcjsSchema* schema);
int ccjs_check(const ::CcjsSchema* schema, const char* doc, size_t len);
int ccjs_json_check(const char* doc, size_t len, char** error);
char* ccjs_explain(const ::CcjsSchema* schema, const char* doc, size_t len, size_t max_errors,
                   int mask_values);
void ccjs_string_free(char* s);
}

namespace cachecar::schema {

namespace {

constexpr size_t kMaxSchemaFileBytes = 4 << 20;

// Owns a string the Rust side allocated.
struct RustString {
  char* p = nullptr;
  ~RustString() { ccjs_string_free(p); }
};

std::string FileUri(const std::filesystem::path& p) {
  // Percent-encode what a URI path cannot hold; the Rust side decodes it back.
  std::string out = "file://";
  for (unsigned char c : p.string()) {
    if (std::isalnum(c) || std::string_view("/-._~").find(static_cast<char>(c)) != std::string_view::npos) {
      out.push_back(static_cast<char>(c));
    } else {
      static const char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Status SchemaError(std::string message) {
  return Status(Code::kInvalidArgument, std::move(message), "SCHEMA_INVALID");
}

}  // namespace

JsonSchema::JsonSchema(::CcjsSchema* handle) : handle_(handle), draft_(ccjs_schema_draft(handle)) {}

JsonSchema::~JsonSchema() { ccjs_schema_free(handle_); }

Result<std::shared_ptr<const JsonSchema>> JsonSchema::Compile(std::string_view text,
                                                              const CompileOptions& options) {
  nlohmann::json o = nlohmann::json::object();
  if (!options.base_uri.empty()) o["base_uri"] = options.base_uri;
  if (!options.root_dir.empty()) o["root_dir"] = options.root_dir;
  if (!options.default_draft.empty()) o["default_draft"] = options.default_draft;
  o["strict"] = options.strict;
  o["backtracking_patterns"] = options.backtracking_patterns;
  o["backtrack_limit"] = options.backtrack_limit;
  o["backtracking_max_string_bytes"] = options.backtracking_max_string_bytes;
  o["assert_formats"] = options.assert_formats;
  if (!options.url_map.empty()) {
    nlohmann::json m = nlohmann::json::object();
    for (const auto& [prefix, dir] : options.url_map) m[prefix] = dir;
    o["url_map"] = std::move(m);
  }
  if (!options.documents.empty()) {
    nlohmann::json d = nlohmann::json::object();
    for (const auto& [uri, text] : options.documents) d[uri] = text;
    o["documents"] = std::move(d);
  }
  // Paths are bytes to us but must be UTF-8 to nlohmann's dump; replace what is not.
  std::string opts = o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  RustString error;
  ::CcjsSchema* handle = ccjs_compile(text.data(), text.size(), opts.data(), opts.size(), &error.p);
  if (handle == nullptr) {
    return SchemaError(error.p != nullptr ? error.p : "schema refused");
  }
  return std::shared_ptr<const JsonSchema>(new JsonSchema(handle));
}

Result<std::shared_ptr<const JsonSchema>> JsonSchema::CompileFile(const std::string& path,
                                                                  CompileOptions options) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) return SchemaError(path + ": " + ec.message());
  // Never open a FIFO or device: reading one could block the load for ever.
  if (!std::filesystem::is_regular_file(abs, ec)) {
    return SchemaError(path + ": " + (ec ? ec.message() : "not a regular file"));
  }
  auto size = std::filesystem::file_size(abs, ec);
  if (ec) return SchemaError(path + ": " + ec.message());
  if (size > kMaxSchemaFileBytes) {
    return SchemaError(path + ": larger than " + std::to_string(kMaxSchemaFileBytes) + " bytes");
  }
  std::ifstream in(abs, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return SchemaError(path + ": cannot be read");
  }
  options.base_uri = FileUri(abs);
  options.root_dir = abs.parent_path().string();
  Result<std::shared_ptr<const JsonSchema>> r = Compile(ss.str(), options);
  if (!r.ok()) {
    return SchemaError(path + ": " + r.status().message());
  }
  return r;
}

Status IsJson(std::string_view document) {
  RustString error;
  if (ccjs_json_check(document.data(), document.size(), &error.p) == 0) return Status::Ok();
  return Status(Code::kInvalidArgument,
                std::string("not JSON: ") + (error.p != nullptr ? error.p : "refused"),
                "INVALID_JSON");
}

Verdict JsonSchema::Check(std::string_view document) const {
  switch (ccjs_check(handle_, document.data(), document.size())) {
    case 0:
      return Verdict::kValid;
    case 2:
      return Verdict::kNotJson;
    case 4:
      return Verdict::kBudgetExceeded;
    default:
      return Verdict::kInvalid;  // 1, or 3 (a validator bug): never serve it
  }
}

std::vector<Violation> JsonSchema::Explain(std::string_view document, size_t max_violations,
                                           bool mask_values) const {
  RustString out;
  out.p = ccjs_explain(handle_, document.data(), document.size(), max_violations,
                       mask_values ? 1 : 0);
  std::vector<Violation> violations;
  nlohmann::json j = nlohmann::json::parse(out.p != nullptr ? out.p : "", nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    violations.push_back({"", "internal", "the validator gave no explanation"});
    return violations;
  }
  if (j.contains("budget")) {
    violations.push_back({j.value("pointer", ""), "budget", j["budget"].get<std::string>()});
    return violations;
  }
  if (j.contains("json_error")) {
    violations.push_back({"", "json", "not JSON: " + j["json_error"].get<std::string>()});
    return violations;
  }
  for (const auto& e : j.value("errors", nlohmann::json::array())) {
    violations.push_back({e.value("pointer", ""), e.value("keyword", ""), e.value("message", "")});
  }
  return violations;
}

}  // namespace cachecar::schema
