#include "resilience/retry.h"

#include <algorithm>
#include <cmath>

namespace rtml::resilience {

Backoff::Backoff(RetryPolicy policy, uint64_t seed)
    : policy_(policy), state_(seed != 0 ? seed : 0x9e3779b97f4a7c15ull) {
  policy_.jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  policy_.multiplier = std::max(policy_.multiplier, 1.0);
  if (policy_.max < policy_.initial) policy_.max = policy_.initial;
}

double Backoff::Uniform() {
  // xorshift64*: enough for spreading retries, no global state.
  state_ ^= state_ >> 12, state_ ^= state_ << 25, state_ ^= state_ >> 27;
  return static_cast<double>((state_ * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
}

std::chrono::milliseconds Backoff::Next() {
  const double cap = static_cast<double>(policy_.max.count());
  const double base = std::min(
      cap, static_cast<double>(policy_.initial.count()) * std::pow(policy_.multiplier, retries_));
  ++retries_;
  const double delay = base * (1 - policy_.jitter * Uniform());
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(delay)));
}

}  // namespace rtml::resilience
