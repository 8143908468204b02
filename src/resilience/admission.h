// Admission: whether heavy work (a predict) may join an event loop's queue,
// decided from how far behind the loop is, how much it already holds, and
// the request's own deadline; where admitted work runs; and the estimates
// those figures come from.
//
// An event loop answers cheap requests as soon as it reads them and puts
// predicts in a FIFO, so it can tell how long the oldest queued request has
// waited and how many rows wait behind it. Small predicts it scores itself,
// between its reads; big ones (PlaceWork) go to its scoring thread, in a FIFO
// of their own, so that the loop goes on reading, refusing and answering
// while they are scored. Past max_queue_ms of wait in a FIFO, or
// max_queue_rows of rows in it, new work is refused at once (503
// with Retry-After): the client learns in microseconds instead of joining a
// queue whose answers come too late to matter. Work whose deadline cannot be
// met given what is queued ahead is refused with 504, unstarted.
//
// Policy only: Admit() and PlaceWork() are pure functions of the loop's load
// and the request; the server measures, asks, and dispatches (http/server.cc).
// Thread-safety: values; the estimators are one per loop (LoadEstimator) and
// per FIFO (WaitEstimator), used by the loop's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/status.h"

namespace rtml::resilience {

struct AdmissionLimits {
  double max_queue_ms = 20;        // refuse while the queue's wait is past this; 0 = no bound
  int64_t max_queue_rows = 16384;  // refuse work that would queue more rows; 0 = no bound
};

// A loop's queue (one of its FIFOs), as the policy sees it.
struct LoopLoad {
  double oldest_wait_ms = 0;  // how long the request at the queue's head has waited
  double queued_ms = 0;       // estimated wait for everything queued to be scored
  int64_t queued_rows = 0;    // estimated rows queued
  // True when the thread asking serves this FIFO itself, next, and is not
  // held up by I/O: the head's wait then says how long the thread was away
  // (descheduled by the system, say), not what a newcomer will wait, and
  // the estimate (queued_ms) decides alone.
  bool served_next = false;
};

// The work asking to join.
struct Work {
  int64_t rows = 1;                 // estimated
  double service_ms = 0;            // estimated time to score it
  std::optional<double> budget_ms;  // time left before its deadline, if it has one
};

enum class Verdict {
  kAdmit,
  kBehind,    // the queue's wait is past max_queue_ms (503)
  kFull,      // the queue holds max_queue_rows (503)
  kDeadline,  // cannot finish within its deadline (504)
};

struct Admission {
  Verdict verdict = Verdict::kAdmit;
  int retry_after_s = 0;  // for 503s: when trying again may succeed (>= 1)
};

// Decides. The loop's own lag is checked first (a busy server says so, with
// Retry-After), then the deadline. An empty queue admits any work whose
// deadline its own service time fits.
Admission Admit(const AdmissionLimits& limits, const LoopLoad& load, const Work& work);

// Where admitted work is scored: on the event loop, between its reads, or on
// the loop's scoring thread. A loop that scores a request cannot read,
// refuse or answer anything else meanwhile, so only work estimated to take
// less than kMaxInlineMs stays on it (single rows, small batches: for them a
// hand-over between threads would cost more than the scoring).
enum class Lane { kLoop, kScorer };
inline constexpr double kMaxInlineMs = 0.2;
Lane PlaceWork(const Work& work);

// The error a refusal answers with: its code maps to 503 or 504, its reason
// is "queue_wait", "queue_full" or "deadline_exceeded", and its message says
// what was measured. REQUIRES: a.verdict != kAdmit.
Status RefusalStatus(const Admission& a, const AdmissionLimits& limits, const LoopLoad& load,
                     const Work& work);

// Per-loop estimates of a queued request's rows (from its body size) and
// service time (from its rows), learned from the requests the loop scored:
// the first one replaces the priors, then each weighs 1/8, so the estimates
// follow a change of traffic within a few dozen requests.
class LoadEstimator {
 public:
  int64_t Rows(size_t body_bytes) const;
  double ServiceMs(int64_t rows) const;
  // One scored request: its body size, rows and the time it took.
  void Observe(size_t body_bytes, int64_t rows, double service_ms);

 private:
  bool learned_ = false;
  double bytes_per_row_ = 40;   // priors: a small JSON row,
  double ms_per_row_ = 0.01;    // scored with its request's overhead
};

// Per-FIFO estimate of the wait its queued service time stands for.
// Scoring is not all a busy thread does (a loop, between two turns of its
// queue, reads requests, refuses some, writes answers; a scoring thread
// shares its core with its loop), and its speed wanders with the machine's.
// So the wait a queue stands for is its service time stretched: Stretch()
// is the 99.5th percentile, over the requests that waited behind others, of
// how long they waited per millisecond of service queued ahead of them when
// they were admitted. Admission on WaitMs() then keeps about 99 in 100
// waits within the budget, not one in two (the percentile drifts while
// requests wait: a 99th percentile kept 93 to 97 in 100 in
// bench/overload.sh, this one 98 to 99).
class WaitEstimator {
 public:
  double Stretch() const { return stretch_; }
  double WaitMs(double queued_service_ms) const { return queued_service_ms * stretch_; }
  // One request reaching its turn: the service time queued ahead of it when
  // it was admitted, and how long it waited.
  void ObserveWait(double queued_ahead_ms, double waited_ms);

 private:
  double stretch_ = 1;
};

// A request's timeout from the X-Request-Timeout-Ms header (a positive
// number of milliseconds, fractions allowed, at most a day); nullopt when
// empty. InvalidArgument ("bad_timeout") names the header otherwise.
Result<std::optional<double>> ParseTimeoutMs(std::string_view value, std::string_view field);

}  // namespace rtml::resilience
