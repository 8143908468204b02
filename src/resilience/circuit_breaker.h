// CircuitBreaker: stops calling a dependency that keeps failing, and probes
// it again after a cool-down, so a dead Redis costs a fast "unavailable"
// instead of a timeout per request, and recovery needs no restart.
//
// Closed: calls go through; `failure_threshold` consecutive failures open it.
// Open: Allow() is false until `open_ms` has passed, then one trial call is let
// through (half-open); its success closes the breaker, its failure re-opens it.
// A trial whose outcome is never reported (its caller gave up on it, say at a
// request's deadline) counts as failed once `open_ms` has passed again:
// another trial is let through, so the breaker cannot stay half-open for good.
// Policy only: the caller does the call and reports the outcome.
// Thread-safety: not thread-safe; keep one per thread (e.g. per store session).
#pragma once

#include <cstdint>

#include "common/clock.h"

namespace rtml::resilience {

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(int failure_threshold, int64_t open_ms, const Clock& clock)
      : threshold_(failure_threshold), open_us_(open_ms * 1000), clock_(clock) {}

  // Whether a call may be made now.
  bool Allow();
  void RecordSuccess();
  void RecordFailure();
  State state() const { return state_; }

 private:
  int threshold_;
  int64_t open_us_;
  const Clock& clock_;
  State state_ = State::kClosed;
  int failures_ = 0;
  int64_t since_us_ = 0;  // when it opened, or (half-open) when the trial went out
};

}  // namespace rtml::resilience
