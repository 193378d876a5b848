// RegistryClient: asks a Confluent-compatible Schema Registry (Confluent's own, Apicurio's
// /apis/ccompat/v7, ...) for schemas, over HTTP with libcurl. Thread-safe: each call uses
// its own connection handle.
//
// Answers are classed so the caller can tell "the registry does not know this" (final:
// the record's schema id is unknown) from "the registry did not answer" (retry later: a
// record must never be skipped only because the registry was briefly away).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace cachecar::registry {

// A schema's reference to another subject's version: an Avro named type, an imported
// .proto file or a JSON Schema "$ref" URL, by `name`.
struct SchemaReference {
  std::string name;
  std::string subject;
  int32_t version = 0;
};

// A schema as the registry describes it.
struct RegisteredSchema {
  int32_t id = 0;
  std::string type = "AVRO";  // JSON, AVRO or PROTOBUF (the API omits it for Avro)
  std::string schema;         // its text
  std::vector<SchemaReference> references;
  // Known when asked by subject (LatestOf); 0 and empty otherwise.
  int32_t version = 0;
  std::string subject;
};

// The most bytes of one answer: a larger one is an error, not a schema.
inline constexpr size_t kMaxResponseBytes = 16u << 20;
// The most references one schema may make (a larger list is an error, not a schema).
inline constexpr size_t kMaxReferences = 64;
// The most subject versions one schema id may be listed under (more are left out).
inline constexpr size_t kMaxSubjectVersions = 1000;

// One subject version a schema id is registered as.
struct SubjectAndVersion {
  std::string subject;
  int32_t version = 0;
};

class RegistryClient {
 public:
  explicit RegistryClient(const config::RegistryConfig& config);

  // GET /schemas/ids/{id}. NOT_FOUND (reason REGISTRY_SCHEMA_NOT_FOUND) if the registry
  // answers that it has no such id; UNAVAILABLE (REGISTRY_UNAVAILABLE) if it cannot be
  // reached, times out or answers 5xx; INTERNAL (REGISTRY_BAD_ANSWER) for an answer that
  // is not a schema.
  Result<RegisteredSchema> SchemaById(int32_t id) const;
  // GET /subjects/{subject}/versions/latest; the same classes (NOT_FOUND: no such subject).
  Result<RegisteredSchema> LatestOf(const std::string& subject) const;
  // GET /subjects/{subject}/versions/{version}: a reference's target. NOT_FOUND (reason
  // REGISTRY_SUBJECT_NOT_FOUND) if the registry has no such version.
  Result<RegisteredSchema> VersionOf(const std::string& subject, int32_t version) const;
  // GET /schemas/ids/{id}/versions: the subject versions the id is registered as (at most
  // kMaxSubjectVersions), classed as SchemaById (a registry without the endpoint: NOT_FOUND).
  Result<std::vector<SubjectAndVersion>> SubjectVersionsOf(int32_t id) const;

  const std::string& url() const { return config_.url; }

 private:
  // The answer's status and body; UNAVAILABLE without an HTTP answer.
  Result<std::pair<long, std::string>> Get(const std::string& path) const;
  // A subject's version ("latest" or a number), classed as LatestOf says.
  Result<RegisteredSchema> SubjectVersion(const std::string& subject,
                                          const std::string& version) const;

  const config::RegistryConfig config_;
};

}  // namespace cachecar::registry
