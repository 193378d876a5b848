// `cachecarctl validate`: checks a value against a topic's rules offline, exactly as the
// sidecar's Put would (the same configuration parsing, schema compilation and
// WriteHandler::CheckValue: size, JSON, JSON Schema), without a sidecar or Kafka.
#pragma once

#include <string>

namespace cachecar::client {

// Prints the verdict (every violation) to stdout in `output` form (table or json).
// Returns cachecarctl's exit code: 0 valid, 5 invalid or unknown topic, 2 the
// configuration or a schema cannot be loaded.
int RunValidate(const std::string& config_path, const std::string& topic,
                const std::string& value, const std::string& output);

}  // namespace cachecar::client
