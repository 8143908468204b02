#include "resilience/admission.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

namespace rtml::resilience {
namespace {

constexpr double kMaxTimeoutMs = 24 * 3600 * 1000.0;
constexpr double kWeight = 1.0 / 8;  // of each new observation in the estimates
// Stretch() tracks a quantile: each wait longer than predicted raises it by
// kStep * kQuantile, each other lowers it by kStep * (1 - kQuantile), so it
// settles where kQuantile of the waits are within it. The steps are small:
// it saw-tooths by about kStep around that point, and the predictions made
// in a dip admit work that then waits past the budget (a 5% step let 7 in
// 100 of the accepted batches of bench/overload.sh wait past it, 1% lets
// 2.5 at the 99th percentile, 1 to 2 at the 99.5th); a wait that doubles
// is still followed within ~70 requests.
constexpr double kQuantile = 0.995;
constexpr double kStep = 0.01;
constexpr double kMinAheadMs = 1;  // less queued ahead says more of noise than of the loop
constexpr double kMinStretch = 0.5, kMaxStretch = 20;

std::string Ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f ms", ms);
  return buf;
}

// How far behind the FIFO is: what its queued work will take, or, unless
// its head is served next by the thread asking, how long its head waited.
double BehindMs(const LoopLoad& load) {
  return load.served_next ? load.queued_ms : std::max(load.oldest_wait_ms, load.queued_ms);
}

}  // namespace

Admission Admit(const AdmissionLimits& limits, const LoopLoad& load, const Work& work) {
  const double behind_ms = BehindMs(load);
  const bool queued = load.queued_rows > 0;
  // Retry once the queue has had time to empty, in whole seconds (RFC 9110).
  const int retry_s = std::max(1, static_cast<int>(std::ceil(behind_ms / 1000)));
  if (queued && limits.max_queue_ms > 0 && behind_ms >= limits.max_queue_ms) {
    return {Verdict::kBehind, retry_s};
  }
  if (queued && limits.max_queue_rows > 0 &&
      load.queued_rows + work.rows > limits.max_queue_rows) {
    return {Verdict::kFull, retry_s};
  }
  if (work.budget_ms && load.queued_ms + work.service_ms > *work.budget_ms) {
    return {Verdict::kDeadline, 0};
  }
  return {Verdict::kAdmit, 0};
}

Status RefusalStatus(const Admission& a, const AdmissionLimits& limits, const LoopLoad& load,
                     const Work& work) {
  switch (a.verdict) {
    case Verdict::kBehind:
      return Status(StatusCode::kUnavailable,
                    "overloaded: requests wait " +
                        Ms(BehindMs(load)) +
                        " before scoring starts (http.max_queue_ms is " +
                        Ms(limits.max_queue_ms) + "); retry after Retry-After seconds",
                    "queue_wait");
    case Verdict::kFull:
      return Status(StatusCode::kUnavailable,
                    "overloaded: " + std::to_string(load.queued_rows) +
                        " rows are queued and this request adds about " +
                        std::to_string(work.rows) + " (http.max_queue_rows is " +
                        std::to_string(limits.max_queue_rows) +
                        "); retry after Retry-After seconds",
                    "queue_full");
    case Verdict::kDeadline:
      return Status(StatusCode::kDeadlineExceeded,
                    "cannot answer within the request's deadline (" +
                        Ms(work.budget_ms.value_or(0)) + " left; about " +
                        Ms(load.queued_ms + work.service_ms) +
                        " of queued work and its own); not started",
                    "deadline_exceeded");
    case Verdict::kAdmit: break;
  }
  return Internal("RefusalStatus called for admitted work");
}

Lane PlaceWork(const Work& work) {
  return work.service_ms < kMaxInlineMs ? Lane::kLoop : Lane::kScorer;
}

int64_t LoadEstimator::Rows(size_t body_bytes) const {
  return std::max<int64_t>(1, std::llround(static_cast<double>(body_bytes) / bytes_per_row_));
}

double LoadEstimator::ServiceMs(int64_t rows) const {
  return static_cast<double>(rows) * ms_per_row_;
}

void LoadEstimator::Observe(size_t body_bytes, int64_t rows, double service_ms) {
  if (rows <= 0 || body_bytes == 0 || !(service_ms >= 0)) return;
  const double n = static_cast<double>(rows);
  const double w = learned_ ? kWeight : 1.0;
  learned_ = true;
  bytes_per_row_ += w * (static_cast<double>(body_bytes) / n - bytes_per_row_);
  ms_per_row_ += w * (service_ms / n - ms_per_row_);
}

void WaitEstimator::ObserveWait(double queued_ahead_ms, double waited_ms) {
  if (!(queued_ahead_ms >= kMinAheadMs) || !(waited_ms >= 0)) return;
  const bool longer = waited_ms > queued_ahead_ms * stretch_;
  stretch_ *= longer ? 1 + kStep * kQuantile : 1 - kStep * (1 - kQuantile);
  stretch_ = std::clamp(stretch_, kMinStretch, kMaxStretch);
}

Result<std::optional<double>> ParseTimeoutMs(std::string_view value, std::string_view field) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::optional<double>();
  double ms = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
  if (ec != std::errc() || end != value.data() + value.size() || !(ms > 0) ||
      ms > kMaxTimeoutMs) {
    return InvalidArgument(std::string(field) + " must be a positive number of milliseconds " +
                               "(at most a day), not '" + std::string(value) + "'",
                           "bad_timeout", std::string(field));
  }
  return std::optional<double>(ms);
}

}  // namespace rtml::resilience
