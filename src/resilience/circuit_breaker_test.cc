#include "resilience/circuit_breaker.h"

#include <gtest/gtest.h>

namespace rtml::resilience {
namespace {

TEST(CircuitBreakerTest, OpensAfterConsecutiveFailuresAndProbesAfterCoolDown) {
  FakeClock clock(0);
  CircuitBreaker b(3, /*open_ms=*/1000, clock);
  b.RecordFailure();
  b.RecordFailure();
  b.RecordSuccess();  // resets the count
  b.RecordFailure();
  b.RecordFailure();
  EXPECT_TRUE(b.Allow());
  b.RecordFailure();
  EXPECT_EQ(b.state(), CircuitBreaker::State::kOpen);
  EXPECT_FALSE(b.Allow());
  clock.Advance(999'000);
  EXPECT_FALSE(b.Allow());
  clock.Advance(2'000);
  EXPECT_TRUE(b.Allow());  // the one trial
  EXPECT_EQ(b.state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_FALSE(b.Allow());
  b.RecordFailure();  // trial failed: open again
  EXPECT_FALSE(b.Allow());
  clock.Advance(1'000'001);
  EXPECT_TRUE(b.Allow());
  b.RecordSuccess();
  EXPECT_EQ(b.state(), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(b.Allow());
}

TEST(CircuitBreakerTest, ATrialWhoseOutcomeNeverComesLetsAnotherThroughAfterTheCoolDown) {
  FakeClock clock(0);
  CircuitBreaker b(1, /*open_ms=*/300, clock);
  b.RecordFailure();
  clock.Advance(300'000);
  EXPECT_TRUE(b.Allow());  // the trial; its caller never reports how it went
  clock.Advance(299'000);
  EXPECT_FALSE(b.Allow());
  clock.Advance(1'000);
  EXPECT_TRUE(b.Allow());  // presumed failed: another trial
  EXPECT_EQ(b.state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_FALSE(b.Allow());
  b.RecordSuccess();
  EXPECT_TRUE(b.Allow());
}

}  // namespace
}  // namespace rtml::resilience
