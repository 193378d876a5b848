// SchemaCache: the Schema Registry schemas of value_format: registry topics, by id, asked
// of the registry once and then kept in memory; the ones fetched are handed to the
// materializer (TakeFetched) to be stored with the records they decoded, and given back
// at the next start (Seed), so a restart decodes them while the registry is down.
// Thread-safe (the materializer reads records, the RPC threads encode Puts).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "metrics/stats.h"
#include "registry/avro_codec.h"
#include "registry/protobuf_codec.h"
#include "registry/registry_client.h"
#include "schema/json_schema.h"

namespace cachecar::registry {

// clang-format off
#define CACHECAR_REGISTRY_METRICS(COUNTER, GAUGE, COUNTER_FAMILY, GAUGE_FAMILY, HISTOGRAM_FAMILY) \
  COUNTER_FAMILY(requests, "cachecar_registry_requests_total",                              \
                 "Requests to the schema registry, by result: ok, not_found, unavailable, "  \
                 "bad_answer.")                                                              \
  COUNTER_FAMILY(lookups, "cachecar_registry_schema_lookups_total",                         \
                 "Schema ids looked up for records and writes, by result: hit (in memory) "  \
                 "or miss (asked of the registry).")                                         \
  GAUGE(up, "cachecar_registry_up",                                                         \
        "1 if the schema registry answered the last request, 0 if it could not be reached " \
        "(the partitions waiting on it say so in their readiness).")                        \
  GAUGE(cached, "cachecar_registry_schemas_cached", "Schemas held in memory, by id.")
// clang-format on
CACHECAR_STATS_STRUCT(RegistryStats, CACHECAR_REGISTRY_METRICS);

// One schema as a topic uses it.
struct ResolvedSchema {
  int32_t id = 0;
  std::string type;  // JSON, AVRO, PROTOBUF
  int32_t version = 0;  // known for the schema Puts use only
  // One of these, by type: a JSON Schema (compiled with the topic's schema options), an
  // Avro writer schema, or a .proto, each with the schemas it refers to. All null when
  // `unusable` says why records under this id cannot be decoded here (another type, a
  // reference the registry lacks or that loops, does not compile).
  std::shared_ptr<const schema::JsonSchema> json;
  std::shared_ptr<const AvroSchema> avro;
  std::shared_ptr<const ProtobufSchema> protobuf;
  std::string unusable;
};

class SchemaCache {
 public:
  static constexpr std::chrono::milliseconds kAwayFor{1000};
  // References are followed this many levels deep, and at most kMaxReferences schemas in
  // all are fetched for one: a registry whose references go on is not followed forever.
  static constexpr int kMaxReferenceDepth = 16;

  // `client` is not owned and must outlive this. `registry` may be null (no metrics).
  SchemaCache(const config::Config& config, RegistryClient* client,
              prometheus::Registry* registry);

  // The schema `id` as topic `topic` uses it: from memory, else asked of the registry.
  // NOT_FOUND (reason REGISTRY_SCHEMA_NOT_FOUND): the registry does not know the id;
  // UNAVAILABLE (REGISTRY_UNAVAILABLE) or INTERNAL (REGISTRY_BAD_ANSWER): ask again later.
  Result<std::shared_ptr<const ResolvedSchema>> ForRecord(size_t topic, int32_t id);
  // The schema a Put to the topic encodes with: its registry_version of registry_subject
  // (kept once had: a version does not change), else the subject's latest, asked again
  // after registry.latest_ttl_ms (a failed ask is not cached). NOT_FOUND
  // (REGISTRY_SUBJECT_NOT_FOUND) if the registry has no such subject or version.
  Result<std::shared_ptr<const ResolvedSchema>> ForPuts(size_t topic);
  // The schema a Put's or Delete's key is encoded with on a key_format: registry topic:
  // registry_key_subject's latest, held and asked again as ForPuts's.
  Result<std::shared_ptr<const ResolvedSchema>> ForPutKeys(size_t topic);
  // Which version of the topic's value subject (registry_subject) schema `id` is, as the
  // registry said when the id was first fetched (GET /schemas/ids/{id}/versions, kept in
  // the store with the schema); nullopt if it did not say, or the id is not registered
  // under that subject. Never asks the registry: cheap enough for every entry served.
  std::optional<int32_t> SubjectVersionFor(size_t topic, int32_t id);

  // Schemas kept by an earlier run (Store::LoadRegistrySchemas): those of this registry
  // are known without asking. Entries that do not parse are ignored (asked again).
  void Seed(const std::map<std::string, std::string>& stored);
  // The schemas asked of the registry since the last call, as store entries (key -> value
  // for WriteBatch::registry_schemas).
  std::map<std::string, std::string> TakeFetched();

 private:
  // A schema as fetched: its text and those it refers to (name -> text, each after the
  // ones it refers to itself), or why they could not be had.
  struct Raw {
    std::string type;
    std::string text;
    std::vector<std::pair<std::string, std::string>> references;
    std::string unusable;
    std::vector<registry::SubjectAndVersion> versions;  // the subject versions it is, if said
  };
  std::shared_ptr<const ResolvedSchema> Compile(size_t topic, int32_t id, const Raw& raw,
                                                int32_t version) const;
  // ForPuts (key false) and ForPutKeys (key true): `version` of `subject`, 0 the latest.
  Result<std::shared_ptr<const ResolvedSchema>> Latest(size_t topic, bool key,
                                                       const std::string& subject,
                                                       int32_t version);
  // `got` with its references fetched (outside the lock: it may wait). Not OK only if the
  // registry did not answer (ask again later); a reference it lacks, a loop or too many
  // levels make the schema unusable instead.
  Result<Raw> Fetch(const RegisteredSchema& got);
  Status FollowReferences(const std::vector<SchemaReference>& refs, const std::string& type,
                          int depth, std::vector<std::string>* open, Raw* raw);
  // The schema as kept in the store (Seed reads it back).
  static std::string Stored(const Raw& raw);
  std::string StoreKey(int32_t id) const;
  // Counts an answer; one that did not come marks the registry away (AwayNow), unless
  // `away_if_unavailable` is false (an optional detail that held nothing up).
  void Answered(const Status& st, bool away_if_unavailable = true);
  // UNAVAILABLE while the registry is taken to be away (see away_until_), else OK.
  Status AwayNow();

  const config::Config& config_;
  RegistryClient* const client_;
  RegistryStats stats_{};
  bool has_stats_ = false;
  // The lookups' two series, resolved once: one is counted for every record.
  prometheus::Counter* hits_ = nullptr;
  prometheus::Counter* misses_ = nullptr;

  std::mutex mu_;
  std::map<int32_t, Raw> raw_;                                           // guarded by mu_
  std::map<std::pair<size_t, int32_t>, std::shared_ptr<const ResolvedSchema>> compiled_;  // mu_
  // (topic, key subject?) -> when it was asked, and the answer.
  std::map<std::pair<size_t, bool>, std::pair<std::chrono::steady_clock::time_point,
                                              std::shared_ptr<const ResolvedSchema>>>
      latest_;  // guarded by mu_
  std::map<std::string, std::string> fetched_;                           // guarded by mu_
  // After the registry did not answer, misses fail at once until then rather than each
  // waiting out registry.timeout_ms (so a registry that drops packets costs the writer one
  // timeout per kAwayFor, not one per partition).
  std::chrono::steady_clock::time_point away_until_{};                  // guarded by mu_
};

}  // namespace cachecar::registry
