#include "rpc/auth.h"

#include <string_view>

namespace cachecar::rpc {
namespace {

// Equal strings, in time that depends only on their lengths.
bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace

Status CheckBearerToken(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                        const std::string& token) {
  if (token.empty()) return Status::Ok();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return Status(Code::kUnauthenticated,
                  "this sidecar requires a token: send \"authorization: Bearer <token>\"",
                  "UNAUTHENTICATED");
  }
  std::string_view value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.substr(0, kBearer.size()) != kBearer ||
      !ConstantTimeEqual(value.substr(kBearer.size()), token)) {
    return Status(Code::kUnauthenticated, "the token is not valid", "UNAUTHENTICATED");
  }
  return Status::Ok();
}

}  // namespace cachecar::rpc
