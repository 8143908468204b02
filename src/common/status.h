// Status and Result<T>: how rtml reports failure without exceptions.
//
// Shaped like absl::Status / absl::StatusOr. A Status carries a code, a
// human-readable message, and for client errors a short machine-readable
// `reason` (e.g. "wrong_type", used in JSON error bodies and metric labels)
// and the `field` it concerns (e.g. "features.amount").
// Thread-safety: values; copy freely.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace rtml {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad client input (HTTP 400)
  kNotFound,            // unknown model, version, route (404)
  kPayloadTooLarge,     // body or batch over a configured limit (413)
  kUnsupportedMedia,    // wrong content type (415)
  kMethodNotAllowed,    // (405)
  kUnauthenticated,     // no or malformed credentials (401)
  kPermissionDenied,    // credentials that do not grant this (403)
  kFailedPrecondition,  // bad config or model file at load time
  kUnavailable,         // a dependency is down, not ready, overloaded (503)
  kDeadlineExceeded,    // the request's deadline passed or cannot be met (504)
  kInternal,            // a bug or library failure (500)
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string reason = {},
         std::string field = {})
      : code_(code),
        message_(std::move(message)),
        reason_(std::move(reason)),
        field_(std::move(field)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Short snake_case slug naming the kind of error; defaults to the code name.
  std::string_view reason() const {
    return reason_.empty() ? StatusCodeName(code_) : std::string_view(reason_);
  }
  const std::string& field() const { return field_; }

  // Returns this status with `prefix` prepended to the message.
  Status Annotate(std::string_view prefix) const;
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string reason_;
  std::string field_;
};

inline Status InvalidArgument(std::string msg, std::string reason = {},
                              std::string field = {}) {
  return Status(StatusCode::kInvalidArgument, std::move(msg), std::move(reason),
                std::move(field));
}
inline Status NotFound(std::string msg, std::string reason = {}) {
  return Status(StatusCode::kNotFound, std::move(msg), std::move(reason));
}
inline Status FailedPrecondition(std::string msg) {
  return Status(StatusCode::kFailedPrecondition, std::move(msg));
}
inline Status Internal(std::string msg) {
  return Status(StatusCode::kInternal, std::move(msg));
}

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "Result built from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T value_or(T fallback) && { return ok() ? std::move(*value_) : std::move(fallback); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace rtml

#define RTML_CONCAT_INNER(a, b) a##b
#define RTML_CONCAT(a, b) RTML_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::rtml::Status rtml_status_ = (expr);     \
    if (!rtml_status_.ok()) return rtml_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(RTML_CONCAT(rtml_result_, __LINE__), lhs, expr)
