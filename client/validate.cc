#include "client/validate.h"

#include <prometheus/registry.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "config/config.h"
#include "rpc/write_handler.h"
#include "schema/schema_set.h"

namespace cachecar::client {

int RunValidate(const std::string& config_path, const std::string& topic,
                const std::string& value, const std::string& output) {
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
  std::vector<schema::TopicSchema> topics = schema::TopicSchemasOf(*cfg);
  prometheus::Registry registry;
  auto schemas = schema::SchemaSet::Load(topics, &registry);
  if (!schemas.ok()) {
    std::fprintf(stderr, "cachecarctl: %s\n", schemas.status().message().c_str());
    return 2;
  }
  size_t index = cfg->topics.size();
  for (size_t i = 0; i < cfg->topics.size(); ++i) {
    if (cfg->topics[i].name == topic) index = i;
  }
  if (index == cfg->topics.size()) {
    std::fprintf(stderr, "cachecarctl: topic \"%s\" is not configured in %s\n", topic.c_str(),
                 config_path.c_str());
    return 5;
  }
  rpc::WriteHandler handler(&*cfg, schemas->get(), nullptr, nullptr);
  Status st = handler.CheckValue(index, value);
  if (output == "json") {
    nlohmann::json violations = nlohmann::json::array();
    for (const auto& v : st.violations()) {
      violations.push_back({{"field", v.field}, {"reason", v.reason}, {"description", v.description}});
    }
    nlohmann::json out = {{"valid", st.ok()}, {"topic", topic}};
    if (!st.ok()) {
      out["reason"] = st.reason();
      out["message"] = st.message();
      out["violations"] = violations;
    }
    std::printf("%s\n", out.dump().c_str());
  } else if (st.ok()) {
    std::printf("valid\n");
  } else {
    std::printf("invalid: %s\n", st.message().c_str());
    for (const auto& v : st.violations()) {
      std::printf("  %s: %s%s%s\n", v.field.c_str(), v.reason.empty() ? "" : v.reason.c_str(),
                  v.reason.empty() ? "" : ": ", v.description.c_str());
    }
  }
  return st.ok() ? 0 : 5;
}

}  // namespace cachecar::client
