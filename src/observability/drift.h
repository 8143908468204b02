// DriftMonitor: population stability index (PSI) of a model version's inputs
// and predictions, over a sliding window, against a reference distribution.
//
// The reference comes with the model (drift_reference.json, written at
// training time: per feature and for the prediction, bin edges and the share
// of rows in each bin, plus a share of missing values) or, without one, from
// the first `reference_rows` rows scored. Scored rows are then counted into
// the same bins in 10-second slots; PSI over the window is
//   sum over bins of (actual - expected) * ln(actual / expected)
// (shares smoothed by 1e-4). Above `warn` (0.1) the distribution has moved;
// above `alert` (0.25) it has shifted enough to distrust the model: a warning
// is logged when a series crosses either, and both are exported.
// Thread-safety: Observe() from any thread (each counts into its own cells,
// PerThread); the reference is built once under a mutex; Psi() may run
// concurrently and sums the threads' counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "observability/per_thread.h"

namespace rtml::observability {

struct DriftOptions {
  size_t reference_rows = 2000;  // rows that become the reference when none is given
  int window_s = 120;            // PSI over this many seconds (10-second slots)
  double warn = 0.1;
  double alert = 0.25;
  int bins = 10;
  size_t check_every_rows = 1000;  // each thread re-checks the thresholds this often
  // A series gets no PSI until its window holds this many rows: over a few
  // dozen rows PSI is noise (one bin's chance swing reads as drift).
  size_t min_rows = 200;
};

// Bins of one series: bin k holds x <= edges[k] (past the last edge: the last
// bin); missing values have a bin of their own.
struct ReferenceBins {
  std::vector<double> edges;        // ascending, bins - 1 of them
  std::vector<double> proportions;  // bins + 1 (the last: missing)
};

struct DriftReference {
  std::vector<ReferenceBins> features;  // in the model's input order
  ReferenceBins prediction;
};

// Parses drift_reference.json: {"features": {"name": {"edges": [...],
// "proportions": [...]}, ...}, "prediction": {...}}, for `names` in order.
Result<DriftReference> ParseDriftReference(std::string_view json,
                                           const std::vector<std::string>& names);

struct DriftScore {
  std::string series;  // a feature name, or "prediction"
  double psi = 0;
};

class DriftMonitor {
 public:
  DriftMonitor(std::string model, int64_t version, std::vector<std::string> features,
               std::optional<DriftReference> reference, DriftOptions options,
               const Clock& clock = CoarseClock::Get());
  ~DriftMonitor();

  // Counts rows (num_features each) and their first output.
  void Observe(std::span<const float> rows, size_t n_rows, std::span<const float> outputs,
               int outputs_per_row);
  // PSI of every series over the window; empty until a reference exists and
  // the window holds rows.
  std::vector<DriftScore> Psi() const;
  bool has_reference() const { return ready_.load(std::memory_order_acquire); }
  const std::string& model() const { return model_; }
  int64_t version() const { return version_; }
  const DriftOptions& options() const { return options_; }

 private:
  struct Slots;
  void CollectReference(std::span<const float> rows, size_t n_rows,
                        std::span<const float> outputs, int outputs_per_row);
  void BuildReferenceLocked();
  void CheckThresholds();

  const std::string model_;
  const int64_t version_;
  const std::vector<std::string> features_;
  const DriftOptions options_;
  const Clock& clock_;
  std::vector<ReferenceBins> bins_;  // features..., prediction; fixed once ready_
  std::atomic<bool> ready_{false};
  std::unique_ptr<PerThread<Slots>> slots_;
  std::mutex reference_mu_;
  std::vector<std::vector<double>> samples_;  // GUARDED_BY(reference_mu_), until ready_
  std::vector<int> level_;  // last reported level per series: 0 ok, 1 warn, 2 alert
  std::mutex check_mu_;
};

}  // namespace rtml::observability
