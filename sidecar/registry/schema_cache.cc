#include "registry/schema_cache.h"

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

void SchemaCache::Answered(const Status& st) {
  if (st.code() == Code::kUnavailable) {
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
  } else if (raw.has_references) {
    r->unusable = "schema id " + std::to_string(id) +
                  " refers to other schemas; schema references are not supported yet";
  } else if (raw.type == "PROTOBUF") {
    Result<std::shared_ptr<const ProtobufSchema>> p = ProtobufSchema::Compile(raw.text);
    if (p.ok()) {
      r->protobuf = *p;
    } else {
      r->unusable = "schema id " + std::to_string(id) +
                    " does not compile here: " + p.status().message();
    }
  } else if (raw.type == "AVRO") {
    Result<std::shared_ptr<const AvroSchema>> a = AvroSchema::Compile(raw.text);
    if (a.ok()) {
      r->avro = *a;
    } else {
      r->unusable = "schema id " + std::to_string(id) +
                    " does not compile here: " + a.status().message();
    }
  } else {
    Result<std::shared_ptr<const schema::JsonSchema>> c = schema::JsonSchema::Compile(
        raw.text, schema::CompileOptionsFor(config_.topics.at(topic), config_.schemas));
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
  Raw raw{got->type, got->schema, got->has_references};
  nlohmann::json stored = {{"type", raw.type}, {"schema", raw.text},
                           {"references", raw.has_references}};
  auto c = Compile(topic, id, raw, 0);
  std::lock_guard<std::mutex> lock(mu_);
  fetched_[StoreKey(id)] = stored.dump();
  raw_.emplace(id, std::move(raw));
  compiled_.emplace(key, c);
  if (has_stats_) stats_.cached->Set(static_cast<double>(raw_.size()));
  return c;
}

Result<std::shared_ptr<const ResolvedSchema>> SchemaCache::LatestFor(size_t topic) {
  const auto now = std::chrono::steady_clock::now();
  const std::chrono::milliseconds ttl(config_.registry.latest_ttl_ms);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = latest_.find(topic); it != latest_.end() && now - it->second.first < ttl) {
      if (hits_ != nullptr) hits_->Increment();
      return it->second.second;
    }
  }
  if (misses_ != nullptr) misses_->Increment();
  if (Status away = AwayNow(); !away.ok()) return away;
  Result<RegisteredSchema> got = client_->LatestOf(config_.topics.at(topic).registry_subject);
  Answered(got.status());
  if (!got.ok()) return got.status();
  Raw raw{got->type, got->schema, got->has_references};
  auto c = Compile(topic, got->id, raw, got->version);
  std::lock_guard<std::mutex> lock(mu_);
  latest_[topic] = {now, c};
  if (raw_.count(got->id) == 0) {  // the records written with it decode without asking
    nlohmann::json stored = {{"type", raw.type}, {"schema", raw.text},
                             {"references", raw.has_references}};
    fetched_[StoreKey(got->id)] = stored.dump();
    raw_.emplace(got->id, std::move(raw));
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
    Raw raw{j["type"].get<std::string>(), j["schema"].get<std::string>(),
            j.contains("references") && j["references"].is_boolean() &&
                j["references"].get<bool>()};
    raw_.emplace(id, std::move(raw));
  }
  if (has_stats_) stats_.cached->Set(static_cast<double>(raw_.size()));
}

std::map<std::string, std::string> SchemaCache::TakeFetched() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(fetched_, {});
}

}  // namespace cachecar::registry
