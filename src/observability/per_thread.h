// PerThread<T>: one T for each thread that updates a metric, so the hot path
// writes a cache line no other thread writes and needs no locked instruction;
// readers (scrapes, /v1/stats) sum over every thread's T.
//
// A thread takes a slot number on its first update and gives it back when it
// exits (a later thread reuses the slot and its totals, which stay correct for
// cumulative counts). Slots 1..kMaxThreads-1 are owned by one thread at a
// time; past that many live threads, the rest share slot 0, where updates must
// be atomic read-modify-writes: Local() says which, and Add() does the right
// one. T's fields are atomics, written with relaxed order by their owner and
// read concurrently by readers; a T is created on a thread's first use of a
// metric (once, not per update) and lives as long as the PerThread.
// Thread-safety: Local() from any thread; ForEach() concurrently with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>

namespace rtml::observability {

inline constexpr int kMaxThreads = 128;

// The calling thread's slot: 1..kMaxThreads-1 if it owns one, else 0 (shared).
int ThisThreadSlot();

// Adds to a per-thread cell: a plain add when the cell is owned, an atomic
// one when it is shared.
template <typename T>
  requires std::is_integral_v<T>
inline void Add(std::atomic<T>& cell, std::type_identity_t<T> n, bool shared) {
  if (shared) {
    cell.fetch_add(n, std::memory_order_relaxed);
  } else {
    cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
}
inline void Add(std::atomic<double>& cell, double v, bool shared) {
  if (shared) {
    double seen = cell.load(std::memory_order_relaxed);
    while (!cell.compare_exchange_weak(seen, seen + v, std::memory_order_relaxed)) {
    }
  } else {
    cell.store(cell.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
}
// Raises a per-thread maximum.
inline void Max(std::atomic<uint64_t>& cell, uint64_t v, bool shared) {
  uint64_t seen = cell.load(std::memory_order_relaxed);
  if (v <= seen) return;
  if (!shared) return cell.store(v, std::memory_order_relaxed);
  while (v > seen && !cell.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

template <typename T>
class PerThread {
 public:
  struct Local {
    T& value;
    bool shared;  // slot 0: update with atomic read-modify-writes
  };

  // `make` builds a thread's T on its first use.
  explicit PerThread(std::function<std::unique_ptr<T>()> make)
      : make_(std::move(make)), slots_(new std::atomic<T*>[kMaxThreads]) {
    for (int i = 0; i < kMaxThreads; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  }
  PerThread(const PerThread&) = delete;
  PerThread& operator=(const PerThread&) = delete;
  ~PerThread() {
    for (int i = 0; i < kMaxThreads; ++i) delete slots_[i].load(std::memory_order_relaxed);
  }

  Local local() {
    const int slot = ThisThreadSlot();
    T* t = slots_[slot].load(std::memory_order_acquire);
    if (t == nullptr) [[unlikely]] t = Create(slot);
    return {*t, slot == 0};
  }

  // Calls f(const T&) for every thread's T.
  template <typename F>
  void ForEach(F&& f) const {
    for (int i = 0; i < kMaxThreads; ++i) {
      if (const T* t = slots_[i].load(std::memory_order_acquire)) f(*t);
    }
  }

 private:
  T* Create(int slot) {
    std::unique_ptr<T> made = make_();
    T* expected = nullptr;
    // Slot 0 may be raced for by several threads: one wins, the rest use its T.
    if (slots_[slot].compare_exchange_strong(expected, made.get(), std::memory_order_acq_rel)) {
      return made.release();
    }
    return expected;
  }

  std::function<std::unique_ptr<T>()> make_;
  std::unique_ptr<std::atomic<T*>[]> slots_;
};

}  // namespace rtml::observability
