#include "resilience/retry.h"

#include <gtest/gtest.h>

#include <set>

namespace rtml::resilience {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, GrowsExponentiallyUpToTheCapWithoutJitter) {
  Backoff b({.initial = milliseconds(100), .max = milliseconds(1000), .jitter = 0});
  std::vector<int64_t> delays;
  for (int i = 0; i < 6; ++i) delays.push_back(b.Next().count());
  EXPECT_EQ(delays, (std::vector<int64_t>{100, 200, 400, 800, 1000, 1000}));
  EXPECT_EQ(b.retries(), 6);
  b.Reset();
  EXPECT_EQ(b.Next().count(), 100);
}

TEST(BackoffTest, JitterDrawsWithinTheBandAndSpreadsReplicas) {
  const RetryPolicy p{.initial = milliseconds(1000), .max = milliseconds(1000), .jitter = 0.5};
  std::set<int64_t> first_delays;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    Backoff b(p, seed);
    for (int i = 0; i < 20; ++i) {
      const int64_t d = b.Next().count();
      EXPECT_GE(d, 500);
      EXPECT_LE(d, 1000);
    }
    first_delays.insert(Backoff(p, seed).Next().count());
  }
  // Fifty replicas that failed at once do not retry at once.
  EXPECT_GT(first_delays.size(), 30u);
}

TEST(BackoffTest, BoundedAttempts) {
  Backoff b({.max_attempts = 3});
  int retries = 0;
  while (b.CanRetry()) {
    b.Next();
    ++retries;
  }
  EXPECT_EQ(retries, 3);
  Backoff unbounded({});
  for (int i = 0; i < 1000; ++i) unbounded.Next();
  EXPECT_TRUE(unbounded.CanRetry());
}

TEST(BackoffTest, OddSettingsAreMadeSane) {
  Backoff b({.initial = milliseconds(300), .max = milliseconds(10), .multiplier = 0.5,
             .jitter = 7});
  // The cap is at least the initial delay, the delay never shrinks, jitter at most 100%.
  for (int i = 0; i < 10; ++i) {
    const int64_t d = b.Next().count();
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 300);
  }
}

}  // namespace
}  // namespace rtml::resilience
