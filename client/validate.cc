#include "client/validate.h"

#include <prometheus/registry.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "config/config.h"
#include "kafka/entry_preview.h"
#include "kafka/materializer.h"
#include "registry/registry_client.h"
#include "registry/schema_cache.h"
#include "rpc/write_handler.h"
#include "schema/schema_set.h"

namespace cachecar::client {

namespace {

// The sidecar's own parts, loaded from its configuration, offline.
struct Offline {
  config::Config config;
  prometheus::Registry registry;
  std::unique_ptr<schema::SchemaSet> schemas;
  std::unique_ptr<schema::SchemaSet> entry_schemas;
  std::unique_ptr<transform::Sandbox> transforms;
  // A value_format: registry topic's schemas, asked of config.registry.url (which must be
  // reachable from where cachecarctl runs).
  std::unique_ptr<registry::RegistryClient> registry_client;
  std::unique_ptr<registry::SchemaCache> registry_schemas;
  size_t topic = 0;
};

// The write checks of the topic, as the sidecar makes them.
std::unique_ptr<rpc::WriteHandler> WriteChecks(Offline& o) {
  auto handler = std::make_unique<rpc::WriteHandler>(&o.config, o.schemas.get(), nullptr, nullptr);
  if (o.config.topics[o.topic].value_format == config::ValueFormat::kRegistry) {
    o.registry_client = std::make_unique<registry::RegistryClient>(o.config.registry);
    o.registry_schemas = std::make_unique<registry::SchemaCache>(
        o.config, o.registry_client.get(), nullptr);
    handler->set_registry(o.registry_schemas.get());
  }
  return handler;
}

// Loads everything, or prints why not and returns the exit code (2, or 5: unknown topic).
int Load(const std::string& config_path, const std::string& topic, Offline* o) {
  log::Init("text", "error");
  // Offline, the pod's environment is not there: an unset variable stands for itself.
  config::EnvLookup env = [real = config::ProcessEnv()](const std::string& name) {
    auto v = real(name);
    return v ? v : std::optional<std::string>("${" + name + "}");
  };
  Result<config::Config> cfg = config::LoadConfig(config_path, env);
  if (!cfg.ok()) {
    std::fprintf(stderr, "cachecarctl: %s\n", cfg.status().message().c_str());
    for (const auto& v : cfg.status().violations()) {
      std::fprintf(stderr, "  %s: %s\n", v.field.c_str(), v.description.c_str());
    }
    return 2;
  }
  o->config = std::move(*cfg);
  auto schemas = schema::SchemaSet::Load(schema::TopicSchemasOf(o->config), &o->registry);
  auto entry = schemas.ok() ? schema::SchemaSet::Load(schema::EntrySchemasOf(o->config),
                                                      &o->registry)
                            : Result<std::unique_ptr<schema::SchemaSet>>(schemas.status());
  if (!entry.ok()) {
    std::fprintf(stderr, "cachecarctl: %s\n", entry.status().message().c_str());
    return 2;
  }
  o->schemas = std::move(*schemas);
  o->entry_schemas = std::move(*entry);
  // The sidecar's transforms, in a worker that is this program started again.
  auto transforms = kafka::StartTransforms(o->config, nullptr);
  if (!transforms.ok()) {
    std::fprintf(stderr, "cachecarctl: %s\n", transforms.status().message().c_str());
    return 2;
  }
  o->transforms = std::move(*transforms);
  o->topic = o->config.topics.size();
  for (size_t i = 0; i < o->config.topics.size(); ++i) {
    if (o->config.topics[i].name == topic) o->topic = i;
  }
  if (o->topic == o->config.topics.size()) {
    std::fprintf(stderr, "cachecarctl: topic \"%s\" is not configured in %s\n", topic.c_str(),
                 config_path.c_str());
    return 5;
  }
  if (const config::TopicConfig& t = o->config.topics[o->topic]; t.is_view()) {
    std::fprintf(stderr,
                 "cachecarctl: \"%s\" is a view of topic %s: it takes no records of its own "
                 "(give the topic: its view keys are shown with the entry)\n",
                 topic.c_str(), t.view_topic.c_str());
    return 5;
  }
  return 0;
}

// Each of the topic's views -> the view keys `value` (the entry) would be under, as the
// sidecar computes them; a key expression that fails gives {"error": why}.
Result<nlohmann::ordered_json> ViewKeysOf(const Offline& o, const std::string& key,
                                          const std::string& value) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  const config::TopicConfig& topic = o.config.topics[o.topic];
  if (topic.views.empty()) return out;
  auto sandbox = kafka::StartViewKeys(o.config, nullptr);
  if (!sandbox.ok()) return sandbox.status();
  const size_t first_view = o.config.kafka_topic_count();
  std::vector<transform::Input> inputs;
  for (size_t v : topic.views) {
    transform::Input in;
    in.filter = static_cast<uint32_t>(v - first_view);
    in.key = key;
    in.value = value;
    in.partition = -1;
    in.offset = -1;
    in.headers_json = "{}";
    inputs.push_back(in);
  }
  auto results = (*sandbox)->Run(inputs, kafka::kMaxViewKeysBytes);
  if (!results.ok()) return results.status();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const transform::Result& r = (*results)[i];
    const std::string& name = o.config.topics[topic.views[i]].name;
    nlohmann::ordered_json keys = r.outcome == transform::Outcome::kValue
                                      ? nlohmann::ordered_json::parse(r.text, nullptr, false)
                                      : nlohmann::ordered_json();
    if (keys.is_array() && keys.size() <= kafka::kMaxViewKeysPerEntry) {
      out[name] = std::move(keys);
    } else if (keys.is_array()) {
      out[name] = {{"error", "the key expression gave more than " +
                                 std::to_string(kafka::kMaxViewKeysPerEntry) +
                                 " view keys for one entry"}};
    } else {
      out[name] = {{"error", r.text.empty() ? transform::OutcomeName(r.outcome) : r.text}};
    }
  }
  return out;
}

nlohmann::json ViolationsJson(const Status& st) {
  nlohmann::json violations = nlohmann::json::array();
  for (const auto& v : st.violations()) {
    violations.push_back({{"field", v.field}, {"reason", v.reason}, {"description", v.description}});
  }
  return violations;
}

void PrintInvalid(const Status& st) {
  std::printf("invalid: %s\n", st.message().c_str());
  for (const auto& v : st.violations()) {
    std::printf("  %s: %s%s%s\n", v.field.c_str(), v.reason.empty() ? "" : v.reason.c_str(),
                v.reason.empty() ? "" : ": ", v.description.c_str());
  }
}

}  // namespace

int RunValidate(const std::string& config_path, const std::string& topic,
                const std::string& value, const std::string& output) {
  Offline o;
  if (int code = Load(config_path, topic, &o); code != 0) return code;
  std::unique_ptr<rpc::WriteHandler> handler = WriteChecks(o);
  kafka::EntryPreview entries(&o.config, o.transforms.get(), o.entry_schemas.get(), nullptr);
  Status st = handler->CheckValue(o.topic, value);
  if (st.code() == Code::kUnavailable || st.code() == Code::kFailedPrecondition) {
    // Not a verdict on the value: the registry could not be asked, or has no schema for it.
    std::fprintf(stderr, "cachecarctl: %s\n", st.message().c_str());
    return 2;
  }
  if (st.ok() && entries.Applies(o.topic)) {
    auto entry = entries.Preview(o.topic, "", value);
    // A merge-patch topic's entry depends on the key's value now, which offline is not
    // known: `cachecarctl transform --current` checks it.
    const bool merge = o.config.topics[o.topic].apply == config::ApplyMode::kMergePatch;
    if (!entry.ok() && !(merge && entry.status().reason() == "ENTRY_SCHEMA_VIOLATION")) {
      st = entry.status();
    }
  }
  if (output == "json") {
    nlohmann::json out = {{"valid", st.ok()}, {"topic", topic}};
    if (!st.ok()) {
      out["reason"] = st.reason();
      out["message"] = st.message();
      out["violations"] = ViolationsJson(st);
    }
    std::printf("%s\n", out.dump().c_str());
  } else if (st.ok()) {
    std::printf("valid\n");
  } else {
    PrintInvalid(st);
  }
  return st.ok() ? 0 : 5;
}

int RunTransform(const std::string& config_path, const std::string& topic,
                 const std::string& value, const TransformOptions& options,
                 const std::string& output) {
  Offline o;
  if (int code = Load(config_path, topic, &o); code != 0) return code;
  std::unique_ptr<rpc::WriteHandler> handler = WriteChecks(o);
  kafka::EntryPreview entries(&o.config, o.transforms.get(), o.entry_schemas.get(), nullptr);
  // As the materializer: the record's own checks, then what it makes of the key.
  Status st = handler->CheckValue(o.topic, value);
  Result<kafka::EntryPreview::Entry> entry = st;
  if (st.ok()) {
    entry = entries.Preview(o.topic, options.key, value, options.current);
    if (!entry.ok()) st = entry.status();
  }
  nlohmann::ordered_json views = nlohmann::ordered_json::object();
  if (st.ok() && entry->kind == kafka::EntryPreview::Entry::Kind::kStore) {
    Result<nlohmann::ordered_json> v = ViewKeysOf(o, options.key, entry->value);
    if (!v.ok()) {
      std::fprintf(stderr, "cachecarctl: %s\n", v.status().message().c_str());
      return 2;
    }
    views = std::move(*v);
  }
  const char* result = !st.ok() ? "invalid"
                       : entry->kind == kafka::EntryPreview::Entry::Kind::kDelete ? "delete"
                       : entry->kind == kafka::EntryPreview::Entry::Kind::kSkip   ? "skip"
                                                                                  : "store";
  if (output == "json") {
    nlohmann::json out = {{"topic", topic}, {"result", result}};
    if (!st.ok()) {
      out["reason"] = st.reason();
      out["message"] = st.message();
      out["violations"] = ViolationsJson(st);
    } else if (entry->kind == kafka::EntryPreview::Entry::Kind::kStore) {
      out["value"] = nlohmann::json::parse(entry->value, nullptr, false);
      if (!views.empty()) out["views"] = nlohmann::json::parse(views.dump());
    }
    std::printf("%s\n", out.dump().c_str());
  } else if (!st.ok()) {
    PrintInvalid(st);
  } else if (entry->kind == kafka::EntryPreview::Entry::Kind::kDelete) {
    std::printf("delete: the record would delete the key\n");
  } else if (entry->kind == kafka::EntryPreview::Entry::Kind::kSkip) {
    std::printf("skip: the transform gives no value; the record would change nothing\n");
  } else {
    std::printf("%s\n", entry->value.c_str());
    for (const auto& [name, keys] : views.items()) {
      std::printf("view %s: %s\n", name.c_str(),
                  keys.is_object() ? ("left out: " + keys["error"].get<std::string>()).c_str()
                                   : keys.dump().c_str());
    }
  }
  return st.ok() ? 0 : 5;
}

}  // namespace cachecar::client
