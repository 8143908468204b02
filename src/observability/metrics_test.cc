#include "observability/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace rtml::observability {
namespace {

TEST(MetricsTest, RendersCountersGaugesAndHistogramsInTextFormat) {
  Registry r;
  Counter* a = r.AddCounter("rtml_x_total", "Things.", {{"model", "m\"1"}});
  Counter* b = r.AddCounter("rtml_x_total", "Things.", {{"model", "m2"}});
  r.AddGauge("rtml_up", "Up.", {}, [] { return 1.0; });
  Histogram* h = r.AddHistogram("rtml_lat_seconds", "Latency.", {{"model", "m"}}, {0.1, 1.0});
  a->Inc();
  b->Inc(3);
  h->Observe(0.05);
  h->Observe(0.1);
  h->Observe(5);
  const std::string text = r.Render();
  EXPECT_NE(text.find("# HELP rtml_x_total Things.\n# TYPE rtml_x_total counter\n"
                      "rtml_x_total{model=\"m\\\"1\"} 1\nrtml_x_total{model=\"m2\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE rtml_up gauge\nrtml_up 1\n"), std::string::npos);
  EXPECT_NE(text.find("rtml_lat_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
                      "rtml_lat_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
                      "rtml_lat_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n"
                      "rtml_lat_seconds_sum{model=\"m\"} 5.15\n"
                      "rtml_lat_seconds_count{model=\"m\"} 3\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, GaugeFamiliesRenderTheSeriesOfTheMoment) {
  Registry r;
  int n = 1;
  r.AddGaugeFamily("rtml_lag", "Lag.", [&] {
    std::vector<std::pair<Labels, double>> out;
    for (int p = 0; p < n; ++p) out.push_back({{{"partition", std::to_string(p)}}, p * 10.0});
    return out;
  });
  EXPECT_NE(r.Render().find("# TYPE rtml_lag gauge\nrtml_lag{partition=\"0\"} 0\n"),
            std::string::npos);
  n = 2;
  EXPECT_NE(r.Render().find("rtml_lag{partition=\"1\"} 10\n"), std::string::npos);
}

TEST(MetricsTest, CountersAreExactUnderConcurrentUpdates) {
  Registry r;
  Counter* c = r.AddCounter("rtml_c_total", "C.");
  Histogram* h = r.AddHistogram("rtml_h", "H.", {}, LatencyBucketsSeconds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        c->Inc();
        h->Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->value(), 400000u);
  EXPECT_EQ(h->count(), 400000u);
  EXPECT_NEAR(h->sum(), 400.0, 1e-6);
}

// More live threads than per-thread slots: the rest share slot 0 and must
// still count exactly; slots given back by exited threads are reused.
TEST(MetricsTest, CountsStayExactWithMoreThreadsThanSlotsAndAfterThreadsExit) {
  Registry r;
  Counter* c = r.AddCounter("rtml_c_total", "C.");
  for (int round = 0; round < 2; ++round) {
    std::atomic<int> started{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    const int n = kMaxThreads + 20;
    for (int t = 0; t < n; ++t) {
      threads.emplace_back([&] {
        c->Inc();  // takes a slot (or shares slot 0) and keeps it while alive
        started.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 1000; ++i) c->Inc();
      });
    }
    while (started.load() < n) std::this_thread::yield();
    go.store(true);
    for (auto& t : threads) t.join();
    EXPECT_EQ(c->value(), static_cast<uint64_t>((round + 1) * n * 1001));
  }
}

TEST(MetricsTest, LatencyBucketsSpan50MicrosecondsTo10SecondsAtMost1Point5xApart) {
  const std::vector<double> b = LatencyBucketsSeconds();
  ASSERT_GE(b.size(), 30u);
  EXPECT_DOUBLE_EQ(b.front(), 5e-5);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  for (size_t i = 1; i < b.size(); ++i) {
    EXPECT_GT(b[i], b[i - 1]);
    EXPECT_LE(b[i] / b[i - 1], 1.5 + 1e-9) << b[i];
  }
}

}  // namespace
}  // namespace rtml::observability
