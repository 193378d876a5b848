#include "peer/topic_settings.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <filesystem>
#include <fstream>

#include "schema/schema_set.h"
#include "test_util.h"

namespace cachecar::peer {
namespace {

namespace fs = std::filesystem;

TEST(TopicSettingsTest, EverySettingThatDecidesWhatIsStoredChangesTheFingerprint) {
  config::TopicConfig base;
  base.name = "users";
  const std::string fp = TopicSettingsFingerprint(base, "");
  auto differs = [&](config::TopicConfig t, const char* what) {
    EXPECT_NE(TopicSettingsFingerprint(t, ""), fp) << what;
  };
  config::TopicConfig t = base;
  t.key_encoding = config::KeyEncoding::kBytes;
  differs(t, "key_encoding");
  t = base;
  t.value_format = config::ValueFormat::kBytes;
  differs(t, "value_format");
  t = base;
  t.on_invalid = config::InvalidPolicy::kFail;
  differs(t, "on_invalid");
  t = base;
  t.retain_beyond_log = true;
  differs(t, "retain_beyond_log");
  t = base;
  t.transform = "{id}";
  differs(t, "transform");
  t = base;
  t.apply = config::ApplyMode::kMergePatch;
  differs(t, "apply");
  t = base;
  t.schema_patterns = config::SchemaPatterns::kBacktracking;
  differs(t, "schema_patterns");
  t = base;
  t.schema_formats = config::SchemaFormats::kAnnotate;
  differs(t, "schema_formats");
  EXPECT_NE(TopicSettingsFingerprint(base, "a schema"), fp);
  // Settings that change no entry do not count.
  t = base;
  t.read_only = false;
  t.max_value_bytes = 7;
  t.readiness = config::TopicReadiness::kOptional;
  t.rejected_history = 1;
  EXPECT_EQ(TopicSettingsFingerprint(t, ""), fp);
}

TEST(TopicSettingsTest, TheSameSchemaFilesAnywhereGiveTheSameFingerprint) {
  testing::TempDir dir;
  auto write = [](const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  };
  const std::string schema = R"({"type":"object","properties":{"a":{"$ref":"defs.json"}}})";
  const std::string defs = R"({"type":"integer"})";
  fs::path a = fs::path(dir.path()) / "a", b = fs::path(dir.path()) / "mounted/elsewhere";
  write(a / "users.json", schema);
  write(a / "defs.json", defs);
  write(b / "users.json", schema);
  write(b / "defs.json", defs);
  fs::path c = fs::path(dir.path()) / "c";
  write(c / "users.json", schema);
  write(c / "defs.json", R"({"type":"string"})");  // a $ref target differs

  auto local = [&](const fs::path& folder) {
    config::Config cfg;
    config::TopicConfig t;
    t.name = "users";
    t.schema_path = (folder / "users.json").string();
    cfg.topics.push_back(t);
    prometheus::Registry registry;
    auto set = schema::SchemaSet::Load(schema::TopicSchemasOf(cfg), &registry);
    EXPECT_TRUE(set.ok()) << set.status().ToString();
    return LocalTopics(cfg, **set).at(0).fingerprint;
  };
  EXPECT_EQ(local(a), local(b));
  EXPECT_NE(local(a), local(c));
}

TEST(TopicSettingsTest, ARegistryTopicsSchemasAreTheRegistrysAtItsUrl) {
  // Schema ids mean what one registry says: a peer decoding with another registry holds
  // other values for the same records.
  auto local = [](const std::string& url) {
    config::Config cfg;
    cfg.registry.url = url;
    config::TopicConfig t;
    t.name = "orders";
    t.value_format = config::ValueFormat::kRegistry;
    cfg.topics.push_back(t);
    prometheus::Registry registry;
    auto set = schema::SchemaSet::Load(schema::TopicSchemasOf(cfg), &registry);
    EXPECT_TRUE(set.ok()) << set.status().ToString();
    return LocalTopics(cfg, **set).at(0).fingerprint;
  };
  EXPECT_EQ(local("http://registry:8081"), local("http://registry:8081"));
  EXPECT_NE(local("http://registry:8081"), local("http://other-registry:8081"));
}

TEST(TopicSettingsTest, CompatibleMeansEveryLocalTopicWithEqualSettings) {
  google::protobuf::RepeatedPtrField<v1::SnapshotTopic> offered;
  auto add = [&](const char* name, const char* fp) {
    v1::SnapshotTopic* t = offered.Add();
    t->set_name(name);
    t->set_settings_fingerprint(fp);
  };
  add("users", "1");
  add("sessions", "2");
  add("extra", "3");
  EXPECT_TRUE(CheckCompatible({{"users", "1"}, {"sessions", "2"}}, offered).ok());
  Status st = CheckCompatible({{"users", "1"}, {"sessions", "X"}, {"flags", "4"}}, offered);
  EXPECT_EQ(st.reason(), "PEER_INCOMPATIBLE");
  EXPECT_NE(st.message().find("sessions is materialized with other settings"),
            std::string::npos);
  EXPECT_NE(st.message().find("flags is not in it"), std::string::npos);
  EXPECT_EQ(st.message().find("users"), std::string::npos);
}

}  // namespace
}  // namespace cachecar::peer
