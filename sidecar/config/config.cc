#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>

#include "config/yaml_reader.h"

namespace cachecar::config {

const char* KeyEncodingName(KeyEncoding e) { return e == KeyEncoding::kUtf8 ? "utf-8" : "bytes"; }
const char* ValueFormatName(ValueFormat f) {
  switch (f) {
    case ValueFormat::kJson: return "json";
    case ValueFormat::kBytes: return "bytes";
    case ValueFormat::kRegistry: return "registry";
  }
  return "json";
}
const char* InvalidPolicyName(InvalidPolicy p) {
  switch (p) {
    case InvalidPolicy::kSkip:
      return "skip";
    case InvalidPolicy::kDeadLetter:
      return "dead-letter";
    case InvalidPolicy::kFail:
      return "fail";
  }
  return "skip";
}

const char* ApplyModeName(ApplyMode m) {
  return m == ApplyMode::kMergePatch ? "merge-patch" : "replace";
}

const TopicConfig* Config::FindTopic(std::string_view name) const {
  for (const auto& t : topics) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

size_t Config::kafka_topic_count() const {
  size_t n = 0;
  while (n < topics.size() && !topics[n].is_view()) ++n;
  return n;
}

bool IsValidTopicName(const std::string& name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsSecretProperty(const std::string& name) {
  static const char* const kSecretParts[] = {"password", "secret", "token", "key.pem", "jaas",
                                       "oauthbearer.config", "credentials"};
  for (const char* part : kSecretParts) {
    if (name.find(part) != std::string::npos) return true;
  }
  return false;
}

namespace {

// librdkafka properties that cachecar sets itself: letting a user change them would
// break resume, readiness or read_committed semantics.
const std::set<std::string>& ManagedProperties() {
  static const std::set<std::string> kManaged = {
      "bootstrap.servers", "metadata.broker.list", "group.id", "enable.auto.commit",
      "enable.auto.offset.store", "enable.partition.eof", "isolation.level",
      "auto.offset.reset", "group.instance.id"};
  return kManaged;
}

// Reads `field` of `node` as one of `choices` (each spelling with its value) into `out`; a
// problem naming `expected` otherwise. Absent: `out` keeps its default.
template <typename E>
void ReadChoice(YamlReader& r, const YAML::Node& node, const std::string& path,
                const char* field, std::initializer_list<std::pair<const char*, E>> choices,
                const char* expected, E* out) {
  if (!node[field]) return;
  const std::string at = path + "." + field;
  std::optional<std::string> s = r.String(at, node[field]);
  if (!s) return;
  for (const auto& [spelling, value] : choices) {
    if (*s == spelling) {
      *out = value;
      return;
    }
  }
  r.Problem(at, node[field], std::string("must be ") + expected + ", not \"" + *s + "\"");
}

// A view read from topics[i].views, before it is added after every topic.
struct PendingView {
  TopicConfig config;
  std::string path;  // "topics[0].views[1]"
  YAML::Node node;
};

// "line:column" of a node in the config file.
std::string Place(const std::string& source, const YAML::Node& n) {
  return source + ":" + std::to_string(n.Mark().line + 1) + ":" +
         std::to_string(n.Mark().column + 1);
}

void ReadViews(YamlReader& r, const YAML::Node& node, const std::string& topic_path,
               size_t topic, const TopicConfig& source, const std::string& file,
               std::vector<PendingView>* out) {
  const std::string list_path = topic_path + ".views";
  if (!node.IsSequence()) {
    r.Problem(list_path, node, "must be a list of views ({name, key})");
    return;
  }
  if (node.size() > 0 && source.value_format != ValueFormat::kJson) {
    r.Problem(list_path, node, "views need value_format: json");
    return;
  }
  if (node.size() > 0 && source.key_encoding != KeyEncoding::kUtf8) {
    r.Problem(list_path, node,
              "views need key_encoding: utf-8 (the topic's keys are written into the views' "
              "JSON values)");
    return;
  }
  for (size_t j = 0; j < node.size(); ++j) {
    PendingView v;
    v.path = list_path + "[" + std::to_string(j) + "]";
    v.node = node[j];
    if (!r.ExpectMap(v.path, v.node, {"name", "key", "max_entries_per_key"})) continue;
    TopicConfig& c = v.config;
    if (!v.node["name"]) {
      r.Problem(v.path + ".name", v.node, "required");
    } else if (auto s = r.String(v.path + ".name", v.node["name"])) {
      if (!IsValidTopicName(*s)) {
        r.Problem(v.path + ".name", v.node["name"],
                  "\"" + *s + "\" is not a valid name (1-249 of A-Z a-z 0-9 . _ -, as topics)");
      } else {
        c.name = *s;
      }
    }
    if (!v.node["key"]) {
      r.Problem(v.path + ".key", v.node, "required: a jq expression giving the view keys");
    } else if (auto s = r.String(v.path + ".key", v.node["key"])) {
      if (s->find_first_not_of(" \t\r\n") == std::string::npos) {
        r.Problem(v.path + ".key", v.node["key"], "must be a jq expression");
      }
      c.view_key = *s;
      c.view_key_place = Place(file, v.node["key"]);
    }
    r.ReadUint(v.node, v.path, "max_entries_per_key", &c.view_max_entries_per_key, 1, 1000000);
    c.view_of = topic;
    c.view_topic = source.name;
    c.read_only = true;
    c.readiness = source.readiness;
    c.key_encoding = KeyEncoding::kUtf8;
    c.value_format = ValueFormat::kJson;
    c.rejected_history = 0;
    out->push_back(std::move(v));
  }
}

void ReadTopics(YamlReader& r, const YAML::Node& node, const std::filesystem::path& base_dir,
                Config* cfg) {
  if (!node) {
    r.Problem("topics", node, "required: list at least one topic");
    return;
  }
  if (!node.IsSequence() || node.size() == 0) {
    r.Problem("topics", node, "must be a non-empty list of topics");
    return;
  }
  std::set<std::string> names;
  std::vector<PendingView> views;
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node t = node[i];
    std::string path = "topics[" + std::to_string(i) + "]";
    TopicConfig tc;
    if (!r.ExpectMap(path, t,
                     {"name", "key_encoding", "value_format", "schema", "schema_patterns",
                      "schema_formats", "read_only", "on_invalid", "dead_letter_topic",
                      "max_value_bytes", "rejected_history", "readiness",
                      "retain_beyond_log", "transform", "apply", "entry_schema", "views",
                      "registry_subject", "registry_version", "keep_original", "key_format",
                      "registry_key_subject"})) {
      continue;
    }
    if (!t["name"]) {
      r.Problem(path + ".name", t, "required");
    } else if (auto s = r.String(path + ".name", t["name"])) {
      tc.name = *s;
      if (!IsValidTopicName(tc.name)) {
        r.Problem(path + ".name", t["name"],
                  "\"" + tc.name + "\" is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)");
      } else if (!names.insert(tc.name).second) {
        r.Problem(path + ".name", t["name"], "topic \"" + tc.name + "\" is listed twice");
      }
    }
    ReadChoice(r, t, path, "key_encoding",
               {{"utf-8", KeyEncoding::kUtf8}, {"utf8", KeyEncoding::kUtf8},
                {"bytes", KeyEncoding::kBytes}},
               "utf-8 or bytes", &tc.key_encoding);
    ReadChoice(r, t, path, "value_format",
               {{"json", ValueFormat::kJson}, {"bytes", ValueFormat::kBytes},
                {"registry", ValueFormat::kRegistry}},
               "json, bytes or registry", &tc.value_format);
    const bool registry = tc.value_format == ValueFormat::kRegistry;
    if (t["registry_subject"]) {
      r.ReadString(t, path, "registry_subject", &tc.registry_subject);
      if (!registry) {
        r.Problem(path + ".registry_subject", t["registry_subject"],
                  "only used with value_format: registry");
      } else if (tc.registry_subject.empty()) {
        r.Problem(path + ".registry_subject", t["registry_subject"],
                  "must name a subject (remove it for <topic>-value)");
      }
    }
    if (registry && tc.registry_subject.empty()) tc.registry_subject = tc.name + "-value";
    if (t["registry_version"]) {
      r.ReadUint(t, path, "registry_version", &tc.registry_version, 1, INT32_MAX);
      if (!registry) {
        r.Problem(path + ".registry_version", t["registry_version"],
                  "only used with value_format: registry");
      }
    }
    if (t["keep_original"]) {
      r.ReadBool(t, path, "keep_original", &tc.keep_original);
      if (!registry) {
        r.Problem(path + ".keep_original", t["keep_original"],
                  "only used with value_format: registry (other topics store values as "
                  "they come, or transformed)");
      }
    }
    if (t["key_format"]) {
      if (auto s = r.String(path + ".key_format", t["key_format"])) {
        if (*s == "registry") {
          tc.registry_keys = true;
        } else if (*s != "raw") {
          r.Problem(path + ".key_format", t["key_format"],
                    "must be raw (the key as Kafka holds it, the default) or registry, not \"" +
                        s->substr(0, 64) + "\"");
        }
      }
    }
    if (tc.registry_keys) {
      // The keys a client would give are JSON, not the wire format a producer writes, and
      // a transform, merge or view would see decoded keys: not supported yet.
      for (const char* field : {"transform", "apply", "views"}) {
        if (t[field]) {
          r.Problem(path + "." + field, t[field],
                    "not available with key_format: registry (not supported yet)");
        }
      }
    }
    if (t["registry_key_subject"]) {
      r.ReadString(t, path, "registry_key_subject", &tc.registry_key_subject);
      if (!tc.registry_keys) {
        r.Problem(path + ".registry_key_subject", t["registry_key_subject"],
                  "only used with key_format: registry");
      } else if (tc.registry_key_subject.empty()) {
        r.Problem(path + ".registry_key_subject", t["registry_key_subject"],
                  "must name a subject (remove it for <topic>-key)");
      }
    }
    if (tc.registry_keys && tc.registry_key_subject.empty()) {
      tc.registry_key_subject = tc.name + "-key";
    }
    // What registry topics do not take yet: their schema is the registry's, and the
    // decoded value does not flow through transforms, merges or views (README).
    for (const char* field : {"schema", "entry_schema", "transform", "apply", "views"}) {
      if (registry && t[field]) {
        r.Problem(path + "." + field, t[field],
                  std::string("not available with value_format: registry (") +
                      (std::string(field) == "schema"
                           ? "the schema of each record is the registry's, by its id)"
                           : "not supported for registry topics yet)"));
      }
    }
    for (const auto& [field, out] : {std::pair<const char*, std::string*>{"schema", &tc.schema_path},
                                     {"entry_schema", &tc.entry_schema_path}}) {
      if (!t[field]) continue;
      if (auto s = r.String(path + "." + field, t[field])) {
        std::filesystem::path p(*s);
        if (p.is_relative()) p = base_dir / p;
        *out = p.lexically_normal().string();
        std::error_code ec;
        if (tc.value_format != ValueFormat::kJson) {
          r.Problem(path + "." + field, t[field],
                    std::string(out == &tc.schema_path ? "a schema" : "an entry schema") +
                        " needs value_format: json");
        } else if (!std::filesystem::is_regular_file(*out, ec)) {
          r.Problem(path + "." + field, t[field],
                    "schema file " + *out + " does not exist or is not a file");
        }
      }
    }
    ReadChoice(r, t, path, "schema_patterns",
               {{"linear", SchemaPatterns::kLinear}, {"backtracking", SchemaPatterns::kBacktracking}},
               "linear or backtracking", &tc.schema_patterns);
    ReadChoice(r, t, path, "schema_formats",
               {{"assert", SchemaFormats::kAssert}, {"annotate", SchemaFormats::kAnnotate}},
               "assert or annotate", &tc.schema_formats);
    r.ReadBool(t, path, "read_only", &tc.read_only);
    r.ReadBool(t, path, "retain_beyond_log", &tc.retain_beyond_log);
    ReadChoice(r, t, path, "readiness",
               {{"required", TopicReadiness::kRequired}, {"optional", TopicReadiness::kOptional}},
               "required or optional", &tc.readiness);
    ReadChoice(r, t, path, "on_invalid",
               {{"skip", InvalidPolicy::kSkip}, {"dead-letter", InvalidPolicy::kDeadLetter},
                {"fail", InvalidPolicy::kFail}},
               "skip, dead-letter or fail", &tc.on_invalid);
    r.ReadString(t, path, "dead_letter_topic", &tc.dead_letter_topic);
    const YAML::Node dlt = t["dead_letter_topic"] ? t["dead_letter_topic"] : t;
    if (tc.on_invalid == InvalidPolicy::kDeadLetter && tc.dead_letter_topic.empty()) {
      r.Problem(path + ".dead_letter_topic", dlt, "required with on_invalid: dead-letter");
    } else if (!tc.dead_letter_topic.empty()) {
      if (tc.on_invalid != InvalidPolicy::kDeadLetter) {
        r.Problem(path + ".dead_letter_topic", dlt,
                  "only used with on_invalid: dead-letter (set it, or remove this)");
      } else if (!IsValidTopicName(tc.dead_letter_topic)) {
        r.Problem(path + ".dead_letter_topic", dlt,
                  "\"" + tc.dead_letter_topic + "\" is not a Kafka topic name");
      } else if (tc.dead_letter_topic == tc.name) {
        r.Problem(path + ".dead_letter_topic", dlt, "must not be the topic itself");
      }
    }
    r.ReadUint(t, path, "max_value_bytes", &tc.max_value_bytes, 1, 64u << 20);
    r.ReadUint(t, path, "rejected_history", &tc.rejected_history, 0, 10000);
    if (const YAML::Node tr = t["transform"]) {
      r.ReadString(t, path, "transform", &tc.transform);
      tc.transform_place = Place(cfg->source, tr);
      if (tc.transform.find_first_not_of(" \t\r\n") == std::string::npos) {
        r.Problem(path + ".transform", tr, "must be a jq filter (remove it for none)");
      } else if (tc.value_format != ValueFormat::kJson) {
        r.Problem(path + ".transform", tr, "a transform needs value_format: json");
      }
    }
    ReadChoice(r, t, path, "apply",
               {{"replace", ApplyMode::kReplace}, {"merge-patch", ApplyMode::kMergePatch}},
               "replace or merge-patch", &tc.apply);
    if (tc.apply == ApplyMode::kMergePatch && tc.value_format != ValueFormat::kJson) {
      r.Problem(path + ".apply", t["apply"], "merge-patch needs value_format: json");
    }
    cfg->topics.push_back(std::move(tc));
    if (const YAML::Node v = t["views"]) {
      ReadViews(r, v, path, cfg->topics.size() - 1, cfg->topics.back(), cfg->source, &views);
    }
  }
  // Views come after every topic: their names may not be a topic's either.
  for (PendingView& v : views) {
    if (v.config.name.empty()) continue;
    if (!names.insert(v.config.name).second) {
      r.Problem(v.path + ".name", v.node["name"],
                "\"" + v.config.name + "\" already names a topic or another view");
      continue;
    }
    cfg->topics[*v.config.view_of].views.push_back(cfg->topics.size());
    cfg->topics.push_back(std::move(v.config));
  }
}

// A token file field: its path (relative to the config's directory) and its content.
void ReadTokenFile(YamlReader& r, const YAML::Node& parent, const std::string& path,
                   const char* key, const std::filesystem::path& base_dir, std::string* file,
                   std::string* token) {
  r.ReadString(parent, path, key, file);
  if (file->empty()) return;
  std::filesystem::path fp(*file);
  if (fp.is_relative()) fp = base_dir / fp;
  *file = fp.lexically_normal().string();
  std::string error;
  if (auto v = ReadSecretFile(*file, &error)) {
    *token = *v;
  } else {
    r.Problem(path + "." + key, parent[key], error);
  }
}

void ReadAll(YamlReader& r, const YAML::Node& root, const std::filesystem::path& base_dir,
             Config* cfg) {
  if (!r.ExpectMap("", root,
                   {"kafka", "store", "materializer", "grpc", "http", "log", "schemas", "writes",
                    "watch", "readiness", "peers", "bootstrap", "topics", "transforms",
                    "registry"})) {
    return;
  }
  if (const YAML::Node k = root["kafka"]) {
    if (r.ExpectMap("kafka", k,
                    {"bootstrap_servers", "properties", "properties_from_files", "group_id",
                     "commit_interval_ms", "metadata_refresh_ms"})) {
      r.ReadString(k, "kafka", "bootstrap_servers", &cfg->kafka.bootstrap_servers);
      r.ReadString(k, "kafka", "group_id", &cfg->kafka.group_id);
      if (k["group_id"] && cfg->kafka.group_id.empty()) {
        r.Problem("kafka.group_id", k["group_id"],
                  "must not be empty (set commit_interval_ms: 0 to commit nothing)");
      }
      r.ReadUint(k, "kafka", "commit_interval_ms", &cfg->kafka.commit_interval_ms, 0, 3600000);
      r.ReadUint(k, "kafka", "metadata_refresh_ms", &cfg->kafka.metadata_refresh_ms, 100,
                 300000);
      if (const YAML::Node pf = k["properties_from_files"]) {
        if (!pf.IsMap()) {
          r.Problem("kafka.properties_from_files", pf,
                    "must be a mapping of librdkafka property -> file");
        } else {
          for (const auto& kv : pf) {
            std::string name = kv.first.Scalar();
            std::string path = "kafka.properties_from_files." + name;
            if (ManagedProperties().count(name)) {
              r.Problem(path, kv.first, "is set by cachecar and cannot be overridden");
              continue;
            }
            if (k["properties"] && k["properties"].IsMap() && k["properties"][name]) {
              r.Problem(path, kv.first, "is also set in kafka.properties: set it once");
              continue;
            }
            auto file = r.String(path, kv.second);
            if (!file) continue;
            std::filesystem::path fp(*file);
            if (fp.is_relative()) fp = base_dir / fp;
            std::string error;
            // The error names the file, never its content.
            if (auto v = ReadSecretFile(fp.string(), &error)) {
              cfg->kafka.properties[name] = *v;
            } else {
              r.Problem(path, kv.second, error);
            }
          }
        }
      }
      if (const YAML::Node p = k["properties"]) {
        if (!p.IsMap()) {
          r.Problem("kafka.properties", p, "must be a mapping of librdkafka properties");
        } else {
          for (const auto& kv : p) {
            std::string name = kv.first.Scalar();
            std::string path = "kafka.properties." + name;
            if (ManagedProperties().count(name)) {
              r.Problem(path, kv.first, "is set by cachecar and cannot be overridden");
              continue;
            }
            if (auto v = r.String(path, kv.second)) cfg->kafka.properties[name] = *v;
          }
        }
      }
    }
  }
  if (const YAML::Node s = root["store"]) {
    if (r.ExpectMap("store", s, {"path", "map_size_bytes", "max_map_size_bytes", "sync"})) {
      r.ReadString(s, "store", "path", &cfg->store.path);
      r.ReadUint(s, "store", "map_size_bytes", &cfg->store.map_size_bytes, 1ull << 20,
                 1ull << 46);
      r.ReadUint(s, "store", "max_map_size_bytes", &cfg->store.max_map_size_bytes, 1ull << 20,
                 1ull << 46);
      ReadChoice(r, s, "store", "sync",
                 {{"none", StoreSync::kNone}, {"data", StoreSync::kData},
                  {"full", StoreSync::kFull}, {"false", StoreSync::kData},
                  {"true", StoreSync::kFull}},
                 "none, data or full", &cfg->store.sync);
    }
  }
  if (const YAML::Node m = root["materializer"]) {
    if (r.ExpectMap("materializer", m,
                    {"batch_max_records", "batch_max_bytes", "batch_max_delay_ms",
                     "stall_timeout_ms"})) {
      r.ReadUint(m, "materializer", "batch_max_records", &cfg->materializer.batch_max_records,
                 1, 1000000);
      r.ReadUint(m, "materializer", "batch_max_bytes", &cfg->materializer.batch_max_bytes,
                 1024, 1ull << 30);
      r.ReadUint(m, "materializer", "batch_max_delay_ms",
                 &cfg->materializer.batch_max_delay_ms, 0, 60000);
      r.ReadUint(m, "materializer", "stall_timeout_ms", &cfg->materializer.stall_timeout_ms,
                 1000, 3600000);
    }
  }
  if (const YAML::Node g = root["grpc"]) {
    if (r.ExpectMap("grpc", g,
                    {"address", "unix_socket", "allow_non_loopback", "max_request_bytes",
                     "max_waiting_calls", "max_concurrent_streams", "auth_token_file"})) {
      r.ReadString(g, "grpc", "address", &cfg->grpc.address);
      r.ReadString(g, "grpc", "unix_socket", &cfg->grpc.unix_socket);
      r.ReadBool(g, "grpc", "allow_non_loopback", &cfg->grpc.allow_non_loopback);
      r.ReadUint(g, "grpc", "max_request_bytes", &cfg->grpc.max_request_bytes, 1024,
                 64u << 20);
      r.ReadUint(g, "grpc", "max_waiting_calls", &cfg->grpc.max_waiting_calls, 1, 1000000);
      r.ReadUint(g, "grpc", "max_concurrent_streams", &cfg->grpc.max_concurrent_streams, 1,
                 1000000);
      ReadTokenFile(r, g, "grpc", "auth_token_file", base_dir, &cfg->grpc.auth_token_file,
                    &cfg->grpc.auth_token);
    }
  }
  if (const YAML::Node g = root["registry"]) {
    if (r.ExpectMap("registry", g,
                    {"url", "username_file", "password_file", "timeout_ms", "latest_ttl_ms"})) {
      r.ReadString(g, "registry", "url", &cfg->registry.url);
      r.ReadUint(g, "registry", "timeout_ms", &cfg->registry.timeout_ms, 100, 600000);
      r.ReadUint(g, "registry", "latest_ttl_ms", &cfg->registry.latest_ttl_ms, 0, 86400000);
      ReadTokenFile(r, g, "registry", "username_file", base_dir, &cfg->registry.username_file,
                    &cfg->registry.username);
      ReadTokenFile(r, g, "registry", "password_file", base_dir, &cfg->registry.password_file,
                    &cfg->registry.password);
      if (cfg->registry.username_file.empty() != cfg->registry.password_file.empty()) {
        r.Problem("registry.username_file", g,
                  "set both username_file and password_file, or neither");
      }
      const std::string& url = cfg->registry.url;
      if (!url.empty() && url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        r.Problem("registry.url", g["url"],
                  "must be an http:// or https:// URL, not \"" + url.substr(0, 200) + "\"");
      }
    }
  }
  if (const YAML::Node p = root["peers"]) {
    if (r.ExpectMap("peers", p,
                    {"listen", "token_file", "work_dir", "max_transfers",
                     "max_bytes_per_second"})) {
      r.ReadString(p, "peers", "listen", &cfg->peers.listen);
      r.ReadString(p, "peers", "work_dir", &cfg->peers.work_dir);
      r.ReadUint(p, "peers", "max_transfers", &cfg->peers.max_transfers, 1, 64);
      r.ReadUint(p, "peers", "max_bytes_per_second", &cfg->peers.max_bytes_per_second,
                 64u << 10, 1ull << 40);
      ReadTokenFile(r, p, "peers", "token_file", base_dir, &cfg->peers.token_file,
                    &cfg->peers.token);
    }
  }
  if (const YAML::Node b = root["bootstrap"]) {
    if (r.ExpectMap("bootstrap", b,
                    {"peers", "from_file", "transfer_timeout_ms", "connect_timeout_ms"})) {
      if (const YAML::Node peers = b["peers"]) {
        if (!peers.IsSequence()) {
          r.Problem("bootstrap.peers", peers, "must be a list of host:port");
        } else {
          for (size_t i = 0; i < peers.size(); ++i) {
            const std::string path = "bootstrap.peers[" + std::to_string(i) + "]";
            if (auto v = r.String(path, peers[i])) {
              if (v->empty() || v->rfind(':') == std::string::npos) {
                r.Problem(path, peers[i], "must be host:port, not \"" + *v + "\"");
              } else {
                cfg->bootstrap.peers.push_back(*v);
              }
            }
          }
        }
      }
      r.ReadString(b, "bootstrap", "from_file", &cfg->bootstrap.from_file);
      r.ReadUint(b, "bootstrap", "transfer_timeout_ms", &cfg->bootstrap.transfer_timeout_ms,
                 1000, 86400000);
      r.ReadUint(b, "bootstrap", "connect_timeout_ms", &cfg->bootstrap.connect_timeout_ms, 100,
                 600000);
    }
  }
  if (const YAML::Node h = root["http"]) {
    if (r.ExpectMap("http", h, {"address", "allow_non_loopback"})) {
      r.ReadString(h, "http", "address", &cfg->http.address);
      r.ReadBool(h, "http", "allow_non_loopback", &cfg->http.allow_non_loopback);
    }
  }
  if (const YAML::Node l = root["log"]) {
    if (r.ExpectMap("log", l, {"level", "format"})) {
      r.ReadString(l, "log", "level", &cfg->log.level);
      r.ReadString(l, "log", "format", &cfg->log.format);
    }
  }
  if (const YAML::Node sc = root["schemas"]) {
    if (r.ExpectMap("schemas", sc,
                    {"reload_interval_ms", "backtrack_limit", "backtracking_max_string_bytes"})) {
      r.ReadUint(sc, "schemas", "reload_interval_ms", &cfg->schemas.reload_interval_ms, 0,
                 3600000);
      r.ReadUint(sc, "schemas", "backtrack_limit", &cfg->schemas.backtrack_limit, 1, 10000000);
      r.ReadUint(sc, "schemas", "backtracking_max_string_bytes",
                 &cfg->schemas.backtracking_max_string_bytes, 1, 1u << 20);
    }
  }
  if (const YAML::Node tf = root["transforms"]) {
    if (r.ExpectMap("transforms", tf, {"record_budget_ms", "max_memory_bytes"})) {
      r.ReadUint(tf, "transforms", "record_budget_ms", &cfg->transforms.record_budget_ms, 10,
                 600000);
      r.ReadUint(tf, "transforms", "max_memory_bytes", &cfg->transforms.max_memory_bytes,
                 64ull << 20, 1ull << 40);
    }
  }
  if (const YAML::Node w = root["writes"]) {
    if (r.ExpectMap("writes", w, {"linger_ms", "delivery_timeout_ms", "max_wait_ms"})) {
      r.ReadUint(w, "writes", "linger_ms", &cfg->writes.linger_ms, 0, 1000);
      r.ReadUint(w, "writes", "delivery_timeout_ms", &cfg->writes.delivery_timeout_ms, 100,
                 3600000);
      r.ReadUint(w, "writes", "max_wait_ms", &cfg->writes.max_wait_ms, 1, 3600000);
    }
  }
  if (const YAML::Node w = root["watch"]) {
    if (r.ExpectMap("watch", w,
                    {"history_events", "progress_interval_ms", "buffer_events", "buffer_bytes",
                     "slow_consumer_timeout_ms", "max_watches_per_stream", "max_watches",
                     "snapshot_max_hold_ms"})) {
      r.ReadUint(w, "watch", "history_events", &cfg->watch.history_events, 100, 100000000);
      r.ReadUint(w, "watch", "progress_interval_ms", &cfg->watch.progress_interval_ms, 0,
                 3600000);
      r.ReadUint(w, "watch", "buffer_events", &cfg->watch.buffer_events, 1, 1000000);
      r.ReadUint(w, "watch", "buffer_bytes", &cfg->watch.buffer_bytes, 4096, 1ull << 34);
      r.ReadUint(w, "watch", "snapshot_max_hold_ms", &cfg->watch.snapshot_max_hold_ms, 1000,
                 86400000);
      r.ReadUint(w, "watch", "slow_consumer_timeout_ms", &cfg->watch.slow_consumer_timeout_ms,
                 100, 3600000);
      r.ReadUint(w, "watch", "max_watches_per_stream", &cfg->watch.max_watches_per_stream, 1,
                 1000000);
      r.ReadUint(w, "watch", "max_watches", &cfg->watch.max_watches, 1, 10000000);
    }
  }
  if (const YAML::Node rd = root["readiness"]) {
    if (r.ExpectMap("readiness", rd,
                    {"max_lag_records", "max_lag_duration_ms", "broker_outage_at_start",
                     "broker_outage_grace_ms"})) {
      r.ReadUint(rd, "readiness", "max_lag_records", &cfg->readiness.max_lag_records, 0,
                 1ull << 62);
      r.ReadUint(rd, "readiness", "max_lag_duration_ms", &cfg->readiness.max_lag_duration_ms,
                 0, 86400000);
      ReadChoice(r, rd, "readiness", "broker_outage_at_start",
                 {{"serve_stored", BrokerOutageAtStart::kServeStored},
                  {"wait", BrokerOutageAtStart::kWait}},
                 "serve_stored or wait", &cfg->readiness.broker_outage_at_start);
      r.ReadUint(rd, "readiness", "broker_outage_grace_ms",
                 &cfg->readiness.broker_outage_grace_ms, 0, 86400000);
    }
  }
  ReadTopics(r, root["topics"], base_dir, cfg);
}

// The pod's identity as a consumer group: Kubernetes gives POD_NAME/POD_NAMESPACE through
// the downward API (k8s/), and HOSTNAME is the pod name even without it.
std::string DefaultGroupId(const EnvLookup& env) {
  auto name = env("POD_NAME");
  if (name && !name->empty()) {
    auto ns = env("POD_NAMESPACE");
    return (ns && !ns->empty()) ? *ns + "." + *name : *name;
  }
  auto host = env("HOSTNAME");
  return "cachecar." + (host && !host->empty() ? *host : std::string("local"));
}

// Rules that look at the result as a whole, after overrides.
void Validate(YamlReader& r, const YAML::Node& root, Config* cfg) {
  auto at = [&](const char* a, const char* b) {
    YAML::Node n = root.IsMap() ? root[a] : YAML::Node();
    return (n && n.IsMap() && n[b]) ? n[b] : (n ? n : root);
  };
  if (cfg->kafka.bootstrap_servers.empty()) {
    r.Problem("kafka.bootstrap_servers", at("kafka", "bootstrap_servers"),
              "required (or --bootstrap-servers)");
  }
  if (cfg->store.path.empty()) r.Problem("store.path", at("store", "path"), "required");
  if (cfg->store.max_map_size_bytes < cfg->store.map_size_bytes) {
    r.Problem("store.max_map_size_bytes", at("store", "max_map_size_bytes"),
              "must be at least store.map_size_bytes (" +
                  std::to_string(cfg->store.map_size_bytes) + ")");
  }
  if (cfg->watch.history_events < cfg->materializer.batch_max_records) {
    r.Problem("watch.history_events", at("watch", "history_events"),
              "must be at least materializer.batch_max_records (" +
                  std::to_string(cfg->materializer.batch_max_records) +
                  "): one commit may hold that many changes, and a commit larger than the "
                  "history window cancels every live watch");
  }
  for (size_t i = 0; i < cfg->topics.size(); ++i) {
    const TopicConfig& t = cfg->topics[i];
    if ((t.value_format == ValueFormat::kRegistry || t.registry_keys) &&
        cfg->registry.url.empty()) {
      r.Problem("registry.url", at("registry", "url"),
                "required: topic " + t.name + " has " +
                    (t.value_format == ValueFormat::kRegistry ? "value_format" : "key_format") +
                    ": registry");
      break;
    }
  }
  if (cfg->grpc.address.empty() && cfg->grpc.unix_socket.empty()) {
    r.Problem("grpc.address", at("grpc", "address"),
              "set grpc.address or grpc.unix_socket: the sidecar must listen somewhere");
  }
  CheckListenAddress(r, "grpc.address", at("grpc", "address"), cfg->grpc.address,
                     cfg->grpc.allow_non_loopback, "grpc.allow_non_loopback");
  CheckListenAddress(r, "http.address", at("http", "address"), cfg->http.address,
                     cfg->http.allow_non_loopback, "http.allow_non_loopback");
  if ((!cfg->peers.listen.empty() || !cfg->bootstrap.peers.empty()) &&
      cfg->peers.token_file.empty()) {
    r.Problem("peers.token_file", at("peers", "token_file"),
              "required with peers.listen or bootstrap.peers: snapshots hold every topic, "
              "so peers must present a shared token");
  }
  // The peer port is meant for the network: the token is what protects it.
  CheckListenAddress(r, "peers.listen", at("peers", "listen"), cfg->peers.listen,
                     /*allow_any=*/true, "");
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
  if (!kLevels.count(cfg->log.level)) {
    r.Problem("log.level", at("log", "level"),
              "must be trace, debug, info, warn or error, not \"" + cfg->log.level + "\"");
  }
  if (cfg->log.format != "json" && cfg->log.format != "text") {
    r.Problem("log.format", at("log", "format"),
              "must be json or text, not \"" + cfg->log.format + "\"");
  }
}

}  // namespace

Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source,
                           const EnvLookup& env, const Overrides& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ": not valid YAML",
                           {{"", "line " + std::to_string(e.mark.line + 1) + ", column " +
                                     std::to_string(e.mark.column + 1) + ": " + e.msg}});
  }
  Config cfg;
  cfg.source = source;
  YamlReader r(env);
  std::filesystem::path base_dir = std::filesystem::path(source).parent_path();
  try {
    if (!root || root.IsNull()) {
      r.Problem("", root, "the configuration is empty");
    } else {
      ReadAll(r, root, base_dir, &cfg);
    }
    if (overrides.bootstrap_servers) cfg.kafka.bootstrap_servers = *overrides.bootstrap_servers;
    if (overrides.store_path) cfg.store.path = *overrides.store_path;
    if (overrides.grpc_address) cfg.grpc.address = *overrides.grpc_address;
    if (overrides.unix_socket) cfg.grpc.unix_socket = *overrides.unix_socket;
    if (overrides.http_address) cfg.http.address = *overrides.http_address;
    if (overrides.log_level) cfg.log.level = *overrides.log_level;
    if (overrides.bootstrap_from) cfg.bootstrap.from_file = *overrides.bootstrap_from;
    if (cfg.kafka.group_id.empty()) cfg.kafka.group_id = DefaultGroupId(env);
    Validate(r, root, &cfg);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed trees (e.g. a key that is itself a mapping).
    r.problems().push_back({"", std::string("malformed document: ") + e.what()});
  }
  if (!r.problems().empty()) {
    // Count before moving: argument evaluation order is unspecified.
    size_t n = r.problems().size();
    return InvalidArgument(source + ": " + std::to_string(n) +
                               (n == 1 ? " problem" : " problems") + " in the configuration",
                           std::move(r.problems()));
  }
  return cfg;
}

Result<Config> LoadConfig(const std::string& path, const EnvLookup& env,
                          const Overrides& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return InvalidArgument("cannot read config file " + path + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path, env, overrides);
}

}  // namespace cachecar::config
