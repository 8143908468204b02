// Backoff: the delays between attempts of an operation that failed for a
// reason outside the request (the feature store or the broker unavailable):
// exponential from `initial` by `multiplier` up to `max`, each drawn at
// random from [base * (1 - jitter), base] so that replicas which failed
// together do not retry together. `max_attempts` bounds the retries (0: the
// caller retries until it is stopped; the stream does, since its events must
// not be lost and Kafka lag is its back-pressure).
//
// Policy only: the caller waits (polling what it must keep serving) and
// counts. On the request path there is no waiting at all: a request retries
// at most once, at once, on a fresh connection, and never past its deadline
// (features/redis_store.cc).
// Thread-safety: not thread-safe; one per retrying loop.
#pragma once

#include <chrono>
#include <cstdint>

namespace rtml::resilience {

struct RetryPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{2000};
  double multiplier = 2;
  double jitter = 0.5;  // share of each delay drawn at random, in [0, 1]
  int max_attempts = 0;  // retries allowed; 0 = unbounded
};

class Backoff {
 public:
  // `seed` feeds the jitter (any value; 0 is replaced).
  explicit Backoff(RetryPolicy policy, uint64_t seed = 0);

  // Whether another retry is allowed.
  bool CanRetry() const { return policy_.max_attempts == 0 || retries_ < policy_.max_attempts; }
  // The delay before the next retry, and counts it.
  std::chrono::milliseconds Next();
  // Back to the initial delay (after a success).
  void Reset() { retries_ = 0; }
  int retries() const { return retries_; }

 private:
  double Uniform();  // in [0, 1)

  RetryPolicy policy_;
  uint64_t state_;
  int retries_ = 0;
};

// The stream's retries (events, feature writes, window writes): 100 ms
// doubling to 2 s, half of each at random, unbounded (an event must not be
// lost; Kafka lag is the back-pressure).
inline constexpr RetryPolicy kStreamRetry{.initial = std::chrono::milliseconds(100),
                                          .max = std::chrono::milliseconds(2000),
                                          .jitter = 0.5};

// Help text of rtml_retries_total{op}, which every retrying loop counts in.
inline constexpr char kRetriesHelp[] =
    "Operations retried after a failure outside the request or event (feature store, broker), "
    "by operation.";

}  // namespace rtml::resilience
