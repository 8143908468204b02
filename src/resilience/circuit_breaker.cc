#include "resilience/circuit_breaker.h"

namespace rtml::resilience {

bool CircuitBreaker::Allow() {
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kHalfOpen:
      return false;  // a trial call is already out
    case State::kOpen:
      if (clock_.NowMicros() - opened_at_us_ < open_us_) return false;
      state_ = State::kHalfOpen;
      return true;
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
    opened_at_us_ = clock_.NowMicros();
  }
}

}  // namespace rtml::resilience
