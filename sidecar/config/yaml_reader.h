// YamlReader: walks a config's YAML tree, expanding ${ENV} in every scalar and collecting
// every problem with its path and place ("line 12, column 5: must be a whole number")
// instead of stopping at the first. Internal to config/; not thread-safe (one per parse).
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace cachecar::config {

class YamlReader {
 public:
  explicit YamlReader(const EnvLookup& env) : env_(env) {}

  std::vector<FieldViolation>& problems() { return problems_; }

  void Problem(const std::string& path, const YAML::Node& node, const std::string& what) {
    std::string where;
    if (node && node.Mark().line >= 0) {
      where = "line " + std::to_string(node.Mark().line + 1) + ", column " +
              std::to_string(node.Mark().column + 1) + ": ";
    }
    problems_.push_back({path, where + what});
  }

  // Checks that `node` is a map whose keys are all in `allowed`, with no duplicates.
  bool ExpectMap(const std::string& path, const YAML::Node& node,
                 const std::set<std::string>& allowed) {
    if (!node.IsMap()) {
      Problem(path, node, "must be a mapping");
      return false;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      std::string key = kv.first.Scalar();
      std::string child = path.empty() ? key : Join(path, key.c_str());
      if (!seen.insert(key).second) Problem(child, kv.first, "duplicate key");
      if (!allowed.count(key)) Problem(child, kv.first, "unknown field");
    }
    return true;
  }

  // Reads a scalar as a string with ${ENV} expanded. nullopt (and a problem) if not a scalar.
  std::optional<std::string> String(const std::string& path, const YAML::Node& node) {
    if (!node.IsScalar()) {
      Problem(path, node, "must be a string");
      return std::nullopt;
    }
    Result<std::string> s = ExpandEnv(node.Scalar(), env_);
    if (!s.ok()) {
      Problem(path, node, s.status().message());
      return std::nullopt;
    }
    return s.value();
  }

  void ReadString(const YAML::Node& parent, const std::string& path, const char* key,
                  std::string* out) {
    YAML::Node n = parent[key];
    if (!n) return;
    if (auto s = String(Join(path, key), n)) *out = *s;
  }

  void ReadBool(const YAML::Node& parent, const std::string& path, const char* key, bool* out) {
    YAML::Node n = parent[key];
    if (!n) return;
    auto s = String(Join(path, key), n);
    if (!s) return;
    if (*s == "true") {
      *out = true;
    } else if (*s == "false") {
      *out = false;
    } else {
      Problem(Join(path, key), n, "must be true or false, not \"" + *s + "\"");
    }
  }

  template <typename T>
  void ReadUint(const YAML::Node& parent, const std::string& path, const char* key, T* out,
                uint64_t min, uint64_t max) {
    YAML::Node n = parent[key];
    if (!n) return;
    auto s = String(Join(path, key), n);
    if (!s) return;
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end != s->data() + s->size() || s->empty()) {
      Problem(Join(path, key), n, "must be a whole number, not \"" + *s + "\"");
      return;
    }
    if (v < min || v > max) {
      Problem(Join(path, key), n,
              "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return;
    }
    *out = static_cast<T>(v);
  }

  static std::string Join(const std::string& path, const char* key) {
    return path.empty() ? key : path + "." + key;
  }

 private:
  const EnvLookup& env_;
  std::vector<FieldViolation> problems_;
};

// A secret file's content: the whole file less one trailing newline (editors and
// `kubectl create secret --from-file` add one). nullopt and `error` set on failure.
std::optional<std::string> ReadSecretFile(const std::string& path, std::string* error);

bool IsLoopbackHost(const std::string& host);

// Checks a host:port listen address; `allow_any` permits non-loopback hosts, else the
// problem names `allow_field` as the way to allow them.
void CheckListenAddress(YamlReader& r, const std::string& path, const YAML::Node& node,
                        const std::string& address, bool allow_any, const char* allow_field);

}  // namespace cachecar::config
