// `cachecarctl validate` and `cachecarctl transform`: a value against a topic's rules
// offline, exactly as the sidecar would (the same configuration parsing, schema
// compilation, WriteHandler::CheckValue: size, JSON, JSON Schema; and EntryPreview:
// transform, merge-patch, entry_schema), without a sidecar or Kafka.
#pragma once

#include <optional>
#include <string>

namespace cachecar::client {

// Prints the verdict (every violation) to stdout in `output` form (table or json).
// Returns cachecarctl's exit code: 0 valid, 5 invalid or unknown topic, 2 the
// configuration or a schema cannot be loaded.
int RunValidate(const std::string& config_path, const std::string& topic,
                const std::string& value, const std::string& output);

struct TransformOptions {
  std::string key;  // $key
  // merge-patch: the key's current value to merge onto (nullopt: none).
  std::optional<std::optional<std::string>> current;
};

// Prints what the record would make of its key: the value stored, "delete", "skip", or
// why it is invalid. Exit codes as RunValidate.
int RunTransform(const std::string& config_path, const std::string& topic,
                 const std::string& value, const TransformOptions& options,
                 const std::string& output);

}  // namespace cachecar::client
