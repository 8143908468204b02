// PredictionLog: a sampled record of scored requests and their answers, for
// later evaluation (labels arrive later; join them on the request's id). Each
// record is one JSON object:
//   {"time": "...", "path": "http"|"stream", "request": <the body>, "response": <the answer>}
// written to a PredictionSink: a JSON Lines file (FileSink, here) or a Kafka
// topic (kafka::TopicSink). Sampling is a per-thread random draw against
// `rate`, so the unsampled path costs one xorshift and a compare.
// Every record is counted in rtml_prediction_log_records_total{sink, outcome}
// as logged or dropped (a full producer queue, a failed delivery, a failed
// write): the log is best-effort, never silently lossy.
// Thread-safety: ShouldSample() and Write() from any thread.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"
#include "observability/metrics.h"

namespace rtml::observability {

struct PredictionLogCounters {
  Counter* logged = nullptr;
  Counter* dropped = nullptr;
};
// Registers the record counters of a sink ("file" or "kafka").
PredictionLogCounters AddPredictionLogCounters(Registry* metrics, const std::string& sink);

class PredictionSink {
 public:
  virtual ~PredictionSink() = default;
  // Takes one record (a JSON object, no newline) and counts it.
  virtual void Write(std::string_view record) = 0;
  virtual std::string Describe() const = 0;  // for the start-up log line
};

// Appends records as JSON Lines to a file.
class FileSink final : public PredictionSink {
 public:
  static Result<std::unique_ptr<FileSink>> Open(const std::string& path,
                                                PredictionLogCounters counters);
  void Write(std::string_view record) override;
  std::string Describe() const override { return "file " + path_; }
  ~FileSink() override;

 private:
  FileSink(std::string path, PredictionLogCounters c) : path_(std::move(path)), counters_(c) {}
  const std::string path_;
  const PredictionLogCounters counters_;
  std::mutex mu_;
  std::ofstream out_;     // GUARDED_BY(mu_)
  uint64_t written_ = 0;  // GUARDED_BY(mu_)
};

// The uniform 64-bit draw at or below which a sampler at `rate` takes a
// record (UINT64_MAX for 1). 2^64 itself does not fit: converting it is
// undefined, and gave 0 on some CPUs, so nothing was ever sampled.
inline uint64_t SampleThreshold(double rate) {
  if (rate >= 1.0) return UINT64_MAX;
  return rate <= 0.0 ? 0 : static_cast<uint64_t>(rate * 18446744073709551616.0);
}

class PredictionLog {
 public:
  // rate in [0, 1].
  static Result<std::unique_ptr<PredictionLog>> Create(double rate,
                                                       std::unique_ptr<PredictionSink> sink);

  bool ShouldSample();
  void Write(std::string_view path, std::string_view request, std::string_view response);
  const PredictionSink& sink() const { return *sink_; }

 private:
  PredictionLog(double rate, std::unique_ptr<PredictionSink> sink)
      : threshold_(SampleThreshold(rate)), sink_(std::move(sink)) {}

  const uint64_t threshold_;
  std::unique_ptr<PredictionSink> sink_;
};

}  // namespace rtml::observability
