// PredictionLog: a sampled record of scored requests and their answers, as
// JSON Lines in a file, for later evaluation (labels arrive later; join them
// on the request's id). Each line:
//   {"time": "...", "path": "http"|"stream", "request": <the body>, "response": <the answer>}
// Sampling is a per-thread random draw against `rate`, so the unsampled path
// costs one multiply-shift.
// Thread-safety: ShouldSample() and Write() from any thread; writes are
// serialized by a mutex (sampled traffic only).
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rtml::observability {

class PredictionLog {
 public:
  // Opens (appends to) `path`; rate in [0, 1].
  static Result<std::unique_ptr<PredictionLog>> Open(const std::string& path, double rate);

  bool ShouldSample();
  void Write(std::string_view path, std::string_view request, std::string_view response);
  uint64_t written() const { return written_; }

 private:
  PredictionLog(double rate) : threshold_(static_cast<uint64_t>(rate * 18446744073709551615.0)) {}

  const uint64_t threshold_;
  std::mutex mu_;
  std::ofstream out_;      // GUARDED_BY(mu_)
  uint64_t written_ = 0;   // GUARDED_BY(mu_)
  std::string line_;       // GUARDED_BY(mu_)
};

}  // namespace rtml::observability
