#include "rpc/errors.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace cachecar::rpc {

namespace {

// Bounds on one piece of an error, so that no single one can take the whole budget.
constexpr size_t kMaxTextBytes = 256;        // a message, metadata value or description
constexpr size_t kMaxFieldBytes = 128;       // a violation's field (a JSON Pointer)
constexpr size_t kOmittedEntryBytes = 160;   // room kept for the "N more" entry

// At most `max` bytes of `s`, cut at a UTF-8 character boundary, with "…" when cut.
std::string Bounded(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max - 3;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "\xE2\x80\xA6";
}

}  // namespace

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(Bounded(status.message(), kMaxTextBytes));
  google::rpc::ErrorInfo info;
  info.set_reason(status.reason().empty() ? CodeName(status.code()) : status.reason());
  info.set_domain(kErrorDomain);
  for (const auto& [k, v] : status.metadata()) {
    (*info.mutable_metadata())[Bounded(k, kMaxFieldBytes)] = Bounded(v, kMaxTextBytes);
  }
  details.add_details()->PackFrom(info);
  // Violations in order while they fit; the rest are counted in a last entry.
  size_t listed = 0;
  if (!status.violations().empty()) {
    google::rpc::BadRequest bad;
    size_t budget = kMaxErrorDetailsBytes - kOmittedEntryBytes;
    for (const auto& v : status.violations()) {
      google::rpc::BadRequest::FieldViolation fv;
      fv.set_field(Bounded(v.field, kMaxFieldBytes));
      fv.set_description(Bounded(v.description, kMaxTextBytes));
      if (!v.reason.empty()) fv.set_reason(Bounded(v.reason, kMaxFieldBytes));
      // + a few bytes of framing for the entry and the Any around the BadRequest.
      if (details.ByteSizeLong() + bad.ByteSizeLong() + fv.ByteSizeLong() + 16 > budget) break;
      *bad.add_field_violations() = std::move(fv);
      ++listed;
    }
    if (listed < status.violations().size()) {
      auto* more = bad.add_field_violations();
      more->set_field("value");
      more->set_description(std::to_string(status.violations().size() - listed) +
                            " more violations not listed (an error is kept small enough for "
                            "every client to read)");
      more->set_reason("more");
    }
    details.add_details()->PackFrom(bad);
  }
  // The message a plain client sees names the violations too, as many as fit.
  std::string message = Bounded(status.message(), kMaxTextBytes);
  size_t shown = 0;
  for (const auto& v : status.violations()) {
    std::string part = "; " + Bounded(v.field, kMaxFieldBytes) + ": " +
                       Bounded(v.description, kMaxTextBytes);
    if (message.size() + part.size() + 40 > kMaxErrorMessageBytes) break;
    message += part;
    ++shown;
  }
  if (shown < status.violations().size()) {
    message += "; and " + std::to_string(status.violations().size() - shown) + " more";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message,
                      details.SerializeAsString());
}

}  // namespace cachecar::rpc
