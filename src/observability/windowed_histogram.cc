#include "observability/windowed_histogram.h"

#include <algorithm>
#include <bit>
#include <vector>

namespace rtml::observability {

WindowedHistogram::WindowedHistogram(const Clock& clock)
    : clock_(clock),
      created_us_(clock.NowMicros()),
      rings_([] { return std::make_unique<Ring>(); }) {}

int WindowedHistogram::BucketOf(uint64_t v) {
  if (v < kSubBuckets) return static_cast<int>(v);  // exact below 32 µs
  const int msb = 63 - std::countl_zero(v);        // >= 5
  const int octave = msb - 4;                       // 1.. for v >= 32
  const int sub = static_cast<int>((v >> (msb - 5)) & (kSubBuckets - 1));
  const int b = octave * kSubBuckets + sub;
  return std::min(b, kBuckets - 1);
}

uint64_t WindowedHistogram::BucketUpper(int b) {
  if (b < kSubBuckets) return static_cast<uint64_t>(b);
  const int octave = b / kSubBuckets, sub = b % kSubBuckets;
  const int msb = octave + 4;
  const uint64_t base = (uint64_t{1} << msb) | (static_cast<uint64_t>(sub) << (msb - 5));
  return base + (uint64_t{1} << (msb - 5)) - 1;
}

WindowedHistogram::Slot& WindowedHistogram::SlotFor(Ring& ring, int64_t epoch) {
  Slot& s = ring.slots[epoch % kSlots];
  int64_t seen = s.epoch.load(std::memory_order_acquire);
  if (seen != epoch && s.epoch.compare_exchange_strong(seen, epoch)) {
    for (auto& c : s.counts) c.store(0, std::memory_order_relaxed);  // reuse an old slot
    s.max.store(0, std::memory_order_relaxed);
  }
  return s;
}

void WindowedHistogram::Record(uint64_t value_us) {
  auto [ring, shared] = rings_.local();
  Slot& s = SlotFor(ring, clock_.NowMicros() / kSlotUs);
  Add(s.counts[BucketOf(value_us)], 1, shared);
  Max(s.max, value_us, shared);
}

WindowSummary WindowedHistogram::Summarize(int window_s) const {
  const int64_t now = clock_.NowMicros();
  const int64_t current = now / kSlotUs;
  const int n_slots = std::clamp(static_cast<int>((window_s * 1000000LL + kSlotUs - 1) / kSlotUs),
                                 1, kSlots);
  std::vector<uint64_t> counts(kBuckets, 0);
  WindowSummary out;
  for (int i = 0; i < n_slots; ++i) {
    const int64_t epoch = current - i;
    if (epoch < 0) break;  // before time began (fake clocks start at 0)
    rings_.ForEach([&](const Ring& ring) {
      const Slot& s = ring.slots[epoch % kSlots];
      if (s.epoch.load(std::memory_order_acquire) != epoch) return;
      for (int b = 0; b < kBuckets; ++b) counts[b] += s.counts[b].load(std::memory_order_relaxed);
      out.max_us = std::max(out.max_us, static_cast<double>(s.max.load(std::memory_order_relaxed)));
    });
  }
  for (uint64_t c : counts) out.count += c;
  // The window spans the full older slots plus the elapsed part of the current one.
  const double span_s = std::min((n_slots - 1) * (kSlotUs / 1e6) + (now % kSlotUs) / 1e6,
                                 (now - created_us_) / 1e6);
  out.rate_per_s = span_s > 0 ? out.count / span_s : 0;
  if (out.count == 0) return out;
  auto percentile = [&](double q) {
    const uint64_t rank = static_cast<uint64_t>(q * out.count);
    uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += counts[b];
      if (seen > rank) {
        // The bucket's midpoint, capped by the largest value seen.
        const uint64_t lower = b == 0 ? 0 : BucketUpper(b - 1) + 1;
        return std::min(out.max_us, (lower + BucketUpper(b)) / 2.0);
      }
    }
    return out.max_us;
  };
  out.p50_us = percentile(0.50);
  out.p95_us = percentile(0.95);
  out.p99_us = percentile(0.99);
  return out;
}

}  // namespace rtml::observability
