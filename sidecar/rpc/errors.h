// The one place where internal Status becomes a gRPC status: the code is cast (our codes
// are gRPC's), and the details carry a google.rpc.Status with an ErrorInfo (reason,
// domain "cachecar.dev", metadata) and, when there are field violations, a BadRequest.
// Pure functions; thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace cachecar::rpc {

inline constexpr char kErrorDomain[] = "cachecar.dev";

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace cachecar::rpc
