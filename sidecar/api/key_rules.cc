#include "api/key_rules.h"

#include "common/canonical_json.h"
#include "common/utf8.h"

namespace cachecar::api {

std::string ValidateKey(const config::TopicConfig& topic, const std::string& key,
                        size_t max_key_bytes) {
  if (key.empty()) return "required";
  if (key.size() > max_key_bytes) {
    return "is " + std::to_string(key.size()) + " bytes; at most " +
           std::to_string(max_key_bytes) + " allowed";
  }
  if (topic.key_encoding == config::KeyEncoding::kUtf8 && !IsValidUtf8(key)) {
    return "must be valid UTF-8 (topic " + topic.name + " has key_encoding utf-8)";
  }
  if (topic.registry_keys && !CanonicalJson(key)) {
    return "must be the key as JSON, nested at most " + std::to_string(kMaxCanonicalJsonDepth) +
           " deep (topic " + topic.name + " has key_format: registry)";
  }
  return {};
}

std::string StoredKey(const config::TopicConfig& topic, const std::string& key) {
  if (!topic.registry_keys) return key;
  std::optional<std::string> canonical = CanonicalJson(key);
  return canonical ? *canonical : key;
}

}  // namespace cachecar::api
