#include "registry/registry_client.h"

#include <curl/curl.h>

#include <climits>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

namespace cachecar::registry {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * n > kMaxResponseBytes) return 0;  // aborts the transfer
  body->append(data, size * n);
  return size * n;
}

std::string Escape(CURL* curl, const std::string& s) {
  char* e = curl_easy_escape(curl, s.data(), static_cast<int>(s.size()));
  std::string out = e != nullptr ? e : "";
  curl_free(e);
  return out;
}

Status BadAnswer(const std::string& what) {
  return Status(Code::kInternal, "the schema registry's answer " + what, "REGISTRY_BAD_ANSWER");
}

Result<RegisteredSchema> ParseSchema(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return BadAnswer("is not a JSON object");
  RegisteredSchema s;
  auto schema = j.find("schema");
  if (schema == j.end() || !schema->is_string()) return BadAnswer("has no \"schema\" string");
  s.schema = schema->get<std::string>();
  if (auto t = j.find("schemaType"); t != j.end()) {
    if (!t->is_string()) return BadAnswer("has a \"schemaType\" that is not a string");
    s.type = t->get<std::string>();
  }
  if (auto refs = j.find("references"); refs != j.end() && !refs->is_null()) {
    if (!refs->is_array()) return BadAnswer("has \"references\" that are not an array");
    if (refs->size() > kMaxReferences) {
      return BadAnswer("has " + std::to_string(refs->size()) + " references, over " +
                       std::to_string(kMaxReferences));
    }
    for (const auto& r : *refs) {
      auto name = r.find("name");
      auto subject = r.find("subject");
      auto version = r.find("version");
      if (!r.is_object() || name == r.end() || !name->is_string() || subject == r.end() ||
          !subject->is_string() || version == r.end() || !version->is_number_integer()) {
        return BadAnswer("has a reference without a string \"name\" and \"subject\" and "
                         "an integer \"version\"");
      }
      const int64_t v = version->get<int64_t>();
      if (v < -1 || v > INT32_MAX) return BadAnswer("has a reference to version " +
                                                    std::to_string(v));
      s.references.push_back(
          {name->get<std::string>(), subject->get<std::string>(), static_cast<int32_t>(v)});
    }
  }
  if (auto id = j.find("id"); id != j.end() && id->is_number_integer()) {
    s.id = id->get<int32_t>();
  }
  if (auto v = j.find("version"); v != j.end() && v->is_number_integer()) {
    s.version = v->get<int32_t>();
  }
  if (auto sub = j.find("subject"); sub != j.end() && sub->is_string()) {
    s.subject = sub->get<std::string>();
  }
  return s;
}

// The registry's error for a 4xx, without quoting more than a line of it.
std::string ErrorText(long code, const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  std::string msg;
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    msg = j["message"].get<std::string>();
  }
  if (msg.size() > 300) msg = msg.substr(0, 300) + "...";
  return "HTTP " + std::to_string(code) + (msg.empty() ? "" : ": " + msg);
}

}  // namespace

RegistryClient::RegistryClient(const config::RegistryConfig& config) : config_(config) {
  GlobalInit();
}

Result<std::pair<long, std::string>> RegistryClient::Get(const std::string& path) const {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                           &curl_easy_cleanup);
  if (!curl) return Status(Code::kInternal, "curl_easy_init failed", "REGISTRY_UNAVAILABLE");
  std::string base = config_.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = base + path;
  std::string body;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded process
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  struct curl_slist* headers = curl_slist_append(
      nullptr, "Accept: application/vnd.schemaregistry.v1+json, application/json");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           &curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  if (!config_.username.empty() || !config_.password.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, config_.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, config_.password.c_str());
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_WRITE_ERROR) {
    return BadAnswer("is over " + std::to_string(kMaxResponseBytes) + " bytes");
  }
  if (rc != CURLE_OK) {
    return Status(Code::kUnavailable,
                  "the schema registry at " + config_.url + " did not answer: " +
                      curl_easy_strerror(rc),
                  "REGISTRY_UNAVAILABLE");
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  return std::make_pair(code, std::move(body));
}

Result<RegisteredSchema> RegistryClient::SchemaById(int32_t id) const {
  Result<std::pair<long, std::string>> got = Get("/schemas/ids/" + std::to_string(id));
  if (!got.ok()) return got.status();
  auto& [code, body] = *got;
  if (code == 200) {
    Result<RegisteredSchema> s = ParseSchema(body);
    if (s.ok()) s->id = id;
    return s;
  }
  if (code >= 400 && code < 500 && code != 401 && code != 403 && code != 408 && code != 429) {
    return NotFound("the schema registry has no schema with id " + std::to_string(id) + " (" +
                        ErrorText(code, body) + ")",
                    "REGISTRY_SCHEMA_NOT_FOUND");
  }
  // 5xx, and refusals that may pass (credentials being rotated, rate limits): ask again.
  return Status(Code::kUnavailable,
                "the schema registry did not give schema id " + std::to_string(id) + ": " +
                    ErrorText(code, body),
                "REGISTRY_UNAVAILABLE");
}

Result<std::vector<SubjectAndVersion>> RegistryClient::SubjectVersionsOf(int32_t id) const {
  Result<std::pair<long, std::string>> got =
      Get("/schemas/ids/" + std::to_string(id) + "/versions");
  if (!got.ok()) return got.status();
  auto& [code, body] = *got;
  if (code == 200) {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_array()) return BadAnswer("for the versions of schema id " + std::to_string(id) +
                                        " is not a JSON array");
    std::vector<SubjectAndVersion> out;
    for (const auto& v : j) {
      if (out.size() >= kMaxSubjectVersions) break;
      const bool good = v.is_object() && v.contains("subject") && v["subject"].is_string() &&
                        v.contains("version") && v["version"].is_number_integer() &&
                        v["version"] >= 1 && v["version"] <= INT32_MAX;
      if (!good) {
        return BadAnswer("for the versions of schema id " + std::to_string(id) +
                         " has an item without a string \"subject\" and a positive "
                         "\"version\"");
      }
      out.push_back({v["subject"].get<std::string>(), v["version"].get<int32_t>()});
    }
    return out;
  }
  if (code >= 400 && code < 500 && code != 401 && code != 403 && code != 408 && code != 429) {
    return NotFound("the schema registry lists no subject versions for schema id " +
                        std::to_string(id) + " (" + ErrorText(code, body) + ")",
                    "REGISTRY_SCHEMA_NOT_FOUND");
  }
  return Status(Code::kUnavailable,
                "the schema registry did not give the versions of schema id " +
                    std::to_string(id) + ": " + ErrorText(code, body),
                "REGISTRY_UNAVAILABLE");
}

Result<RegisteredSchema> RegistryClient::LatestOf(const std::string& subject) const {
  return SubjectVersion(subject, "latest");
}

Result<RegisteredSchema> RegistryClient::VersionOf(const std::string& subject,
                                                   int32_t version) const {
  // -1 is Confluent's "latest" in a reference.
  return SubjectVersion(subject, version == -1 ? "latest" : std::to_string(version));
}

Result<RegisteredSchema> RegistryClient::SubjectVersion(const std::string& subject,
                                                        const std::string& version) const {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                           &curl_easy_cleanup);
  const std::string escaped = curl ? Escape(curl.get(), subject) : subject;
  const std::string what = version == "latest" ? "the latest schema of subject " + subject
                                               : "version " + version + " of subject " + subject;
  Result<std::pair<long, std::string>> got = Get("/subjects/" + escaped + "/versions/" + version);
  if (!got.ok()) return got.status();
  auto& [code, body] = *got;
  if (code == 200) {
    Result<RegisteredSchema> s = ParseSchema(body);
    if (s.ok() && s->id == 0) return BadAnswer("for " + what + " has no \"id\"");
    return s;
  }
  if (code >= 400 && code < 500 && code != 401 && code != 403 && code != 408 && code != 429) {
    const std::string missing = version == "latest" ? "subject " + subject : what;
    return NotFound("the schema registry has no " + missing + " (" + ErrorText(code, body) + ")",
                    "REGISTRY_SUBJECT_NOT_FOUND");
  }
  return Status(Code::kUnavailable,
                "the schema registry did not give " + what + ": " + ErrorText(code, body),
                "REGISTRY_UNAVAILABLE");
}

}  // namespace cachecar::registry
