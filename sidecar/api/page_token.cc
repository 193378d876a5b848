#include "api/page_token.h"

#include <absl/strings/escaping.h>
#include <openssl/sha.h>

namespace cachecar::api {
namespace {

constexpr char kTokenVersion = 1;
constexpr size_t kBindingBytes = 8;

std::string Binding(const std::string& topic, const std::string& prefix) {
  std::string material = topic;
  material.push_back('\0');
  material += prefix;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), kBindingBytes);
}

Status BadToken(std::string problem) {
  return InvalidArgument("the request is invalid", {{"page_token", std::move(problem)}});
}

}  // namespace

std::string EncodePageToken(const std::string& topic, const std::string& prefix,
                            const std::string& cursor) {
  std::string raw(1, kTokenVersion);
  raw += Binding(topic, prefix);
  raw += cursor;
  return absl::WebSafeBase64Escape(raw);
}

Result<std::string> DecodePageToken(const std::string& token, const std::string& topic,
                                    const std::string& prefix) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.size() <= 1 + kBindingBytes ||
      raw[0] != kTokenVersion) {
    return BadToken("is not a page token issued by this sidecar");
  }
  if (raw.substr(1, kBindingBytes) != Binding(topic, prefix)) {
    return BadToken("was issued for another topic or prefix");
  }
  return raw.substr(1 + kBindingBytes);
}

}  // namespace cachecar::api
