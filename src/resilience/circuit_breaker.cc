#include "resilience/circuit_breaker.h"

namespace rtml::resilience {

bool CircuitBreaker::Allow() {
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kHalfOpen:  // a trial call is out: wait for it, up to open_ms
    case State::kOpen: {
      const int64_t now = clock_.NowMicros();
      if (now - since_us_ < open_us_) return false;
      state_ = State::kHalfOpen;
      since_us_ = now;
      return true;
    }
  }
  return true;
}

void CircuitBreaker::RecordSuccess() {
  state_ = State::kClosed;
  failures_ = 0;
}

void CircuitBreaker::RecordFailure() {
  ++failures_;
  if (state_ == State::kHalfOpen || failures_ >= threshold_) {
    state_ = State::kOpen;
    since_us_ = clock_.NowMicros();
  }
}

}  // namespace rtml::resilience
