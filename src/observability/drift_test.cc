#include "observability/drift.h"

#include <gtest/gtest.h>

#include <random>

namespace rtml::observability {
namespace {

// Rows of 3 features: two normal, one with 10% missing; output = a logistic
// of the first feature.
void Feed(DriftMonitor& m, std::mt19937& rng, int n, double shift) {
  std::normal_distribution<float> a(0.0f + shift, 1.0f), b(5.0f, 2.0f);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> rows, outputs;
  for (int i = 0; i < n; ++i) {
    const float x = a(rng);
    rows.insert(rows.end(), {x, b(rng), u(rng) < 0.1f ? NAN : u(rng)});
    outputs.push_back(1.0f / (1.0f + std::exp(-x)));
  }
  m.Observe(rows, n, outputs, 1);
}

double PsiOf(const std::vector<DriftScore>& scores, const std::string& series) {
  for (const auto& s : scores) {
    if (s.series == series) return s.psi;
  }
  return -1;
}

TEST(DriftMonitorTest, FirstRowsBecomeTheReferenceAndUnshiftedStaysLow) {
  FakeClock clock(1'000'000'000);
  DriftMonitor m("m", 1, {"a", "b", "c"}, std::nullopt, {.reference_rows = 5000}, clock);
  std::mt19937 rng(1);
  Feed(m, rng, 5000, 0);
  EXPECT_TRUE(m.has_reference());
  EXPECT_TRUE(m.Psi().empty());  // nothing in the window yet
  Feed(m, rng, 20000, 0);
  const auto scores = m.Psi();
  ASSERT_EQ(scores.size(), 4u);
  for (const auto& s : scores) EXPECT_LT(s.psi, 0.1) << s.series;
}

TEST(DriftMonitorTest, ShiftedInputRaisesPsiPastTheAlertThreshold) {
  FakeClock clock(1'000'000'000);
  DriftMonitor m("m", 1, {"a", "b", "c"}, std::nullopt, {.reference_rows = 5000}, clock);
  std::mt19937 rng(2);
  Feed(m, rng, 5000, 0);
  Feed(m, rng, 20000, 1.0);  // feature a moves by one standard deviation
  const auto scores = m.Psi();
  EXPECT_GT(PsiOf(scores, "a"), 0.25);
  EXPECT_GT(PsiOf(scores, "prediction"), 0.25);  // the output follows a
  EXPECT_LT(PsiOf(scores, "b"), 0.1);
}

TEST(DriftMonitorTest, TheWindowSlides) {
  FakeClock clock(1'000'000'000);
  DriftMonitor m("m", 1, {"a", "b", "c"}, std::nullopt,
                 {.reference_rows = 5000, .window_s = 60}, clock);
  std::mt19937 rng(3);
  Feed(m, rng, 5000, 0);
  Feed(m, rng, 10000, 2.0);
  EXPECT_GT(PsiOf(m.Psi(), "a"), 0.25);
  clock.Advance(120'000'000);  // the shifted rows leave the window
  Feed(m, rng, 10000, 0);
  EXPECT_LT(PsiOf(m.Psi(), "a"), 0.1);
}

TEST(DriftMonitorTest, NoPsiUntilTheWindowHoldsMinRows) {
  FakeClock clock(1'000'000'000);
  DriftMonitor m("m", 1, {"a", "b", "c"}, std::nullopt, {.reference_rows = 5000}, clock);
  std::mt19937 rng(4);
  Feed(m, rng, 5000, 0);
  Feed(m, rng, 199, 3.0);  // shifted, but too few rows to say so
  EXPECT_TRUE(m.Psi().empty());
  Feed(m, rng, 1, 3.0);
  EXPECT_GT(PsiOf(m.Psi(), "a"), 0.25);
}

TEST(DriftMonitorTest, ReadsAReferenceFile) {
  const char* json = R"({"features": {
      "a": {"edges": [0], "proportions": [0.5, 0.5, 0]},
      "b": {"edges": [1, 2], "proportions": [0.2, 0.3, 0.5, 0]}},
    "prediction": {"edges": [0.5], "proportions": [0.9, 0.1, 0]}})";
  auto r = ParseDriftReference(json, {"a", "b"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->features[1].edges.size(), 2u);
  EXPECT_FALSE(ParseDriftReference(json, {"a", "zz"}).ok());
  EXPECT_FALSE(ParseDriftReference(R"({"features": {"a": {"edges": [1, 0],
      "proportions": [1, 0, 0, 0]}}, "prediction": {"edges": [], "proportions": [1, 0]}})",
                                   {"a"}).ok());
  FakeClock clock(0);
  DriftMonitor m("m", 1, {"a", "b"}, std::move(r).value(), {}, clock);
  EXPECT_TRUE(m.has_reference());
}

}  // namespace
}  // namespace rtml::observability
