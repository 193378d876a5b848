#include "registry/schema_cache.h"

#include <algorithm>
#include <climits>

#include <nlohmann/json.hpp>

#include "schema/schema_set.h"

namespace cachecar::registry {

SchemaCache::SchemaCache(const config::Config& config, RegistryClient* client,
                         prometheus::Registry* registry)
    : config_(config), client_(client) {
  if (registry != nullptr) {
    stats_ = RegistryStats::Register(*registry);
    has_stats_ = true;
    stats_.up->Set(1);
    hits_ = &stats_.lookups->Add({{"result", "hit"}});
    misses_ = &stats_.lookups->Add({{"result", "miss"}});
  }
}

std::string SchemaCache::StoreKey(int32_t id) const {
  return client_->url() + "#" + std::to_string(id);
}

Status SchemaCache::AwayNow() {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::chrono::steady_clock::now() >= away_until_) return Status::Ok();
  return Status(Code::kUnavailable,
                "the schema registry at " + client_->url() +
                    " did not answer a moment ago; it is asked again shortly",
                "REGISTRY_UNAVAILABLE");
}

void SchemaCache::Answered(const Status& st, bool away_if_unavailable) {
  if (st.code() == Code::kUnavailable && away_if_unavailable) {
    std::lock_guard<std::mutex> lock(mu_);
    away_until_ = std::chrono::steady_clock::now() + kAwayFor;
  }
  if (!has_stats_) return;
  const char* result = "ok";
  if (!st.ok()) {
    result = st.code() == Code::kNotFound      ? "not_found"
             : st.code() == Code::kUnavailable ? "unavailable"
                                               : "bad_answer";
  }
  stats_.requests->Add({{"result", result}}).Increment();
  stats_.up->Set(st.code() == Code::kUnavailable ? 0 : 1);
}

std::shared_ptr<const ResolvedSchema> SchemaCache::Compile(size_t topic, int32_t id,
                                                           const Raw& raw,
                                                           int32_t version) const {
  auto r = std::make_shared<ResolvedSchema>();
  r->id = id;
  r->type = raw.type;
  r->version = version;
  if (raw.type != "JSON" && raw.type != "AVRO" && raw.type != "PROTOBUF") {
    r->unusable = "schema id " + std::to_string(id) + " is of type " + raw.type.substr(0, 64) +
                  "; cachecar decodes JSON, AVRO and PROTOBUF";
  } else if (!raw.unusable.empty()) {
    r->unusable = "schema id " + std::to_string(id) + " " + raw.unusable;
  } else if (raw.type == "PROTOBUF") {
    Result<std::shared_ptr<const ProtobufSchema>> p =
        ProtobufSchema::Compile(raw.text, raw.references);
    if (p.ok()) {
      r->protobuf = *p;
    } else {
      r->unusable = "schema id " + std::to_string(id) +
                    " does not compile here: " + p.status().message();
    }
  } else if (raw.type == "AVRO") {
    Result<std::shared_ptr<const AvroSchema>> a = AvroSchema::Compile(raw.text, raw.references);
    if (a.ok()) {
      r->avro = *a;
    } else {
      r->unusable = "schema id " + std::to_string(id) +
                    " does not compile here: " + a.status().message();
    }
  } else {
    schema::CompileOptions options =
        schema::CompileOptionsFor(config_.topics.at(topic), config_.schemas);
    options.documents = raw.references;
    Result<std::shared_ptr<const schema::JsonSchema>> c =
        schema::JsonSchema::Compile(raw.text, options);
    if (c.ok()) {
      r->json = *c;
    } else {
      r->unusable = "schema id " + std::to_string(id) +
                    " does not compile here: " + c.status().message();
    }
  }
  return r;
}

Result<std::shared_ptr<const ResolvedSchema>> SchemaCache::ForRecord(size_t topic, int32_t id) {
  const auto key = std::make_pair(topic, id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = compiled_.find(key); it != compiled_.end()) {
      if (hits_ != nullptr) hits_->Increment();
      return it->second;
    }
    if (auto it = raw_.find(id); it != raw_.end()) {
      if (hits_ != nullptr) hits_->Increment();
      auto c = Compile(topic, id, it->second, 0);
      compiled_.emplace(key, c);
      return c;
    }
  }
  if (misses_ != nullptr) misses_->Increment();
  if (Status away = AwayNow(); !away.ok()) return away;
  Result<RegisteredSchema> got = client_->SchemaById(id);  // outside the lock: it may wait
  Answered(got.status());
  if (!got.ok()) return got.status();
  Result<Raw> raw = Fetch(*got);
  if (!raw.ok()) return raw.status();
  // Which subject versions it is: a detail for the entries, so a registry that does not
  // say (or has no such endpoint) leaves it unknown rather than holding the record up.
  Result<std::vector<SubjectAndVersion>> versions = client_->SubjectVersionsOf(id);
  Answered(versions.status(), /*away_if_unavailable=*/false);
  if (versions.ok()) raw->versions = std::move(*versions);
  auto c = Compile(topic, id, *raw, 0);
  std::lock_guard<std::mutex> lock(mu_);
  // One that cannot be used is asked again after a restart (the registry may be mended).
  if (raw->unusable.empty()) fetched_[StoreKey(id)] = Stored(*raw);
  raw_.emplace(id, std::move(*raw));
  compiled_.emplace(key, c);
  if (has_stats_) stats_.cached->Set(static_cast<double>(raw_.size()));
  return c;
}

Result<std::shared_ptr<const ResolvedSchema>> SchemaCache::ForPuts(size_t topic) {
  const config::TopicConfig& t = config_.topics.at(topic);
  return Latest(topic, false, t.registry_subject, t.registry_version);
}

Result<std::shared_ptr<const ResolvedSchema>> SchemaCache::ForPutKeys(size_t topic) {
  const config::TopicConfig& t = config_.topics.at(topic);
  return Latest(topic, true, t.registry_key_subject, 0);
}

Result<std::shared_ptr<const ResolvedSchema>> SchemaCache::Latest(size_t topic, bool key,
                                                                  const std::string& subject,
                                                                  int32_t version) {
  const auto now = std::chrono::steady_clock::now();
  const std::chrono::milliseconds ttl(config_.registry.latest_ttl_ms);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = latest_.find({topic, key});
        it != latest_.end() && (version > 0 || now - it->second.first < ttl)) {
      if (hits_ != nullptr) hits_->Increment();
      return it->second.second;
    }
  }
  if (misses_ != nullptr) misses_->Increment();
  if (Status away = AwayNow(); !away.ok()) return away;
  Result<RegisteredSchema> got =
      version > 0 ? client_->VersionOf(subject, version) : client_->LatestOf(subject);
  Answered(got.status());
  if (!got.ok()) return got.status();
  Result<Raw> raw = Fetch(*got);
  if (!raw.ok()) return raw.status();
  auto c = Compile(topic, got->id, *raw, got->version);
  std::lock_guard<std::mutex> lock(mu_);
  latest_[{topic, key}] = {now, c};
  if (raw_.count(got->id) == 0) {  // the records written with it decode without asking
    raw->versions.push_back({subject, got->version});
    if (raw->unusable.empty()) fetched_[StoreKey(got->id)] = Stored(*raw);
    raw_.emplace(got->id, std::move(*raw));
    if (has_stats_) stats_.cached->Set(static_cast<double>(raw_.size()));
  }
  return c;
}

void SchemaCache::Seed(const std::map<std::string, std::string>& stored) {
  const std::string prefix = client_->url() + "#";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, value] : stored) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;  // another registry's
    int32_t id = 0;
    try {
      size_t used = 0;
      long long parsed = std::stoll(key.substr(prefix.size()), &used);
      if (used != key.size() - prefix.size() || parsed < INT32_MIN || parsed > INT32_MAX) {
        continue;
      }
      id = static_cast<int32_t>(parsed);
    } catch (const std::exception&) {
      continue;
    }
    nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string() ||
        !j.contains("schema") || !j["schema"].is_string()) {
      continue;
    }
    Raw raw{j["type"].get<std::string>(), j["schema"].get<std::string>(), {}, {}, {}};
    bool whole = true;
    if (auto refs = j.find("references"); refs != j.end() && *refs != false) {
      // An array of {name, schema}; anything else (true: kept by a cachecar that did not
      // follow references) is asked again.
      whole = refs->is_array();
      for (const auto& r : whole ? *refs : nlohmann::json::array()) {
        if (!r.is_object() || !r.contains("name") || !r["name"].is_string() ||
            !r.contains("schema") || !r["schema"].is_string()) {
          whole = false;
          break;
        }
        raw.references.emplace_back(r["name"].get<std::string>(),
                                    r["schema"].get<std::string>());
      }
    }
    if (auto versions = j.find("versions"); versions != j.end() && versions->is_array()) {
      for (const auto& v : *versions) {
        if (v.is_object() && v.contains("subject") && v["subject"].is_string() &&
            v.contains("version") && v["version"].is_number_integer() &&
            v["version"] >= 1 && v["version"] <= INT32_MAX) {
          raw.versions.push_back({v["subject"].get<std::string>(), v["version"].get<int32_t>()});
        }
      }
    }
    if (whole) raw_.emplace(id, std::move(raw));
  }
  if (has_stats_) stats_.cached->Set(static_cast<double>(raw_.size()));
}

std::string SchemaCache::Stored(const Raw& raw) {
  nlohmann::json refs = nlohmann::json::array();
  for (const auto& [name, text] : raw.references) {
    refs.push_back({{"name", name}, {"schema", text}});
  }
  nlohmann::json j = {{"type", raw.type}, {"schema", raw.text}, {"references", refs}};
  if (!raw.versions.empty()) {
    nlohmann::json versions = nlohmann::json::array();
    for (const SubjectAndVersion& v : raw.versions) {
      versions.push_back({{"subject", v.subject}, {"version", v.version}});
    }
    j["versions"] = std::move(versions);
  }
  return j.dump();
}

std::optional<int32_t> SchemaCache::SubjectVersionFor(size_t topic, int32_t id) {
  const std::string& subject = config_.topics.at(topic).registry_subject;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = raw_.find(id);
  if (it == raw_.end()) return std::nullopt;
  for (const registry::SubjectAndVersion& v : it->second.versions) {
    if (v.subject == subject) return v.version;
  }
  return std::nullopt;
}

Result<SchemaCache::Raw> SchemaCache::Fetch(const RegisteredSchema& got) {
  Raw raw{got.type, got.schema, {}, {}, {}};
  std::vector<std::string> open;
  Status st = FollowReferences(got.references, got.type, 0, &open, &raw);
  if (!st.ok()) return st;
  if (!raw.unusable.empty()) raw.references.clear();
  return raw;
}

Status SchemaCache::FollowReferences(const std::vector<SchemaReference>& refs,
                                     const std::string& type, int depth,
                                     std::vector<std::string>* open, Raw* raw) {
  for (const SchemaReference& ref : refs) {
    if (!raw->unusable.empty()) return Status::Ok();
    const std::string what = ref.name.substr(0, 200) + " (subject " +
                             ref.subject.substr(0, 200) + " version " +
                             std::to_string(ref.version) + ")";
    bool had = false;
    for (const auto& [name, text] : raw->references) had = had || name == ref.name;
    if (had) continue;  // two paths to one schema: fetched once
    const std::string at = ref.subject + "\n" + std::to_string(ref.version);
    if (std::find(open->begin(), open->end(), at) != open->end()) {
      raw->unusable = "has references that form a cycle (through " + what + ")";
      return Status::Ok();
    }
    if (depth >= kMaxReferenceDepth) {
      raw->unusable = "has references nested more than " +
                      std::to_string(kMaxReferenceDepth) + " deep (at " + what + ")";
      return Status::Ok();
    }
    if (raw->references.size() >= kMaxReferences) {
      raw->unusable = "refers to more than " + std::to_string(kMaxReferences) +
                      " schemas in all";
      return Status::Ok();
    }
    if (Status away = AwayNow(); !away.ok()) return away;
    Result<RegisteredSchema> got = client_->VersionOf(ref.subject, ref.version);
    Answered(got.status());
    if (got.status().code() == Code::kNotFound) {
      raw->unusable = "refers to " + what + ", which the registry does not have";
      return Status::Ok();
    }
    if (!got.ok()) return got.status();
    if (got->type != type) {
      std::string& u = raw->unusable;
      u.append("(").append(type).append(") refers to ").append(what);
      u.append(", a ").append(got->type.substr(0, 64)).append(" schema");
      return Status::Ok();
    }
    open->push_back(at);
    Status st = FollowReferences(got->references, type, depth + 1, open, raw);
    open->pop_back();
    if (!st.ok()) return st;
    if (!raw->unusable.empty()) return Status::Ok();
    raw->references.emplace_back(ref.name, got->schema);  // after the ones it refers to
  }
  return Status::Ok();
}

std::map<std::string, std::string> SchemaCache::TakeFetched() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(fetched_, {});
}

}  // namespace cachecar::registry
