#include "peer/topic_settings.h"

#include <openssl/evp.h>

#include <map>

#include "common/hex.h"
#include "schema/schema_set.h"

namespace cachecar::peer {
namespace {

std::string HexSha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return LowerHex(digest, len);
}

}  // namespace

std::string TopicSettingsFingerprint(const config::TopicConfig& topic,
                                     const std::string& schema_content_fingerprint) {
  // Versioned, so a later change of what counts is a clean mismatch, not a false match.
  std::string s = "cachecar-topic-settings-1\n";
  s += "key_encoding=" + std::string(config::KeyEncodingName(topic.key_encoding)) + "\n";
  s += "value_format=" + std::string(config::ValueFormatName(topic.value_format)) + "\n";
  if (topic.registry_keys) s += "key_format=registry\n";  // absent: raw, as before
  if (topic.value_format == config::ValueFormat::kRegistry && topic.keep_original) {
    s += "original=kept\n";  // absent: not kept (as before they were)
  }
  s += "on_invalid=" + std::string(config::InvalidPolicyName(topic.on_invalid)) + "\n";
  s += "dead_letter_topic=" + topic.dead_letter_topic + "\n";
  s += std::string("retain_beyond_log=") + (topic.retain_beyond_log ? "true" : "false") + "\n";
  // What was stored depends on these as much as on the records.
  s += "apply=" + std::string(config::ApplyModeName(topic.apply)) + "\n";
  s += "transform=" + std::to_string(topic.transform.size()) + ":" + topic.transform + "\n";
  if (topic.is_view()) {
    s += "view_of=" + topic.view_topic + "\n";
    s += "view_key=" + std::to_string(topic.view_key.size()) + ":" + topic.view_key + "\n";
  }
  s += "schema_patterns=" +
       std::string(topic.schema_patterns == config::SchemaPatterns::kLinear ? "linear"
                                                                            : "backtracking") +
       "\n";
  s += "schema_formats=" +
       std::string(topic.schema_formats == config::SchemaFormats::kAssert ? "assert"
                                                                         : "annotate") +
       "\n";
  s += "schema=";
  s += schema_content_fingerprint;  // raw digest bytes, or empty
  return HexSha256(s);
}

std::vector<LocalTopic> LocalTopics(const config::Config& config,
                                    const schema::SchemaSet& schemas) {
  std::vector<LocalTopic> out;
  for (size_t i = 0; i < config.topics.size(); ++i) {
    const config::TopicConfig& t = config.topics[i];
    // A registry topic's schemas are what its registry says each id is.
    std::string schema = t.value_format == config::ValueFormat::kRegistry
                             ? "registry " + config.registry.url
                             : schemas.ContentFingerprint(i);
    if (t.registry_keys) schema += "\nkeys from registry " + config.registry.url;
    out.push_back({t.name, TopicSettingsFingerprint(t, schema)});
  }
  return out;
}

Status CheckCompatible(const std::vector<LocalTopic>& mine,
                       const google::protobuf::RepeatedPtrField<v1::SnapshotTopic>& offered) {
  std::map<std::string, std::string> theirs;
  for (const auto& t : offered) theirs[t.name()] = t.settings_fingerprint();
  std::string problems;
  for (const auto& t : mine) {
    auto it = theirs.find(t.name);
    std::string problem;
    if (it == theirs.end()) {
      problem = "topic " + t.name + " is not in it";
    } else if (it->second != t.fingerprint) {
      problem = "topic " + t.name +
                " is materialized with other settings (key or value format, on_invalid, "
                "schema or schema modes)";
    } else {
      continue;
    }
    problems += (problems.empty() ? "" : "; ") + problem;
  }
  if (problems.empty()) return Status::Ok();
  return Status(Code::kFailedPrecondition, "the snapshot does not fit this sidecar: " + problems,
                "PEER_INCOMPATIBLE");
}

}  // namespace cachecar::peer
