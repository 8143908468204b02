// ShadowRunner: scores what a model answered again with the model's shadow
// versions (serving.yaml `shadow: [4]`), on its own thread, after the answer
// went out, and measures how the shadows agree with the answering version:
// per (model, shadow version, answering version) the rows compared, the mean
// |difference| of the outputs and the share of decisions that differ
// (probability >= decision_threshold; the top class for classifiers).
//
// The queue is bounded: when the shadow falls behind, Offer() drops the job
// and counts it (rtml_shadow_skipped_total), so a shadow never slows or
// fails an answer. Shadow versions are measured like any version, under
// path="shadow", and their answers never reach a caller.
// Thread-safety: Offer() and WriteStats() from any thread.
// Ownership: borrows the Scorer (which owns the runner) and the metrics registry.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/json_writer.h"
#include "observability/metrics.h"

namespace rtml::pipeline {

class Codec;
class Scorer;
enum class Path;

// What the answering version made of some bodies.
struct ShadowJob {
  std::string model;
  int64_t answered_version = 0;
  const Codec* codec = nullptr;  // the bodies' wire format
  std::vector<std::string> bodies;
  std::vector<uint64_t> header_sizes;           // per body (Payload::header_size)
  std::vector<std::pair<size_t, size_t>> rows;  // per body: first output row, rows (0: refused)
  std::vector<float> outputs;                   // rows x n_out
  int n_out = 1;
};

class ShadowRunner {
 public:
  static constexpr size_t kCapacity = 1024;  // jobs waiting; more are skipped

  ShadowRunner(const Scorer& scorer, observability::Registry* metrics);
  ~ShadowRunner();

  // Queues the job, or drops it (counted) when kCapacity jobs wait.
  void Offer(ShadowJob job);
  // Appends the "shadow" array of GET /v1/stats.
  void WriteStats(JsonWriter& w) const;
  // Waits until every queued job is done (tests).
  void Drain();

 private:
  struct Agreement {
    observability::Counter* rows = nullptr;
    observability::Counter* differ = nullptr;
    std::atomic<double> abs_diff_sum{0};
    std::atomic<uint64_t> rows_seen{0}, differ_seen{0};
    bool decisions = true;  // false for regression outputs
  };
  using Key = std::tuple<std::string, int64_t, int64_t>;  // model, shadow, answered

  void Run();
  void Score(const ShadowJob& job);
  Agreement& AgreementFor(const Key& key);

  const Scorer& scorer_;
  observability::Registry* metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<ShadowJob> jobs_;  // GUARDED_BY(mu_)
  bool busy_ = false;           // GUARDED_BY(mu_)
  bool stopping_ = false;       // GUARDED_BY(mu_)
  std::map<std::string, observability::Counter*> skipped_;  // GUARDED_BY(mu_)
  std::map<Key, std::unique_ptr<Agreement>> agreement_;     // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace rtml::pipeline
