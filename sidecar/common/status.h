// Status and Result<T>: how cachecar code reports errors. No exceptions cross our code.
//
// Codes use the numeric values of grpc::StatusCode so that the RPC boundary is a cast,
// but this header depends on nothing from gRPC. A Status may carry a reason (the
// google.rpc.ErrorInfo reason the RPC layer reports) and field violations (for
// INVALID_ARGUMENT: which field, and what is wrong with it).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace cachecar {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Returns "INVALID_ARGUMENT" etc., as gRPC spells the code.
const char* CodeName(Code code);

// One problem with one input field, e.g. {"key", "must be valid UTF-8"}.
struct FieldViolation {
  FieldViolation() = default;
  FieldViolation(std::string f, std::string d, std::string r = {})
      : field(std::move(f)), description(std::move(d)), reason(std::move(r)) {}
  std::string field;
  std::string description;
  std::string reason;  // optional, e.g. the JSON Schema keyword that failed
};

class Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message, std::string reason = {},
         std::vector<FieldViolation> violations = {})
      : code_(code),
        message_(std::move(message)),
        reason_(std::move(reason)),
        violations_(std::move(violations)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Machine-readable reason (UPPER_SNAKE_CASE), empty if none.
  const std::string& reason() const { return reason_; }
  const std::vector<FieldViolation>& violations() const { return violations_; }

  // Extra ErrorInfo metadata, e.g. {"topic": "users"}.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  Status&& With(std::string key, std::string value) && {
    SetMetadata(std::move(key), std::move(value));
    return std::move(*this);
  }
  void SetMetadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }

  // "INVALID_ARGUMENT: key: must be valid UTF-8".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::string reason_;
  std::vector<FieldViolation> violations_;
  std::map<std::string, std::string> metadata_;
};

inline Status InvalidArgument(std::string message, std::vector<FieldViolation> v = {}) {
  return Status(Code::kInvalidArgument, std::move(message), "INVALID_ARGUMENT", std::move(v));
}
inline Status Internal(std::string message) {
  return Status(Code::kInternal, std::move(message), "INTERNAL");
}
inline Status NotFound(std::string message, std::string reason) {
  return Status(Code::kNotFound, std::move(message), std::move(reason));
}
inline Status Unavailable(std::string message, std::string reason) {
  return Status(Code::kUnavailable, std::move(message), std::move(reason));
}

// Result<T> holds a T or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cachecar

// Returns early from the enclosing function if `expr` (a Status) is not OK.
#define CACHECAR_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::cachecar::Status _st = (expr);            \
    if (!_st.ok()) return _st;                  \
  } while (0)
