// Metrics: counters, gauges and histograms registered once at start-up and
// rendered in Prometheus text exposition format (version 0.0.4).
//
// Registration returns a stable handle the hot path keeps; updating a handle
// touches only the calling thread's own cells (PerThread: a plain add on a
// cache line no other thread writes, no lock, no lookup), and a scrape sums
// the threads' cells. Families (same name) are rendered together with one
// HELP and TYPE line.
// Ownership: the Registry owns every metric; handles stay valid for its life.
// Thread-safety: Add*() and Render() take an internal mutex (start-up and
// scrapes only); Counter/Histogram updates are lock-free from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "observability/per_thread.h"

namespace rtml::observability {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  Counter();
  void Inc(uint64_t n = 1) {
    auto [cell, shared] = cells_.local();
    Add(cell.value, n, shared);
  }
  uint64_t value() const;

 private:
  struct alignas(64) Cell {
    std::atomic<uint64_t> value{0};
  };
  PerThread<Cell> cells_;
};

// Cumulative histogram with fixed upper bounds (the +Inf bucket is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts; the last is the +Inf bucket.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t count() const;
  double sum() const;

 private:
  struct alignas(64) Cells {
    explicit Cells(size_t n) : buckets(n) {}
    std::vector<std::atomic<uint64_t>> buckets;
    std::atomic<double> sum{0.0};
  };
  std::vector<double> bounds_;
  PerThread<Cells> cells_;
};

// Latency buckets in seconds, 50 µs to 10 s, seven a decade (1, 1.5, 2, 3,
// 4, 5, 7), fine enough to read p50/p95/p99.
std::vector<double> LatencyBucketsSeconds();

class Registry {
 public:
  Counter* AddCounter(const std::string& name, const std::string& help, Labels labels = {});
  Histogram* AddHistogram(const std::string& name, const std::string& help, Labels labels,
                          std::vector<double> bounds);
  // A gauge whose value is read by `read` at each scrape.
  void AddGauge(const std::string& name, const std::string& help, Labels labels,
                std::function<double()> read);

  // Gauges whose series are known only at scrape time (e.g. per assigned
  // partition): `read` returns each series' labels and value.
  void AddGaugeFamily(const std::string& name, const std::string& help,
                      std::function<std::vector<std::pair<Labels, double>>()> read);

  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    Counter* counter = nullptr;
    Histogram* histogram = nullptr;
    std::function<double()> gauge;
    std::function<std::vector<std::pair<Labels, double>>()> family;
  };
  struct Family {
    std::string name, help;
    Type type;
    std::vector<Series> series;
  };
  Family& FamilyFor(const std::string& name, const std::string& help, Type type);

  mutable std::mutex mu_;
  std::deque<Family> families_;
  std::deque<Counter> counters_;
  std::deque<Histogram> histograms_;
};

// Escapes a label value for the text format.
std::string EscapeLabelValue(std::string_view v);

}  // namespace rtml::observability
