#include "observability/windowed_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace rtml::observability {
namespace {

TEST(WindowedHistogramTest, BucketsCoverValuesContiguously) {
  for (uint64_t v : {0ull, 1ull, 31ull, 32ull, 33ull, 63ull, 64ull, 1000ull, 123456789ull}) {
    const int b = WindowedHistogram::BucketOf(v);
    EXPECT_LE(v, WindowedHistogram::BucketUpper(b)) << v;
    if (b > 0) EXPECT_GT(v, WindowedHistogram::BucketUpper(b - 1)) << v;
  }
  for (int b = 1; b < WindowedHistogram::kBuckets; ++b) {
    EXPECT_GT(WindowedHistogram::BucketUpper(b), WindowedHistogram::BucketUpper(b - 1));
  }
}

TEST(WindowedHistogramTest, PercentilesWithin5PercentOfExact) {
  FakeClock clock(1'000'000'000);
  WindowedHistogram h(clock);
  std::mt19937 rng(3);
  std::lognormal_distribution<double> latency(std::log(400.0), 0.9);  // µs, a long tail
  std::vector<uint64_t> values;
  for (int i = 0; i < 200000; ++i) {
    const uint64_t v = static_cast<uint64_t>(latency(rng)) + 1;
    values.push_back(v);
    h.Record(v);
    if (i % 1000 == 0) clock.Advance(100'000);  // spread over 20 s
  }
  std::sort(values.begin(), values.end());
  auto exact = [&](double q) { return static_cast<double>(values[q * values.size()]); };
  const WindowSummary s = h.Summarize(60);
  EXPECT_EQ(s.count, values.size());
  EXPECT_NEAR(s.p50_us, exact(0.50), 0.05 * exact(0.50));
  EXPECT_NEAR(s.p95_us, exact(0.95), 0.05 * exact(0.95));
  EXPECT_NEAR(s.p99_us, exact(0.99), 0.05 * exact(0.99));
  EXPECT_EQ(s.max_us, static_cast<double>(values.back()));
}

TEST(WindowedHistogramTest, WindowsSlideAndForgetOldSlots) {
  FakeClock clock(0);
  WindowedHistogram h(clock);
  for (int i = 0; i < 100; ++i) h.Record(1000);  // at t = 0
  clock.Advance(30'000'000);                      // 30 s later
  for (int i = 0; i < 10; ++i) h.Record(50);
  clock.Advance(1'000'000);
  EXPECT_EQ(h.Summarize(10).count, 10u);  // only the recent ones
  EXPECT_NEAR(h.Summarize(10).p99_us, 50, 2);
  EXPECT_EQ(h.Summarize(60).count, 110u);
  // 110 events in the 31 s the histogram has existed (the window is longer).
  EXPECT_NEAR(h.Summarize(60).rate_per_s, 110.0 / 31.0, 0.01);
  clock.Advance(300'000'000);  // 5 minutes on: everything has slid out
  EXPECT_EQ(h.Summarize(300).count, 0u);
}

}  // namespace
}  // namespace rtml::observability
