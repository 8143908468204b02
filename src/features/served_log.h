// ServedLog: a sampled record of the stream feature values rtml served, so
// they can be replayed offline (`rtml features historical --replay`) and
// checked against what the same events give there; the target is zero
// mismatches. One JSON object per line:
//   {"view": "user_txn", "entity": "42", "at_us": 1764583200000000,
//    "at": "2026-12-01T10:00:00Z", "seen": 17,
//    "values": {"amount_count_1h": 3, "amount_mean_30d": 41.5, "amount_max_1h": null}}
// `seen` is how many of the entity's events (late ones included) the state
// held when it was read: the replay reads after the same events.
// Sampling is a per-thread random draw against the rate (config
// features.served_log: {rate, file}).
// Thread-safety: Write() from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "features/definitions.h"
#include "observability/prediction_log.h"

namespace rtml::features {

class ServedLog {
 public:
  static Result<std::unique_ptr<ServedLog>> Open(double rate, const std::string& path,
                                                 observability::Registry* metrics);
  bool ShouldSample() const;
  // One read of a stream view for one entity (values: NaN when none).
  void Write(const FeatureView& view, std::string_view entity, int64_t at_us, uint64_t seen,
             std::span<const double> values) const;

 private:
  ServedLog(double rate, std::unique_ptr<observability::FileSink> sink)
      : threshold_(observability::SampleThreshold(rate)), sink_(std::move(sink)) {}
  const uint64_t threshold_;
  std::unique_ptr<observability::FileSink> sink_;
};

// The JSON of one served-values record (also what the replay writes for a
// mismatch).
std::string ServedRecordJson(const FeatureView& view, std::string_view entity, int64_t at_us,
                             uint64_t seen, std::span<const double> values);

}  // namespace rtml::features
