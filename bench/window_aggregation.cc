// window_aggregation: the cost of stream feature views per event and per read,
// and the state they keep per entity, for the fraud demo's view (counts over
// 1 h and 24 h, a 24 h sum, seconds since the last event) and the same with a
// 24 h count_distinct (HyperLogLog per tile). One entity's events arrive at a
// steady rate; the state is measured after a day of them.
//
//   build/bench/window_aggregation [--seconds S]
//
// Prints, per layout and rate: ns per Add (the worker's update), per Read
// (all outputs), per Parse + Read (what a request pays: the state comes from
// the store as bytes), per Serialize (the worker's write), and the serialized
// bytes per entity.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "features/window_aggregation.h"

using namespace rtml;
using namespace rtml::features;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kS = 1'000'000;

std::shared_ptr<const WindowLayout> Layout(bool distinct) {
  std::vector<AggregationSpec> specs = {
      {0, AggFunction::kCount, 3600 * kS},   {0, AggFunction::kCount, 86400 * kS},
      {0, AggFunction::kSum, 86400 * kS},    {1, AggFunction::kSecondsSince, 0}};
  if (distinct) specs.push_back({2, AggFunction::kCountDistinct, 86400 * kS});
  return *WindowLayout::Create(3, specs, 300 * kS);
}

template <typename F>
double NsPer(double seconds, F f) {
  size_t n = 0;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    for (int i = 0; i < 256; ++i) f(n++);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / n;
}

void Run(bool distinct, double per_hour, double seconds) {
  auto layout = Layout(distinct);
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> amount(3.8, 1.1);
  std::uniform_int_distribution<int> merchant(0, 19);
  const int64_t gap = static_cast<int64_t>(3600 * kS / per_hour);
  int64_t t = 1'764'583'200 * kS;
  EntityWindows w(layout);
  double values[3];
  auto add = [&](size_t) {
    t += gap;
    values[0] = std::round(amount(rng) * 100) / 100;
    values[1] = static_cast<double>(t) / 1e6;
    values[2] = merchant(rng);
    w.Add(t, values);
  };
  for (int64_t i = 0; i < static_cast<int64_t>(per_hour * 24); ++i) add(0);  // a day of events
  const double add_ns = NsPer(seconds, add);
  std::vector<double> out(layout->n_outputs());
  volatile double sink = 0;
  const double read_ns = NsPer(seconds, [&](size_t) {
    w.Read(t + kS, out);
    sink = sink + out[0];
  });
  const std::string bytes = w.Serialize();
  const double serialize_ns = NsPer(seconds, [&](size_t) { sink = sink + w.Serialize().size(); });
  const double parse_read_ns = NsPer(seconds, [&](size_t) {
    auto parsed = EntityWindows::Parse(layout, bytes);
    parsed->Read(t + kS, out);
    sink = sink + out[0];
  });
  std::printf("| %s | %.0f/h | %.0f | %.0f | %.0f | %.0f | %zu |\n",
              distinct ? "demo + count_distinct 24h" : "demo (count 1h, 24h; sum 24h; last)",
              per_hour, add_ns, read_ns, parse_read_ns, serialize_ns, bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
  }
  std::printf("| layout | events per entity | Add ns | Read ns | Parse+Read ns | Serialize ns | "
              "state bytes |\n|---|---|---|---|---|---|---|\n");
  for (bool distinct : {false, true}) {
    for (double rate : {1.0, 60.0, 720.0}) Run(distinct, rate, seconds);
  }
  return 0;
}
