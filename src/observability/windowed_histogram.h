// WindowedHistogram: latency percentiles and throughput over sliding windows
// (10 s, 1 min, 5 min) without Prometheus, for GET /v1/stats and the dashboard.
//
// Values (µs) go into log-linear buckets, HDR-style: 32 linear sub-buckets per
// power of two, so a percentile read from the buckets is within ~3% of the
// exact value, from 1 µs to ~4.5 min (larger values count in the last bucket;
// the maximum stays exact). Time is cut into 5-second slots kept in a ring of
// 60 (5 minutes); a window sums the slots it covers. Each recording thread has
// its own ring (PerThread, ~180 KiB), so Record() writes no shared cache line.
// Thread-safety: Record() is lock-free from any thread; Summarize() may run
// concurrently and sees a consistent-enough snapshot.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "observability/per_thread.h"

namespace rtml::observability {

struct WindowSummary {
  uint64_t count = 0;
  double rate_per_s = 0;
  double p50_us = 0, p95_us = 0, p99_us = 0, max_us = 0;
};

class WindowedHistogram {
 public:
  static constexpr int kSubBuckets = 32;  // per power of two
  static constexpr int kOctaves = 24;
  static constexpr int kBuckets = kSubBuckets * kOctaves;
  static constexpr int64_t kSlotUs = 5'000'000;
  static constexpr int kSlots = 60;

  explicit WindowedHistogram(const Clock& clock = CoarseClock::Get());

  void Record(uint64_t value_us);
  // Over the last `window_s` seconds (rounded up to whole slots, the current
  // one included).
  WindowSummary Summarize(int window_s) const;

  // Bucket arithmetic, exposed for tests.
  static int BucketOf(uint64_t value);
  static uint64_t BucketUpper(int bucket);  // the largest value in the bucket

 private:
  struct Slot {
    std::atomic<int64_t> epoch{-1};  // which 5-second slot of time it holds
    std::atomic<uint64_t> max{0};
    std::array<std::atomic<uint32_t>, kBuckets> counts{};  // < 2^32 a thread in 5 s
  };
  struct Ring {
    std::array<Slot, kSlots> slots;
  };
  static Slot& SlotFor(Ring& ring, int64_t epoch);

  const Clock& clock_;
  const int64_t created_us_;  // rates never count time before this
  PerThread<Ring> rings_;
};

}  // namespace rtml::observability
