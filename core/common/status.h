#pragma once

// drgate's one error model inside core/: a Status with a canonical code (the same set and the
// same meaning as gRPC's and Abseil's), a human message, a machine-readable Reason (reason.h: one
// list, UPPER_SNAKE on the wire) and key/value metadata. plugin/ turns it into grpc::Status +
// google.rpc.ErrorInfo at the edge.
//
// Choosing a code (Abseil's guidance): UNAVAILABLE when retrying the same call may help,
// ABORTED when a higher level should retry, FAILED_PRECONDITION when the system must be fixed
// first (e.g. drgate's CommServe credentials are wrong), INTERNAL for answers we cannot parse.
//
// Messages never contain secrets: callers build them from names and upstream error texts only.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/common/reason.h"

namespace drgate {

enum class StatusCode {
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

// "INVALID_ARGUMENT" etc.
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, Reason reason = Reason::kNone)
      : code_(code), message_(std::move(message)), reason_(reason) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Reason::kNone for OK. ReasonName() gives its wire name, e.g. "UPSTREAM_REJECTED".
  Reason reason() const { return reason_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Adds metadata (e.g. "commcell", "phase", "http_status"). Returns *this for chaining.
  Status& With(std::string key, std::string value) & {
    metadata_[std::move(key)] = std::move(value);
    return *this;
  }
  Status&& With(std::string key, std::string value) && {
    metadata_[std::move(key)] = std::move(value);
    return std::move(*this);
  }
  // Prefixes the message with context ("login: " + message), keeping code, reason and metadata.
  Status WithContext(const std::string& context) const {
    Status s = *this;
    s.message_ = context + ": " + message_;
    return s;
  }

  // "UNAVAILABLE [UPSTREAM_UNREACHABLE]: connect: Connection refused"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  Reason reason_ = Reason::kNone;
  std::map<std::string, std::string> metadata_;
};

inline Status InvalidArgument(std::string msg, Reason reason = Reason::kInvalidArgument) {
  return Status(StatusCode::kInvalidArgument, std::move(msg), reason);
}
inline Status NotFound(std::string msg, Reason reason = Reason::kNotFound) {
  return Status(StatusCode::kNotFound, std::move(msg), reason);
}
inline Status Unavailable(std::string msg, Reason reason = Reason::kUpstreamUnavailable) {
  return Status(StatusCode::kUnavailable, std::move(msg), reason);
}
inline Status Internal(std::string msg, Reason reason = Reason::kInternal) {
  return Status(StatusCode::kInternal, std::move(msg), reason);
}
inline Status FailedPrecondition(std::string msg, Reason reason) {
  return Status(StatusCode::kFailedPrecondition, std::move(msg), reason);
}

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like absl::StatusOr
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) {
      v_ = Status(StatusCode::kInternal, "StatusOr built from an OK status", Reason::kInternal);
    }
  }

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
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace drgate
