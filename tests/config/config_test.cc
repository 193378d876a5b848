#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "test_util.h"

namespace cachecar::config {
namespace {

using ::testing::HasSubstr;

EnvLookup Env(std::map<std::string, std::string> vars = {}) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

constexpr char kMinimal[] = R"(
kafka:
  bootstrap_servers: localhost:9092
topics:
  - name: users
)";

// The violation for `field`, or "" if none.
std::string ProblemFor(const Status& st, const std::string& field) {
  for (const auto& v : st.violations()) {
    if (v.field == field) return v.description;
  }
  return "";
}

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  auto cfg = ParseConfig(kMinimal, "c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->topics.size(), 1u);
  EXPECT_EQ(cfg->topics[0].name, "users");
  EXPECT_EQ(cfg->topics[0].key_encoding, KeyEncoding::kUtf8);
  EXPECT_EQ(cfg->topics[0].value_format, ValueFormat::kJson);
  EXPECT_TRUE(cfg->topics[0].read_only);
  EXPECT_EQ(cfg->grpc.address, "127.0.0.1:50051");
  EXPECT_EQ(cfg->http.address, "127.0.0.1:9090");
  EXPECT_EQ(cfg->store.path, "/var/lib/cachecar");
  EXPECT_EQ(cfg->materializer.batch_max_records, 10000u);
  EXPECT_EQ(cfg->log.level, "info");
}

TEST(ConfigTest, StoreSyncIsAModeAndTheOldBooleansStillMeanWhatTheyDid) {
  EXPECT_EQ(ParseConfig(kMinimal, "c.yaml", Env())->store.sync, StoreSync::kNone);
  for (const auto& [spelling, mode] :
       std::vector<std::pair<std::string, StoreSync>>{{"none", StoreSync::kNone},
                                                      {"data", StoreSync::kData},
                                                      {"full", StoreSync::kFull},
                                                      {"false", StoreSync::kData},
                                                      {"true", StoreSync::kFull}}) {
    auto cfg = ParseConfig(std::string(kMinimal) + "store: {sync: " + spelling + "}\n",
                           "c.yaml", Env());
    ASSERT_TRUE(cfg.ok()) << spelling << ": " << cfg.status().ToString();
    EXPECT_EQ(cfg->store.sync, mode) << spelling;
  }
  auto bad = ParseConfig(std::string(kMinimal) + "store: {sync: sometimes}\n", "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "store.sync"), HasSubstr("none, data or full"));
}

TEST(ConfigTest, FullConfigIsRead) {
  auto cfg = ParseConfig(R"(
kafka:
  bootstrap_servers: ${KAFKA_BOOTSTRAP}
  properties:
    security.protocol: SASL_SSL
    sasl.username: ${USER:-svc}
store: {path: /data, map_size_bytes: 1073741824, sync: true}
materializer: {batch_max_records: 500, batch_max_bytes: 65536, batch_max_delay_ms: 5}
grpc: {address: "[::1]:7000", unix_socket: /run/c.sock, max_request_bytes: 2048}
http: {address: ""}
log: {level: debug, format: text}
topics:
  - {name: users, key_encoding: bytes, value_format: bytes, read_only: false}
  - name: sessions
)",
                         "c.yaml", Env({{"KAFKA_BOOTSTRAP", "k:9092"}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->kafka.bootstrap_servers, "k:9092");
  EXPECT_EQ(cfg->kafka.properties.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(cfg->kafka.properties.at("sasl.username"), "svc");
  EXPECT_EQ(cfg->store.path, "/data");
  EXPECT_EQ(cfg->store.map_size_bytes, 1073741824u);
  EXPECT_EQ(cfg->store.sync, StoreSync::kFull);  // true, as configs before `full` said
  EXPECT_EQ(cfg->materializer.batch_max_records, 500u);
  EXPECT_EQ(cfg->materializer.batch_max_delay_ms, 5u);
  EXPECT_EQ(cfg->grpc.address, "[::1]:7000");
  EXPECT_EQ(cfg->grpc.unix_socket, "/run/c.sock");
  EXPECT_EQ(cfg->http.address, "");
  EXPECT_EQ(cfg->log.format, "text");
  EXPECT_EQ(cfg->topics[0].key_encoding, KeyEncoding::kBytes);
  EXPECT_EQ(cfg->topics[0].value_format, ValueFormat::kBytes);
  EXPECT_FALSE(cfg->topics[0].read_only);
  EXPECT_NE(cfg->FindTopic("sessions"), nullptr);
  EXPECT_EQ(cfg->FindTopic("nope"), nullptr);
}

TEST(ConfigTest, EveryProblemIsReportedWithItsPlace) {
  auto cfg = ParseConfig(R"(kafka:
  bootstrap_servers: localhost:9092
topics:
  - name: users
  - key_encoding: latin1
  - name: "bad topic!"
  - name: users
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[1].name"), HasSubstr("required"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[1].key_encoding"),
              HasSubstr("must be utf-8 or bytes"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[1].key_encoding"), HasSubstr("line 5"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[2].name"), HasSubstr("not a Kafka topic name"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[3].name"), HasSubstr("listed twice"));
  EXPECT_EQ(cfg.status().violations().size(), 4u);
  EXPECT_EQ(cfg.status().message(), "c.yaml: 4 problems in the configuration");
}

TEST(ConfigTest, MalformedYamlSaysWhere) {
  auto cfg = ParseConfig("kafka: [unclosed\n", "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("not valid YAML"));
  ASSERT_EQ(cfg.status().violations().size(), 1u);
  EXPECT_THAT(cfg.status().violations()[0].description, HasSubstr("line"));
}

TEST(ConfigTest, EmptyAndNonMappingDocumentsAreRefused) {
  EXPECT_FALSE(ParseConfig("", "c.yaml", Env()).ok());
  EXPECT_FALSE(ParseConfig("- a\n- b\n", "c.yaml", Env()).ok());
  EXPECT_FALSE(ParseConfig("just a string", "c.yaml", Env()).ok());
}

TEST(ConfigTest, UnknownAndDuplicateFieldsAreRefused) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1, bootstrap_server: b:1}
topics:
  - {name: a, nmae: x}
store: {path: /a}
store: {path: /b}
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.bootstrap_server"), HasSubstr("unknown field"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[0].nmae"), HasSubstr("unknown field"));
  EXPECT_THAT(ProblemFor(cfg.status(), "store"), HasSubstr("duplicate key"));
}

TEST(ConfigTest, TopicsAreRequired) {
  auto cfg = ParseConfig("kafka: {bootstrap_servers: a:1}\n", "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "topics"), HasSubstr("required"));
  cfg = ParseConfig("kafka: {bootstrap_servers: a:1}\ntopics: []\n", "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "topics"), HasSubstr("non-empty"));
}

TEST(ConfigTest, BootstrapServersAreRequiredUnlessOverridden) {
  auto cfg = ParseConfig("topics: [{name: a}]\n", "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.bootstrap_servers"), HasSubstr("required"));
  Overrides o;
  o.bootstrap_servers = "x:9092";
  o.grpc_address = "127.0.0.1:1234";
  cfg = ParseConfig("topics: [{name: a}]\n", "c.yaml", Env(), o);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->kafka.bootstrap_servers, "x:9092");
  EXPECT_EQ(cfg->grpc.address, "127.0.0.1:1234");
}

TEST(ConfigTest, UnsetEnvironmentVariableIsAProblemAtItsPlace) {
  auto cfg = ParseConfig("kafka: {bootstrap_servers: '${KAFKA_BOOTSTRAP}'}\ntopics: [{name: a}]\n",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.bootstrap_servers"),
              HasSubstr("KAFKA_BOOTSTRAP is not set"));
}

TEST(ConfigTest, NumbersAreCheckedForFormAndRange) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
store: {map_size_bytes: 12abc}
materializer: {batch_max_records: 0, batch_max_bytes: -5, batch_max_delay_ms: 99999999999999999999}
grpc: {max_request_bytes: 1.5}
topics: [{name: a, read_only: maybe}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "store.map_size_bytes"), HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(cfg.status(), "materializer.batch_max_records"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(cfg.status(), "materializer.batch_max_bytes"),
              HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(cfg.status(), "materializer.batch_max_delay_ms"),
              HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(cfg.status(), "grpc.max_request_bytes"), HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[0].read_only"), HasSubstr("true or false"));
}

TEST(ConfigTest, WrongTypesAreRefused) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: [a, b], properties: [x]}
store: 5
topics: [{name: {nested: map}}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.bootstrap_servers"), HasSubstr("must be a string"));
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.properties"), HasSubstr("mapping"));
  EXPECT_THAT(ProblemFor(cfg.status(), "store"), HasSubstr("mapping"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[0].name"), HasSubstr("must be a string"));
}

TEST(ConfigTest, PropertiesCachecarOwnsAreRefused) {
  auto cfg = ParseConfig(R"(
kafka:
  bootstrap_servers: a:1
  properties: {isolation.level: read_uncommitted, group.id: mine, enable.auto.commit: "true"}
topics: [{name: a}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.properties.isolation.level"),
              HasSubstr("set by cachecar"));
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.properties.group.id"), HasSubstr("set by cachecar"));
  EXPECT_THAT(ProblemFor(cfg.status(), "kafka.properties.enable.auto.commit"),
              HasSubstr("set by cachecar"));
}

TEST(ConfigTest, SecretsComeFromFilesAndNeverFromTheirContentInMessages) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/password") << "hunter2\n";
  std::ofstream(dir.path() + "/token") << "tok-123\r\n";
  std::ofstream(dir.path() + "/empty") << "\n";
  auto cfg = ParseConfig(R"(
kafka:
  bootstrap_servers: a:1
  properties: {security.protocol: SASL_SSL}
  properties_from_files: {sasl.password: password}
grpc:
  auth_token_file: token
topics: [{name: a}]
)",
                         dir.path() + "/c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->kafka.properties.at("sasl.password"), "hunter2");
  EXPECT_EQ(cfg->grpc.auth_token, "tok-123");
  EXPECT_EQ(cfg->grpc.auth_token_file, dir.path() + "/token");

  auto bad = ParseConfig(R"(
kafka:
  bootstrap_servers: a:1
  properties: {sasl.password: inline}
  properties_from_files: {sasl.password: password, group.id: password, ssl.key.password: missing}
grpc:
  auth_token_file: empty
topics: [{name: a}]
)",
                         dir.path() + "/c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "kafka.properties_from_files.sasl.password"),
              HasSubstr("also set in kafka.properties"));
  EXPECT_THAT(ProblemFor(bad.status(), "kafka.properties_from_files.group.id"),
              HasSubstr("set by cachecar"));
  EXPECT_THAT(ProblemFor(bad.status(), "kafka.properties_from_files.ssl.key.password"),
              HasSubstr("cannot read"));
  EXPECT_THAT(ProblemFor(bad.status(), "grpc.auth_token_file"), HasSubstr("is empty"));
  for (const auto& v : bad.status().violations()) {
    EXPECT_EQ(v.description.find("hunter2"), std::string::npos) << v.description;
  }
}

TEST(ConfigTest, SecretPropertyNamesAreRecognised) {
  for (const char* name : {"sasl.password", "ssl.key.password", "ssl.keystore.password",
                           "sasl.oauthbearer.client.secret", "ssl.key.pem",
                           "sasl.oauthbearer.config"}) {
    EXPECT_TRUE(IsSecretProperty(name)) << name;
  }
  for (const char* name : {"security.protocol", "sasl.mechanisms", "sasl.username",
                           "ssl.ca.location"}) {
    EXPECT_FALSE(IsSecretProperty(name)) << name;
  }
}

TEST(ConfigTest, GroupIdDefaultsToThePodsIdentity) {
  auto pod = ParseConfig(kMinimal, "c.yaml", Env({{"POD_NAME", "web-7d9f-x2"},
                                                  {"POD_NAMESPACE", "shop"},
                                                  {"HOSTNAME", "ignored"}}));
  ASSERT_TRUE(pod.ok());
  EXPECT_EQ(pod->kafka.group_id, "shop.web-7d9f-x2");
  EXPECT_EQ(pod->kafka.commit_interval_ms, 5000u);
  auto host = ParseConfig(kMinimal, "c.yaml", Env({{"HOSTNAME", "box"}}));
  EXPECT_EQ(host->kafka.group_id, "cachecar.box");
  auto set = ParseConfig(R"(
kafka: {bootstrap_servers: a:1, group_id: "${POD_NAME}-cache", commit_interval_ms: 0}
topics: [{name: a}]
)",
                         "c.yaml", Env({{"POD_NAME", "p"}}));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->kafka.group_id, "p-cache");
  EXPECT_EQ(set->kafka.commit_interval_ms, 0u);
  auto empty = ParseConfig(R"(
kafka: {bootstrap_servers: a:1, group_id: ""}
topics: [{name: a}]
)",
                           "c.yaml", Env());
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(ProblemFor(empty.status(), "kafka.group_id"), HasSubstr("must not be empty"));
}

TEST(ConfigTest, StoreGrowthAndReadinessSettingsAreChecked) {
  auto cfg = ParseConfig(kMinimal, "c.yaml", Env());
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->store.map_size_bytes, 1ull << 30);
  EXPECT_EQ(cfg->store.max_map_size_bytes, 1ull << 40);
  EXPECT_EQ(cfg->readiness.max_lag_records, 0u);
  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
store: {map_size_bytes: 4194304, max_map_size_bytes: 2097152}
readiness: {max_lag_records: -5, max_lag_duration_ms: 100000000, extra: 1}
topics: [{name: a}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "store.max_map_size_bytes"),
              HasSubstr("at least store.map_size_bytes"));
  EXPECT_THAT(ProblemFor(bad.status(), "readiness.max_lag_records"), HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(bad.status(), "readiness.max_lag_duration_ms"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "readiness.extra"), HasSubstr("unknown field"));
}

TEST(ConfigTest, OutagePolicyAndTopicReadinessAreReadAndChecked) {
  auto cfg = ParseConfig(kMinimal, "c.yaml", Env());
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->readiness.broker_outage_at_start, BrokerOutageAtStart::kServeStored);
  EXPECT_EQ(cfg->readiness.broker_outage_grace_ms, 10000u);
  EXPECT_EQ(cfg->topics[0].readiness, TopicReadiness::kRequired);
  auto set = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
readiness: {broker_outage_at_start: wait, broker_outage_grace_ms: 0}
topics: [{name: a, readiness: optional}, {name: b, readiness: required}]
)",
                         "c.yaml", Env());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->readiness.broker_outage_at_start, BrokerOutageAtStart::kWait);
  EXPECT_EQ(set->readiness.broker_outage_grace_ms, 0u);
  EXPECT_EQ(set->topics[0].readiness, TopicReadiness::kOptional);
  EXPECT_EQ(set->topics[1].readiness, TopicReadiness::kRequired);
  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
readiness: {broker_outage_at_start: always, broker_outage_grace_ms: -1}
topics: [{name: a, readiness: sometimes}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "readiness.broker_outage_at_start"),
              HasSubstr("serve_stored or wait"));
  EXPECT_THAT(ProblemFor(bad.status(), "readiness.broker_outage_grace_ms"),
              HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(bad.status(), "topics[0].readiness"), HasSubstr("required or optional"));
}

TEST(ConfigTest, ClientLimitsAreReadAndChecked) {
  auto cfg = ParseConfig(kMinimal, "c.yaml", Env());
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->grpc.max_waiting_calls, 10000u);
  EXPECT_EQ(cfg->grpc.max_concurrent_streams, 1000u);
  EXPECT_EQ(cfg->watch.buffer_bytes, 16u << 20);
  auto set = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
grpc: {max_waiting_calls: 5, max_concurrent_streams: 7}
watch: {buffer_bytes: 65536}
topics: [{name: a}]
)",
                         "c.yaml", Env());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->watch.buffer_bytes, 65536u);
  EXPECT_EQ(set->grpc.max_waiting_calls, 5u);
  EXPECT_EQ(set->grpc.max_concurrent_streams, 7u);
  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
grpc: {max_waiting_calls: 0, max_concurrent_streams: -1}
topics: [{name: a}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "grpc.max_waiting_calls"), HasSubstr("between"));
  EXPECT_FALSE(ProblemFor(bad.status(), "grpc.max_concurrent_streams").empty());
}

TEST(ConfigTest, SchemaPatternAndFormatChoicesAreRead) {
  auto cfg = ParseConfig(kMinimal, "c.yaml", Env());
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->topics[0].schema_patterns, SchemaPatterns::kLinear);
  EXPECT_EQ(cfg->topics[0].schema_formats, SchemaFormats::kAssert);
  EXPECT_EQ(cfg->schemas.backtrack_limit, 10000u);
  EXPECT_EQ(cfg->schemas.backtracking_max_string_bytes, 4096u);
  auto set = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
schemas: {backtrack_limit: 500, backtracking_max_string_bytes: 256}
topics: [{name: a, schema_patterns: backtracking, schema_formats: annotate}]
)",
                         "c.yaml", Env());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->topics[0].schema_patterns, SchemaPatterns::kBacktracking);
  EXPECT_EQ(set->topics[0].schema_formats, SchemaFormats::kAnnotate);
  EXPECT_EQ(set->schemas.backtrack_limit, 500u);
  EXPECT_EQ(set->schemas.backtracking_max_string_bytes, 256u);
  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
schemas: {backtrack_limit: 0, backtracking_max_string_bytes: 99999999999}
topics: [{name: a, schema_patterns: fancy, schema_formats: maybe}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "topics[0].schema_patterns"),
              HasSubstr("linear or backtracking"));
  EXPECT_THAT(ProblemFor(bad.status(), "topics[0].schema_formats"), HasSubstr("assert or annotate"));
  EXPECT_THAT(ProblemFor(bad.status(), "schemas.backtrack_limit"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "schemas.backtracking_max_string_bytes"),
              HasSubstr("between"));
}

TEST(ConfigTest, NonLoopbackListenersNeedExplicitConsent) {
  const char* text = R"(
kafka: {bootstrap_servers: a:1}
grpc: {address: "0.0.0.0:50051"}
http: {address: "10.0.0.5:9090"}
topics: [{name: a}]
)";
  auto cfg = ParseConfig(text, "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "grpc.address"), HasSubstr("grpc.allow_non_loopback"));
  EXPECT_THAT(ProblemFor(cfg.status(), "http.address"), HasSubstr("http.allow_non_loopback"));
  cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
grpc: {address: "0.0.0.0:50051", allow_non_loopback: true}
http: {address: "0.0.0.0:9090", allow_non_loopback: true}
topics: [{name: a}]
)",
                    "c.yaml", Env());
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
}

TEST(ConfigTest, ListenAddressesMustBeHostPort) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
grpc: {address: "localhost"}
http: {address: "127.0.0.1:99999"}
topics: [{name: a}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "grpc.address"), HasSubstr("host:port"));
  EXPECT_THAT(ProblemFor(cfg.status(), "http.address"), HasSubstr("port"));
}

TEST(ConfigTest, SomewhereToListenIsRequired) {
  auto cfg = ParseConfig("kafka: {bootstrap_servers: a:1}\ngrpc: {address: ''}\ntopics: [{name: a}]\n",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "grpc.address"), HasSubstr("listen somewhere"));
}

TEST(ConfigTest, LogSettingsAreChecked) {
  auto cfg = ParseConfig(
      "kafka: {bootstrap_servers: a:1}\nlog: {level: loud, format: xml}\ntopics: [{name: a}]\n",
      "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(ProblemFor(cfg.status(), "log.level"), HasSubstr("must be trace"));
  EXPECT_THAT(ProblemFor(cfg.status(), "log.format"), HasSubstr("json or text"));
}

TEST(ConfigTest, SchemaPathsResolveAgainstTheConfigDirectory) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/users.schema.json") << "{}";
  std::string text = R"(
kafka: {bootstrap_servers: a:1}
topics:
  - {name: a, schema: users.schema.json}
  - {name: b, schema: missing.json}
  - {name: c, value_format: bytes, schema: users.schema.json}
)";
  auto cfg = ParseConfig(text, dir.path() + "/c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(ProblemFor(cfg.status(), "topics[0].schema"), "");
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[1].schema"), HasSubstr("does not exist"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[2].schema"), HasSubstr("value_format: json"));
}

TEST(ConfigTest, WritePolicyDefaultsAreSafe) {
  auto cfg = ParseConfig("kafka: {bootstrap_servers: a:1}\ntopics: [{name: a}]\n", "c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const TopicConfig& t = cfg->topics[0];
  EXPECT_TRUE(t.read_only);
  EXPECT_EQ(t.on_invalid, InvalidPolicy::kSkip);
  EXPECT_EQ(t.max_value_bytes, 1u << 20);
  EXPECT_EQ(t.rejected_history, 100u);
  EXPECT_EQ(cfg->schemas.reload_interval_ms, 5000u);
  EXPECT_EQ(cfg->writes.max_wait_ms, 30000u);
}

TEST(ConfigTest, InvalidRecordPolicyIsChecked) {
  std::string text = R"(
kafka: {bootstrap_servers: a:1}
schemas: {reload_interval_ms: 250}
writes: {linger_ms: 2, delivery_timeout_ms: 5000, max_wait_ms: 100}
topics:
  - {name: a, on_invalid: dead-letter, dead_letter_topic: a.dlq, read_only: false}
  - {name: b, on_invalid: dead-letter}
  - {name: c, on_invalid: explode}
  - {name: d, on_invalid: fail, dead_letter_topic: d.dlq}
  - {name: e, on_invalid: dead-letter, dead_letter_topic: "bad name"}
  - {name: f, on_invalid: dead-letter, dead_letter_topic: f}
  - {name: g, max_value_bytes: 0, rejected_history: 100001}
)";
  auto cfg = ParseConfig(text, "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(ProblemFor(cfg.status(), "topics[0].dead_letter_topic"), "");
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[1].dead_letter_topic"), HasSubstr("required"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[2].on_invalid"), HasSubstr("skip, dead-letter or fail"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[3].dead_letter_topic"), HasSubstr("only used"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[4].dead_letter_topic"), HasSubstr("not a Kafka topic"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[5].dead_letter_topic"), HasSubstr("itself"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[6].max_value_bytes"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(cfg.status(), "topics[6].rejected_history"), HasSubstr("between"));
  EXPECT_EQ(cfg.status().violations().size(), 7u);

  auto ok = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
schemas: {reload_interval_ms: 250}
writes: {linger_ms: 2, delivery_timeout_ms: 5000, max_wait_ms: 100}
topics: [{name: a, on_invalid: dead-letter, dead_letter_topic: a.dlq, read_only: false}]
)", "c.yaml", Env());
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->topics[0].on_invalid, InvalidPolicy::kDeadLetter);
  EXPECT_EQ(ok->topics[0].dead_letter_topic, "a.dlq");
  EXPECT_FALSE(ok->topics[0].read_only);
  EXPECT_EQ(ok->schemas.reload_interval_ms, 250u);
  EXPECT_EQ(ok->writes.linger_ms, 2u);
  EXPECT_EQ(ok->writes.delivery_timeout_ms, 5000u);
  EXPECT_EQ(ok->writes.max_wait_ms, 100u);
}

TEST(ConfigTest, WatchSettingsHaveDefaultsAndBounds) {
  auto defaults = ParseConfig("kafka: {bootstrap_servers: a:1}\ntopics: [{name: a}]\n", "c.yaml", Env());
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->watch.history_events, 100000u);
  EXPECT_EQ(defaults->watch.progress_interval_ms, 10000u);
  EXPECT_EQ(defaults->watch.buffer_events, 1024u);
  EXPECT_EQ(defaults->watch.slow_consumer_timeout_ms, 30000u);
  EXPECT_EQ(defaults->watch.max_watches_per_stream, 1000u);
  EXPECT_EQ(defaults->watch.max_watches, 20000u);

  auto ok = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
materializer: {batch_max_records: 500}
watch: {history_events: 500, progress_interval_ms: 0, buffer_events: 8, max_watches_per_stream: 2, max_watches: 3}
topics: [{name: a}]
)", "c.yaml", Env());
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->watch.history_events, 500u);
  EXPECT_EQ(ok->watch.progress_interval_ms, 0u);
  EXPECT_EQ(ok->watch.buffer_events, 8u);
  EXPECT_EQ(ok->watch.max_watches_per_stream, 2u);
  EXPECT_EQ(ok->watch.max_watches, 3u);

  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
watch: {history_events: 5, buffer_events: 0, slow_consumer_timeout_ms: 5, max_watches: -1, max_watches_per_stream: lots, histroy: 1}
topics: [{name: a}]
)", "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "watch.history_events"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "watch.buffer_events"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "watch.slow_consumer_timeout_ms"), HasSubstr("between"));
  EXPECT_NE(ProblemFor(bad.status(), "watch.max_watches"), "");
  EXPECT_NE(ProblemFor(bad.status(), "watch.max_watches_per_stream"), "");
  EXPECT_NE(ProblemFor(bad.status(), "watch.histroy"), "");
}

TEST(ConfigTest, LoadConfigReportsAnUnreadableFile) {
  auto cfg = LoadConfig("/nonexistent/cachecar.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("cannot read config file"));
}

TEST(ConfigTest, HostileInputDoesNotCrash) {
  // Deep nesting, anchors and binary garbage all end in an error, not a crash.
  std::string deep(5000, '[');
  EXPECT_FALSE(ParseConfig(deep, "c.yaml", Env()).ok());
  EXPECT_FALSE(ParseConfig(std::string("\0\xff\xfe", 3), "c.yaml", Env()).ok());
  EXPECT_FALSE(ParseConfig("a: &x [*x]\n", "c.yaml", Env()).ok());
  EXPECT_FALSE(ParseConfig("topics: [{name: " + std::string(300, 'a') + "}]\n", "c.yaml", Env()).ok());
}

TEST(TopicNameTest, FollowsKafkaRules) {
  EXPECT_TRUE(IsValidTopicName("users"));
  EXPECT_TRUE(IsValidTopicName("a.b_c-D9"));
  EXPECT_FALSE(IsValidTopicName(""));
  EXPECT_FALSE(IsValidTopicName("."));
  EXPECT_FALSE(IsValidTopicName(".."));
  EXPECT_FALSE(IsValidTopicName("a b"));
  EXPECT_FALSE(IsValidTopicName("a/b"));
  EXPECT_FALSE(IsValidTopicName(std::string(250, 'a')));
  EXPECT_TRUE(IsValidTopicName(std::string(249, 'a')));
}

}  // namespace
}  // namespace cachecar::config

namespace cachecar::config {
namespace {

TEST(ConfigTest, MetadataRefreshHasADefaultAndBounds) {
  auto d = ParseConfig("kafka: {bootstrap_servers: a:1}\ntopics: [{name: a}]\n", "c.yaml", Env());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kafka.metadata_refresh_ms, 10000u);
  auto set = ParseConfig(
      "kafka: {bootstrap_servers: a:1, metadata_refresh_ms: 500}\ntopics: [{name: a}]\n",
      "c.yaml", Env());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->kafka.metadata_refresh_ms, 500u);
  for (const char* bad : {"0", "99", "300001", "soon"}) {
    auto r = ParseConfig(std::string("kafka: {bootstrap_servers: a:1, metadata_refresh_ms: ") +
                             bad + "}\ntopics: [{name: a}]\n",
                         "c.yaml", Env());
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_FALSE(r.status().violations().empty()) << bad;
    EXPECT_EQ(r.status().violations()[0].field, "kafka.metadata_refresh_ms") << bad;
  }
}

}  // namespace
}  // namespace cachecar::config

namespace cachecar::config {
namespace {

// One commit holds up to batch_max_records changes; a commit bigger than the history
// window would make the hub cancel every live watch on every topic.
TEST(ConfigTest, HistoryWindowMustHoldTheLargestCommit) {
  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
watch: {history_events: 1000}
topics: [{name: a}]
)",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "watch.history_events"),
              HasSubstr("at least materializer.batch_max_records (10000)"));
  auto ok = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
materializer: {batch_max_records: 1000}
watch: {history_events: 1000}
topics: [{name: a}]
)",
                        "c.yaml", Env());
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

}  // namespace
}  // namespace cachecar::config

namespace cachecar::config {
namespace {

TEST(ConfigTest, RetainBeyondLogIsAnOptInPerTopic) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
topics: [{name: a}, {name: b, retain_beyond_log: true}]
)",
                         "c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_FALSE(cfg->topics[0].retain_beyond_log);
  EXPECT_TRUE(cfg->topics[1].retain_beyond_log);
  auto bad = ParseConfig("kafka: {bootstrap_servers: a:1}\n"
                         "topics: [{name: a, retain_beyond_log: sometimes}]\n",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "topics[0].retain_beyond_log"),
              HasSubstr("true or false"));
}

TEST(ConfigTest, TransformsAndApplyModesAreReadWithTheirPlace) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
transforms: {record_budget_ms: 250, max_memory_bytes: 134217728}
topics:
  - name: a
  - name: b
    apply: merge-patch
    transform: |
      {id, email: $key}
)",
                         "c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->topics[0].apply, ApplyMode::kReplace);
  EXPECT_TRUE(cfg->topics[0].transform.empty());
  EXPECT_EQ(cfg->topics[1].apply, ApplyMode::kMergePatch);
  EXPECT_EQ(cfg->topics[1].transform, "{id, email: $key}\n");  // a lone $ is not expanded
  EXPECT_EQ(cfg->topics[1].transform_place, "c.yaml:8:16");
  EXPECT_TRUE(cfg->topics[0].serves_original());
  EXPECT_FALSE(cfg->topics[1].serves_original());  // transformed and merged
  EXPECT_EQ(cfg->transforms.record_budget_ms, 250u);
  EXPECT_EQ(cfg->transforms.max_memory_bytes, 134217728u);

  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
transforms: {record_budget_ms: 0, max_memory_bytes: 1, extra: 1}
topics:
  - {name: a, transform: "  "}
  - {name: b, value_format: bytes, transform: ".", apply: merge-patch}
  - {name: c, apply: sometimes}
)",
                         "c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "topics[0].transform"), HasSubstr("jq filter"));
  EXPECT_THAT(ProblemFor(bad.status(), "topics[1].transform"), HasSubstr("value_format: json"));
  EXPECT_THAT(ProblemFor(bad.status(), "topics[1].apply"), HasSubstr("value_format: json"));
  EXPECT_THAT(ProblemFor(bad.status(), "topics[2].apply"), HasSubstr("replace or merge-patch"));
  EXPECT_FALSE(ProblemFor(bad.status(), "transforms.record_budget_ms").empty());
  EXPECT_FALSE(ProblemFor(bad.status(), "transforms.max_memory_bytes").empty());
  EXPECT_FALSE(ProblemFor(bad.status(), "transforms.extra").empty());
}

TEST(ConfigTest, PeerAndBootstrapSettingsAreReadAndChecked) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/peer-token") << "s3cret\n";
  std::ofstream(dir.path() + "/empty") << "\n";
  auto defaults = ParseConfig(kMinimal, "c.yaml", Env());
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults->peers.listen.empty());
  EXPECT_TRUE(defaults->bootstrap.peers.empty());
  EXPECT_EQ(defaults->peers.max_transfers, 2u);
  EXPECT_EQ(defaults->peers.max_bytes_per_second, 100ull << 20);

  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
peers:
  listen: 0.0.0.0:50052
  token_file: peer-token
  work_dir: /tmp/snaps
  max_transfers: 1
  max_bytes_per_second: 1048576
bootstrap:
  peers: [cachecar-peers.ns.svc:50052, "[::1]:50052"]
  from_file: /backups/users.snap
  transfer_timeout_ms: 60000
  connect_timeout_ms: 1000
topics: [{name: a}]
)",
                         dir.path() + "/c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->peers.listen, "0.0.0.0:50052");  // the peer port needs no consent flag
  EXPECT_EQ(cfg->peers.token, "s3cret");
  EXPECT_EQ(cfg->peers.work_dir, "/tmp/snaps");
  EXPECT_EQ(cfg->peers.max_transfers, 1u);
  EXPECT_EQ(cfg->bootstrap.peers,
            (std::vector<std::string>{"cachecar-peers.ns.svc:50052", "[::1]:50052"}));
  EXPECT_EQ(cfg->bootstrap.from_file, "/backups/users.snap");
  EXPECT_EQ(cfg->bootstrap.transfer_timeout_ms, 60000u);

  Overrides o;
  o.bootstrap_from = "/other.snap";
  auto overridden = ParseConfig(kMinimal, "c.yaml", Env(), o);
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ(overridden->bootstrap.from_file, "/other.snap");

  // No token: refused, whichever side asks for peers.
  for (const char* yaml : {"kafka: {bootstrap_servers: a:1}\npeers: {listen: 0.0.0.0:1}\n"
                           "topics: [{name: a}]\n",
                           "kafka: {bootstrap_servers: a:1}\nbootstrap: {peers: [p:1]}\n"
                           "topics: [{name: a}]\n"}) {
    auto bad = ParseConfig(yaml, dir.path() + "/c.yaml", Env());
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_THAT(ProblemFor(bad.status(), "peers.token_file"), HasSubstr("required")) << yaml;
  }
  auto bad = ParseConfig(R"(
kafka: {bootstrap_servers: a:1}
peers: {listen: "nohost", token_file: empty, max_transfers: 0, max_bytes_per_second: 10}
bootstrap: {peers: [no-port, "", {a: b}], transfer_timeout_ms: 5, connect_timeout_ms: x}
topics: [{name: a}]
)",
                         dir.path() + "/c.yaml", Env());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(ProblemFor(bad.status(), "peers.listen"), HasSubstr("host:port"));
  EXPECT_THAT(ProblemFor(bad.status(), "peers.token_file"), HasSubstr("is empty"));
  EXPECT_THAT(ProblemFor(bad.status(), "peers.max_transfers"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "peers.max_bytes_per_second"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "bootstrap.peers[0]"), HasSubstr("host:port"));
  EXPECT_THAT(ProblemFor(bad.status(), "bootstrap.peers[1]"), HasSubstr("host:port"));
  EXPECT_FALSE(ProblemFor(bad.status(), "bootstrap.peers[2]").empty());
  EXPECT_THAT(ProblemFor(bad.status(), "bootstrap.transfer_timeout_ms"), HasSubstr("between"));
  EXPECT_THAT(ProblemFor(bad.status(), "bootstrap.connect_timeout_ms"),
              HasSubstr("whole number"));
  auto not_list = ParseConfig(
      "kafka: {bootstrap_servers: a:1}\npeers: {token_file: peer-token}\n"
      "bootstrap: {peers: one:1}\ntopics: [{name: a}]\n",
      dir.path() + "/c.yaml", Env());
  ASSERT_FALSE(not_list.ok());
  EXPECT_THAT(ProblemFor(not_list.status(), "bootstrap.peers"), HasSubstr("a list"));
}

TEST(ConfigTest, ViewsComeAfterEveryTopicAndFollowTheirOwn) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: localhost:9092}
topics:
  - name: users
    views:
      - {name: users-by-email, key: .email}
      - {name: users-by-team, key: ".teams[]"}
  - name: sessions
    readiness: optional
    views: [{name: sessions-by-user, key: .user.id}]
)",
                         "c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->topics.size(), 5u);
  EXPECT_EQ(cfg->kafka_topic_count(), 2u);
  EXPECT_EQ(cfg->topics[0].views, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(cfg->topics[1].views, (std::vector<size_t>{4}));
  const TopicConfig& by_user = cfg->topics[4];
  EXPECT_EQ(by_user.name, "sessions-by-user");
  EXPECT_EQ(by_user.view_of, std::optional<size_t>(1));
  EXPECT_EQ(by_user.view_topic, "sessions");
  EXPECT_EQ(by_user.view_key, ".user.id");
  EXPECT_EQ(by_user.view_key_place, "c.yaml:10:43");
  EXPECT_TRUE(by_user.read_only);
  EXPECT_EQ(by_user.readiness, TopicReadiness::kOptional);  // as its topic
  EXPECT_EQ(cfg->topics[2].view_key, ".email");
  EXPECT_FALSE(cfg->topics[0].is_view());
  EXPECT_EQ(cfg->FindTopic("users-by-team"), &cfg->topics[3]);
}

TEST(ConfigTest, BadViewsAreRefusedWithTheirPlace) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: localhost:9092}
topics:
  - name: users
    views:
      - {name: users, key: .a}
      - {name: "bad name", key: .a}
      - {name: no-key}
      - {name: blank, key: "  "}
      - {name: x, key: .a, extra: 1}
  - name: raw
    value_format: bytes
    views: [{name: raw-v, key: .a}]
  - name: binkeys
    key_encoding: bytes
    views: [{name: bin-v, key: .a}]
  - name: notalist
    views: {name: v, key: .a}
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  const Status& st = cfg.status();
  EXPECT_NE(ProblemFor(st, "topics[0].views[0].name"), "") << st.ToString();
  EXPECT_NE(ProblemFor(st, "topics[0].views[1].name"), "") << st.ToString();
  EXPECT_NE(ProblemFor(st, "topics[0].views[2].key"), "") << st.ToString();
  EXPECT_NE(ProblemFor(st, "topics[0].views[3].key"), "") << st.ToString();
  EXPECT_NE(ProblemFor(st, "topics[1].views"), "") << st.ToString();
  EXPECT_NE(ProblemFor(st, "topics[2].views"), "") << st.ToString();
  EXPECT_NE(ProblemFor(st, "topics[3].views"), "") << st.ToString();
  EXPECT_NE(st.ToString().find("line 6, column 16: \"users\" already names"), std::string::npos)
      << st.ToString();
}

TEST(ConfigTest, RegistryTopicsTakeTheirSubjectAndNeedARegistry) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: localhost:9092}
registry: {url: "http://registry:8080/apis/ccompat/v7", timeout_ms: 1500}
topics:
  - {name: users, value_format: registry}
  - {name: orders, value_format: registry, registry_subject: shop.Order, registry_version: 3}
  - {name: cdc, key_format: registry}
  - {name: kept, value_format: registry, keep_original: true}
)",
                         "c.yaml", Env());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_FALSE(cfg->topics[0].keep_original);  // not kept by default
  EXPECT_FALSE(cfg->topics[0].serves_original());
  EXPECT_TRUE(cfg->topics[3].keep_original);
  EXPECT_TRUE(cfg->topics[3].serves_original());
  EXPECT_TRUE(cfg->topics[2].serves_original());  // json values stored as they came
  EXPECT_EQ(cfg->topics[0].registry_version, 0);  // the latest
  EXPECT_EQ(cfg->topics[1].registry_version, 3);
  EXPECT_FALSE(cfg->topics[0].registry_keys);
  EXPECT_TRUE(cfg->topics[2].registry_keys);
  EXPECT_EQ(cfg->topics[2].registry_key_subject, "cdc-key");  // TopicNameStrategy
  EXPECT_EQ(cfg->topics[0].registry_key_subject, "");
  EXPECT_EQ(cfg->topics[2].value_format, ValueFormat::kJson);
  EXPECT_EQ(cfg->registry.url, "http://registry:8080/apis/ccompat/v7");
  EXPECT_EQ(cfg->registry.timeout_ms, 1500u);
  EXPECT_EQ(cfg->topics[0].value_format, ValueFormat::kRegistry);
  EXPECT_EQ(cfg->topics[0].registry_subject, "users-value");  // TopicNameStrategy
  EXPECT_EQ(cfg->topics[1].registry_subject, "shop.Order");
  EXPECT_TRUE(cfg->topics[0].json_values());
}

TEST(ConfigTest, BadRegistrySettingsAreRefusedWithTheirPlace) {
  auto cfg = ParseConfig(R"(
kafka: {bootstrap_servers: localhost:9092}
topics:
  - {name: a, value_format: registry}
  - {name: b, registry_subject: s}
  - {name: c, value_format: registry, transform: ".", apply: merge-patch}
  - {name: d, value_format: registry, registry_subject: ""}
  - {name: e, value_format: avro}
  - {name: f, value_format: registry, registry_version: 0}
  - {name: g, value_format: registry, registry_version: latest}
  - {name: h, registry_version: 2}
  - {name: i, key_format: avro}
  - {name: k, key_format: registry, read_only: false, transform: "."}
  - {name: l, keep_original: false}
  - {name: m, value_format: registry, keep_original: "sometimes"}
  - {name: n, registry_key_subject: keys}
  - {name: o, key_format: registry, registry_key_subject: ""}
)",
                         "c.yaml", Env());
  ASSERT_FALSE(cfg.ok());
  const Status& st = cfg.status();
  EXPECT_THAT(ProblemFor(st, "registry.url"), HasSubstr("value_format: registry"));
  EXPECT_THAT(ProblemFor(st, "topics[1].registry_subject"), HasSubstr("only used with"));
  EXPECT_THAT(ProblemFor(st, "topics[2].transform"), HasSubstr("not supported for registry"));
  EXPECT_THAT(ProblemFor(st, "topics[2].apply"), HasSubstr("not supported for registry"));
  EXPECT_THAT(ProblemFor(st, "topics[3].registry_subject"), HasSubstr("must name a subject"));
  EXPECT_THAT(ProblemFor(st, "topics[4].value_format"), HasSubstr("json, bytes or registry"));
  EXPECT_THAT(ProblemFor(st, "topics[5].registry_version"), HasSubstr("between 1 and"));
  EXPECT_THAT(ProblemFor(st, "topics[6].registry_version"), HasSubstr("whole number"));
  EXPECT_THAT(ProblemFor(st, "topics[7].registry_version"), HasSubstr("only used with"));
  EXPECT_THAT(ProblemFor(st, "topics[8].key_format"), HasSubstr("raw"));
  EXPECT_EQ(ProblemFor(st, "topics[9].read_only"), "");  // Puts encode registry keys
  EXPECT_THAT(ProblemFor(st, "topics[9].transform"), HasSubstr("key_format: registry"));
  EXPECT_THAT(ProblemFor(st, "topics[10].keep_original"), HasSubstr("only used with"));
  EXPECT_THAT(ProblemFor(st, "topics[11].keep_original"), HasSubstr("true or false"));
  EXPECT_THAT(ProblemFor(st, "topics[12].registry_key_subject"), HasSubstr("only used with"));
  EXPECT_THAT(ProblemFor(st, "topics[13].registry_key_subject"), HasSubstr("must name"));

  auto urls = ParseConfig(R"(
kafka: {bootstrap_servers: localhost:9092}
registry: {url: "ftp://x", username_file: u.txt, timeout_ms: 0, surprise: 1}
topics: [{name: a, value_format: registry}]
)",
                          "c.yaml", Env());
  ASSERT_FALSE(urls.ok());
  EXPECT_THAT(ProblemFor(urls.status(), "registry.url"), HasSubstr("http:// or https://"));
  EXPECT_NE(ProblemFor(urls.status(), "registry.timeout_ms"), "") << urls.status().ToString();
  EXPECT_NE(ProblemFor(urls.status(), "registry.surprise"), "") << urls.status().ToString();
  EXPECT_NE(ProblemFor(urls.status(), "registry.username_file"), "")
      << urls.status().ToString();
}

}  // namespace
}  // namespace cachecar::config
