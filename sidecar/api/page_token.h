// List page tokens: opaque to clients, bound to the topic and prefix they were issued for
// (a token replayed against another topic or prefix is refused, never misread).
// Format: base64url(version byte | first 8 bytes of SHA-256(topic NUL prefix) | cursor).
// Pure functions; thread-safe.
#pragma once

#include <string>

#include "common/status.h"

namespace cachecar::api {

std::string EncodePageToken(const std::string& topic, const std::string& prefix,
                            const std::string& cursor);

// The cursor, or INVALID_ARGUMENT (a page_token field violation) if the token is
// malformed or was issued for another topic or prefix.
Result<std::string> DecodePageToken(const std::string& token, const std::string& topic,
                                    const std::string& prefix);

}  // namespace cachecar::api
