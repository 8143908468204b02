// Load tools for the demo and the Kafka benchmark: a rate-limited generator of
// synthetic card transactions, and a monitor that reads the predictions back
// and measures end-to-end latency (event creation -> prediction arrival).
//
// Generated events look like the fraud demo's requests: {"id", "user_id",
// "amount", ..., "event_time": <creation time, µs precision>}; a small share
// are deliberately bad, to exercise the dead-letter path.
// Thread-safety: each object runs one thread of its own between Start() and
// Stop(); counters and Snapshot() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace rtml::kafka {

struct GeneratorOptions {
  std::string brokers;
  std::string topic = "ml-features";
  double rate_per_s = 1000;  // 0 = as fast as possible
  uint64_t limit = 0;        // stop after this many events; 0 = until Stop()
  double bad_share = 0.005;  // share of malformed events
  int users = 5000;
  int first_user = 1;  // users are first_user .. users
  uint64_t seed = 42;
  // Events carry all 30 inputs as {"id", "features": {...}} (the format the
  // Python reference consumer reads too) instead of a raw transaction +
  // user_id (keyed by the user; the window inputs left to rtml).
  bool full_rows = false;
  // After this many seconds (0 = never), transactions shift away from the
  // training data (amounts x6, riskier IPs), to show drift being caught.
  double shift_after_s = 0;
};

class EventGenerator {
 public:
  static Result<std::unique_ptr<EventGenerator>> Create(GeneratorOptions options);
  ~EventGenerator();
  void Start();
  void Stop();
  // Waits until `limit` events are produced and acknowledged.
  void Wait();
  uint64_t produced() const { return produced_.load(); }
  uint64_t acknowledged() const { return acknowledged_.load(); }
  // When event `id` was created (µs since the epoch), for a bounded run
  // (limit > 0); 0 if unknown. Safe to call while the generator runs.
  int64_t CreatedAt(uint64_t id) const;

 private:
  explicit EventGenerator(GeneratorOptions o) : o_(std::move(o)) {}
  void Loop();

  GeneratorOptions o_;
  rd_kafka_t* producer_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> produced_{0};
  std::atomic<uint64_t> acknowledged_{0};
  std::unique_ptr<std::atomic<int64_t>[]> created_us_;  // per id, for bounded runs
};

struct LatencySummary {
  uint64_t count = 0;
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
};

struct MonitorSnapshot {
  uint64_t predictions = 0;   // since start
  uint64_t dead_letters = 0;  // since start
  LatencySummary end_to_end;  // over the window since the last snapshot
  LatencySummary scoring;
};

class PredictionMonitor {
 public:
  // Reads `topic` (and `dlq_topic`) from their current ends, without a group.
  // End-to-end latency is measured from the generator's creation time of the
  // output's "id" when `timing` is given, else from the output's event_time.
  static Result<std::unique_ptr<PredictionMonitor>> Create(
      const std::string& brokers, const std::string& topic, const std::string& dlq_topic,
      const EventGenerator* timing = nullptr);
  ~PredictionMonitor();
  void Start();
  void Stop();
  // Counters since start, and latencies since the previous call (reset=true)
  // or since start (reset=false).
  MonitorSnapshot Snapshot(bool reset);
  // Waits until `n` predictions + dead letters have arrived, or timeout.
  bool WaitFor(uint64_t n, double timeout_s);

 private:
  PredictionMonitor() = default;
  void Loop();

  rd_kafka_t* consumer_ = nullptr;
  const EventGenerator* timing_ = nullptr;
  std::string dlq_topic_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> predictions_{0};
  std::atomic<uint64_t> dead_letters_{0};
  std::mutex mu_;
  std::vector<double> e2e_ms_;      // GUARDED_BY(mu_)
  std::vector<double> scoring_ms_;  // GUARDED_BY(mu_)
};

LatencySummary Summarize(std::vector<double> values_ms);

// Consumer lag of `group` on `topic`: sum over partitions of (high watermark -
// committed offset). Uses a short-lived client; for the demo's live line.
Result<int64_t> ConsumerLag(const std::string& brokers, const std::string& group,
                            const std::string& topic);

}  // namespace rtml::kafka
