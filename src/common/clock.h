// Clock: where time comes from, injectable so tests can move it.
// Times are int64 microseconds since the Unix epoch (UTC).
// Thread-safety: Now() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace rtml {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMicros() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static const SystemClock& Get() {
    static const SystemClock clock;
    return clock;
  }
};

// The kernel's coarse wall clock (CLOCK_REALTIME_COARSE): a few milliseconds
// of resolution for a fraction of the cost of a precise read, for code that
// only needs to know which multi-second slot of time it is in.
class CoarseClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
  }
  static const CoarseClock& Get() {
    static const CoarseClock clock;
    return clock;
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_us = 0) : now_us_(now_us) {}
  int64_t NowMicros() const override { return now_us_.load(); }
  void Set(int64_t now_us) { now_us_.store(now_us); }
  void Advance(int64_t delta_us) { now_us_.fetch_add(delta_us); }

 private:
  std::atomic<int64_t> now_us_;
};

}  // namespace rtml
