// The rules a key given by a client must follow, the same for every RPC that takes one
// (Get, BatchGet, Put, Delete, Watch). Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>

#include "config/config.h"

namespace cachecar::api {

// Why `key` is not acceptable for `topic` ("required", too long, not UTF-8 on a utf-8
// keyed topic), or empty when it is. Builds no string for a good key: BatchGet checks up
// to max_batch_keys of them per call.
std::string ValidateKey(const config::TopicConfig& topic, const std::string& key,
                        size_t max_key_bytes);

// The key as the store holds it: `key` itself, or its canonical JSON on a key_format:
// registry topic (ValidateKey has said it is JSON).
std::string StoredKey(const config::TopicConfig& topic, const std::string& key);

}  // namespace cachecar::api
