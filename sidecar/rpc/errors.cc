#include "rpc/errors.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace cachecar::rpc {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(status.message());
  google::rpc::ErrorInfo info;
  info.set_reason(status.reason().empty() ? CodeName(status.code()) : status.reason());
  info.set_domain(kErrorDomain);
  for (const auto& [k, v] : status.metadata()) (*info.mutable_metadata())[k] = v;
  details.add_details()->PackFrom(info);
  if (!status.violations().empty()) {
    google::rpc::BadRequest bad;
    for (const auto& v : status.violations()) {
      auto* fv = bad.add_field_violations();
      fv->set_field(v.field);
      fv->set_description(v.description);
      if (!v.reason.empty()) fv->set_reason(v.reason);
    }
    details.add_details()->PackFrom(bad);
  }
  // The message a plain client sees names every violation too.
  std::string message = status.message();
  for (const auto& v : status.violations()) message += "; " + v.field + ": " + v.description;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message,
                      details.SerializeAsString());
}

}  // namespace cachecar::rpc
