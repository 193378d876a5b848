// The shared-token check of every authenticated service (CacheService with
// grpc.auth_token_file, SnapshotService with peers.token_file). Pure; thread-safe.
#pragma once

#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>

#include "common/status.h"

namespace cachecar::rpc {

// OK when `token` is empty, or the metadata carries "authorization: Bearer <token>"
// (compared in time independent of where they differ); UNAUTHENTICATED otherwise.
Status CheckBearerToken(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                        const std::string& token);

}  // namespace cachecar::rpc
