// The one place where internal Status becomes a gRPC status: the code is cast (our codes
// are gRPC's), and the details carry a google.rpc.Status with an ErrorInfo (reason,
// domain "cachecar.dev", metadata) and, when there are field violations, a BadRequest.
// Pure functions; thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace cachecar::rpc {

inline constexpr char kErrorDomain[] = "cachecar.dev";
// Bounds on what an error puts in the trailers (grpc-message is percent-encoded, the
// details base64: both together stay under the 8 KiB every gRPC client accepts by default).
inline constexpr size_t kMaxErrorMessageBytes = 768;
inline constexpr size_t kMaxErrorDetailsBytes = 2048;

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace cachecar::rpc
