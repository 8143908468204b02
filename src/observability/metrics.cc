#include "observability/metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>

namespace rtml::observability {

Counter::Counter() : cells_([] { return std::make_unique<Cell>(); }) {}

uint64_t Counter::value() const {
  uint64_t total = 0;
  cells_.ForEach([&](const Cell& c) { total += c.value.load(std::memory_order_relaxed); });
  return total;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      cells_([n = bounds_.size() + 1] { return std::make_unique<Cells>(n); }) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

void Histogram::Observe(double value) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  auto [cells, shared] = cells_.local();
  Add(cells.buckets[i], 1, shared);
  Add(cells.sum, value, shared);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1, 0);
  cells_.ForEach([&](const Cells& c) {
    for (size_t i = 0; i < out.size(); ++i) out[i] += c.buckets[i].load(std::memory_order_relaxed);
  });
  return out;
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (uint64_t c : BucketCounts()) n += c;
  return n;
}

double Histogram::sum() const {
  double total = 0;
  cells_.ForEach([&](const Cells& c) { total += c.sum.load(std::memory_order_relaxed); });
  return total;
}

std::vector<double> LatencyBucketsSeconds() {
  // 1, 1.5, 2, 3, 4, 5, 7 in each decade: neighbouring bounds differ by 1.5x
  // at most, so histogram_quantile interpolates within a narrow bucket.
  return {0.00005, 0.00007, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.0007,
          0.001,   0.0015,  0.002,  0.003,   0.004,  0.005,  0.007,  0.01,   0.015,
          0.02,    0.03,    0.04,   0.05,    0.07,   0.1,    0.15,   0.2,    0.3,
          0.4,     0.5,     0.7,    1.0,     1.5,    2.0,    3.0,    4.0,    5.0,
          7.0,     10.0};
}

Registry::Family& Registry::FamilyFor(const std::string& name, const std::string& help,
                                      Type type) {
  for (Family& f : families_) {
    if (f.name == name) {
      assert(f.type == type);
      return f;
    }
  }
  families_.push_back(Family{name, help, type, {}});
  return families_.back();
}

Counter* Registry::AddCounter(const std::string& name, const std::string& help, Labels labels) {
  std::lock_guard lock(mu_);
  Counter* c = &counters_.emplace_back();
  FamilyFor(name, help, Type::kCounter).series.push_back({std::move(labels), c, nullptr, {}});
  return c;
}

Histogram* Registry::AddHistogram(const std::string& name, const std::string& help,
                                  Labels labels, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  Histogram* h = &histograms_.emplace_back(std::move(bounds));
  FamilyFor(name, help, Type::kHistogram).series.push_back({std::move(labels), nullptr, h, {}});
  return h;
}

void Registry::AddGauge(const std::string& name, const std::string& help, Labels labels,
                        std::function<double()> read) {
  std::lock_guard lock(mu_);
  FamilyFor(name, help, Type::kGauge).series.push_back({std::move(labels), nullptr, nullptr,
                                                        std::move(read)});
}

void Registry::AddGaugeFamily(const std::string& name, const std::string& help,
                              std::function<std::vector<std::pair<Labels, double>>()> read) {
  std::lock_guard lock(mu_);
  Series s;
  s.family = std::move(read);
  FamilyFor(name, help, Type::kGauge).series.push_back(std::move(s));
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {

void AppendLabels(const Labels& labels, const std::pair<std::string, std::string>* extra,
                  std::string* out) {
  if (labels.empty() && extra == nullptr) return;
  out->push_back('{');
  bool first = true;
  auto add = [&](const std::string& k, const std::string& v) {
    if (!first) out->push_back(',');
    first = false;
    *out += k + "=\"" + EscapeLabelValue(v) + "\"";
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (extra != nullptr) add(extra->first, extra->second);
  out->push_back('}');
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

void RenderHistogram(const std::string& name, const Labels& labels, const Histogram& h,
                     std::string* out) {
  const std::vector<uint64_t> counts = h.BucketCounts();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    std::pair<std::string, std::string> le{
        "le", i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf"};
    *out += name + "_bucket";
    AppendLabels(labels, &le, out);
    *out += " " + std::to_string(cumulative) + "\n";
  }
  *out += name + "_sum";
  AppendLabels(labels, nullptr, out);
  *out += " " + FormatValue(h.sum()) + "\n" + name + "_count";
  AppendLabels(labels, nullptr, out);
  *out += " " + std::to_string(cumulative) + "\n";
}

}  // namespace

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(16384);
  for (const Family& f : families_) {
    static constexpr const char* kTypes[] = {"counter", "gauge", "histogram"};
    out += "# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " +
           kTypes[static_cast<int>(f.type)] + "\n";
    for (const Series& s : f.series) {
      if (f.type == Type::kHistogram) {
        RenderHistogram(f.name, s.labels, *s.histogram, &out);
        continue;
      }
      if (s.family) {
        for (const auto& [labels, value] : s.family()) {
          out += f.name;
          AppendLabels(labels, nullptr, &out);
          out += " " + FormatValue(value) + "\n";
        }
        continue;
      }
      out += f.name;
      AppendLabels(s.labels, nullptr, &out);
      out += " ";
      out += f.type == Type::kCounter ? std::to_string(s.counter->value()) : FormatValue(s.gauge());
      out += "\n";
    }
  }
  return out;
}

}  // namespace rtml::observability
