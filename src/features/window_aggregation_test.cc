#include "features/window_aggregation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

namespace rtml::features {
namespace {

constexpr int64_t kS = 1'000'000;

struct Event {
  int64_t ts;
  double amount;
  double category;
};

// The definition, computed from the raw events that were accepted.
struct Expected {
  double count = 0, sum = 0, min = NAN, max = NAN, mean = NAN, stddev = NAN, distinct = 0;
};

Expected BruteForce(const std::vector<Event>& accepted, int64_t t, int64_t window,
                    int64_t tile) {
  Expected e;
  const int64_t from = (t - window) / tile, to = t / tile;
  std::vector<double> xs;
  std::set<double> categories;
  for (const Event& ev : accepted) {
    const int64_t k = ev.ts / tile;
    if (k < from || k > to) continue;
    xs.push_back(ev.amount);
    categories.insert(ev.category);
  }
  e.count = static_cast<double>(xs.size());
  e.distinct = static_cast<double>(categories.size());
  if (xs.empty()) return e;
  double sum = 0, sq = 0;
  for (double x : xs) {
    const double m = std::llround(x * 1e6) / 1e6;  // the fixed point the state keeps
    sum += m;
    sq += m * m;
  }
  e.sum = sum;
  e.mean = sum / e.count;
  e.stddev = std::sqrt(std::max(0.0, sq / e.count - e.mean * e.mean));
  e.min = *std::min_element(xs.begin(), xs.end());
  e.max = *std::max_element(xs.begin(), xs.end());
  return e;
}

std::shared_ptr<const WindowLayout> Layout(int64_t lateness) {
  const int64_t hour = 3600 * kS;
  auto l = WindowLayout::Create(
      2,
      {{.column = 0, .function = AggFunction::kCount, .window_us = hour},
       {.column = 0, .function = AggFunction::kSum, .window_us = hour},
       {.column = 0, .function = AggFunction::kMean, .window_us = hour},
       {.column = 0, .function = AggFunction::kMin, .window_us = hour},
       {.column = 0, .function = AggFunction::kMax, .window_us = hour},
       {.column = 0, .function = AggFunction::kStddev, .window_us = hour},
       {.column = 1, .function = AggFunction::kCountDistinct, .window_us = 24 * hour},
       {.column = 0, .function = AggFunction::kCount, .window_us = 24 * hour},
       {.column = 0, .function = AggFunction::kLast},
       {.column = 0, .function = AggFunction::kLastN, .n = 3},
       {.column = 0, .function = AggFunction::kSecondsSince}},
      lateness);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return *l;
}

TEST(WindowAggregationTest, MatchesTheDefinitionWithLateOutOfOrderAndEdgeEvents) {
  const int64_t lateness = 300 * kS, hour = 3600 * kS;
  auto layout = Layout(lateness);
  EntityWindows w(layout);
  std::mt19937_64 rng(42);
  std::vector<Event> accepted;
  int64_t now = 1'764'000'000 * kS, latest = INT64_MIN;
  int rejected = 0, reads = 0;
  std::vector<double> out(layout->n_outputs());
  for (int i = 0; i < 4000; ++i) {
    now += std::uniform_int_distribution<int64_t>(0, 40 * kS)(rng);
    // Mostly on time, some out of order within the lateness, some too late,
    // some exactly on a tile or window edge.
    int64_t ts = now;
    const int kind = static_cast<int>(rng() % 10);
    if (kind == 0) ts = now - std::uniform_int_distribution<int64_t>(0, lateness)(rng);
    if (kind == 1) ts = now - lateness - kS - static_cast<int64_t>(rng() % (600 * kS));
    if (kind == 2) ts = (now / (60 * kS)) * (60 * kS);
    const Event ev{ts, std::uniform_real_distribution<double>(0, 900)(rng),
                   static_cast<double>(rng() % 40)};
    // Read before adding: an event does not see itself.
    if (i % 7 == 0) {
      w.Read(now, out);
      const Expected h = BruteForce(accepted, now, hour, 60 * kS);
      EXPECT_EQ(out[0], h.count);
      EXPECT_NEAR(out[1], h.sum, 1e-6 * std::max(1.0, h.sum));
      if (h.count > 0) {
        EXPECT_NEAR(out[2], h.mean, 1e-9 * std::max(1.0, h.mean));
        EXPECT_EQ(out[3], h.min);
        EXPECT_EQ(out[4], h.max);
        EXPECT_NEAR(out[5], h.stddev, 1e-6);
      }
      const Expected day = BruteForce(accepted, now, 24 * hour, DefaultTileUs(24 * hour));
      EXPECT_EQ(out[7], day.count);
      EXPECT_NEAR(out[6], day.distinct, std::max(1.0, 0.05 * day.distinct));
      ++reads;
    }
    const bool late = latest != INT64_MIN && ts < latest - lateness;
    EXPECT_EQ(w.Add(ts, std::vector<double>{ev.amount, ev.category}), !late) << i;
    if (late) {
      ++rejected;
      continue;
    }
    latest = std::max(latest, ts);
    accepted.push_back(ev);
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(reads, 500);
  // last / last_n / seconds_since: by event time, latest first.
  std::vector<Event> by_time = accepted;
  std::stable_sort(by_time.begin(), by_time.end(),
                   [](const Event& a, const Event& b) { return a.ts < b.ts; });
  w.Read(now, out);
  EXPECT_EQ(out[8], by_time.back().amount);
  EXPECT_EQ(out[9], by_time.back().amount);
  EXPECT_EQ(out[10], by_time[by_time.size() - 2].amount);
  EXPECT_EQ(out[11], by_time[by_time.size() - 3].amount);
  EXPECT_DOUBLE_EQ(out[12], static_cast<double>(now - by_time.back().ts) / 1e6);
}

TEST(WindowAggregationTest, ArrivalOrderDoesNotChangeAnyValue) {
  auto layout = Layout(/*lateness=*/3600 * kS);
  std::mt19937_64 rng(7);
  std::vector<std::pair<int64_t, double>> events;
  const int64_t base = 1'764'000'000 * kS;
  for (int i = 0; i < 500; ++i) {
    events.push_back({base + static_cast<int64_t>(rng() % (1800 * kS)),
                      std::uniform_real_distribution<double>(0, 1000)(rng)});
  }
  auto state_of = [&](std::vector<std::pair<int64_t, double>> evs) {
    EntityWindows w(layout);
    for (const auto& [ts, v] : evs) EXPECT_TRUE(w.Add(ts, std::vector<double>{v, 1}));
    std::vector<double> out(layout->n_outputs());
    w.Read(base + 1900 * kS, out);
    return out;
  };
  auto shuffled = events;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  const auto a = state_of(events), b = state_of(shuffled);
  for (size_t i = 0; i <= 7; ++i) EXPECT_EQ(a[i], b[i]) << i;  // bit-identical sums and all
}

TEST(WindowAggregationTest, AnEntityWithNoEventsReadsZeroCountsAndNaNs) {
  auto layout = Layout(0);
  EntityWindows w(layout);
  EXPECT_TRUE(w.empty());
  std::vector<double> out(layout->n_outputs());
  w.Read(1'764'000'000 * kS, out);
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[1], 0);
  EXPECT_TRUE(std::isnan(out[2]) && std::isnan(out[3]) && std::isnan(out[8]));
  EXPECT_TRUE(std::isnan(out[12]));
}

TEST(WindowAggregationTest, WindowsEndAtTheTileBeforeTheirStart) {
  const int64_t hour = 3600 * kS, tile = 60 * kS, t0 = 1'764'000'000 * kS / tile * tile;
  auto layout = WindowLayout::Create(
      1, {{.column = 0, .function = AggFunction::kCount, .window_us = hour}}, hour);
  ASSERT_TRUE(layout.ok());
  EntityWindows w(*layout);
  ASSERT_TRUE(w.Add(t0, std::vector<double>{1}));
  std::vector<double> out(1);
  w.Read(t0 + hour + tile - 1, out);  // its tile is the window's oldest: still in
  EXPECT_EQ(out[0], 1);
  w.Read(t0 + hour + tile, out);  // a tile later: out
  EXPECT_EQ(out[0], 0);
}

TEST(WindowAggregationTest, StateSurvivesSerializeAndParse) {
  auto layout = Layout(/*lateness=*/600 * kS);
  std::mt19937_64 rng(11);
  EntityWindows a(layout), b(layout);
  int64_t t = 1'764'000'000 * kS;
  auto event = [&] {
    t += static_cast<int64_t>(rng() % (90 * kS));
    return std::pair{t - static_cast<int64_t>(rng() % (300 * kS)),
                     std::vector<double>{std::uniform_real_distribution<double>(0, 500)(rng),
                                         static_cast<double>(rng() % 30)}};
  };
  for (int i = 0; i < 2000; ++i) {
    auto [ts, v] = event();
    a.Add(ts, v);
    b.Add(ts, v);
  }
  auto parsed = EntityWindows::Parse(layout, a.Serialize());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  for (int i = 0; i < 500; ++i) {  // the same events after the round trip: the same state
    auto [ts, v] = event();
    EXPECT_EQ(parsed->Add(ts, v), b.Add(ts, v));
  }
  std::vector<double> x(layout->n_outputs()), y(layout->n_outputs());
  parsed->Read(t, x);
  b.Read(t, y);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i]))) << i;
  }
  EXPECT_FALSE(EntityWindows::Parse(layout, "junk").ok());
  auto other = WindowLayout::Create(1, {{.column = 0, .function = AggFunction::kLast}}, 0);
  EXPECT_FALSE(EntityWindows::Parse(*other, a.Serialize()).ok());
}

TEST(WindowAggregationTest, DurationsTilesAndErrors) {
  EXPECT_EQ(*ParseDuration("90s"), 90 * kS);
  EXPECT_EQ(*ParseDuration("24h"), 86400 * kS);
  EXPECT_EQ(*ParseDuration("30d"), 30 * 86400 * kS);
  EXPECT_FALSE(ParseDuration("1.5h").ok());
  EXPECT_FALSE(ParseDuration("0m").ok());
  EXPECT_FALSE(ParseDuration("h").ok());
  EXPECT_EQ(DefaultTileUs(3600 * kS), 60 * kS);
  EXPECT_EQ(DefaultTileUs(86400 * kS), 1200 * kS);  // 20 min: 72 tiles
  EXPECT_EQ(DefaultTileUs(30 * 86400 * kS), 12 * 3600 * kS);
  EXPECT_EQ(DefaultTileUs(600 * kS), 10 * kS);
  EXPECT_EQ(DefaultTileUs(5 * kS), kS);
  EXPECT_FALSE(ParseAggFunction("median").ok());
  EXPECT_FALSE(WindowLayout::Create(1, {{.column = 0, .function = AggFunction::kSum}}, 0).ok());
  EXPECT_FALSE(WindowLayout::Create(1, {{.column = 3, .function = AggFunction::kLast}}, 0).ok());
  EXPECT_FALSE(
      WindowLayout::Create(1, {{.column = 0, .function = AggFunction::kLastN, .n = 0}}, 0).ok());
}

}  // namespace
}  // namespace rtml::features
