#include "observability/prediction_log.h"

#include <chrono>
#include <random>

#include "common/time_format.h"

namespace rtml::observability {

Result<std::unique_ptr<PredictionLog>> PredictionLog::Open(const std::string& path, double rate) {
  if (rate < 0 || rate > 1) return FailedPrecondition("log.predictions.rate must be in [0, 1]");
  auto log = std::unique_ptr<PredictionLog>(new PredictionLog(rate));
  log->out_.open(path, std::ios::app);
  if (!log->out_) return FailedPrecondition("cannot open prediction log '" + path + "'");
  return log;
}

bool PredictionLog::ShouldSample() {
  thread_local uint64_t state = std::random_device{}() | 1;
  state ^= state << 13;  // xorshift64
  state ^= state >> 7;
  state ^= state << 17;
  return state < threshold_;
}

void PredictionLog::Write(std::string_view path, std::string_view request,
                          std::string_view response) {
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::lock_guard lock(mu_);
  line_ = "{\"time\":\"" + FormatTimestamp(now) + "\",\"path\":\"";
  line_ += path;
  line_ += "\",\"request\":";
  line_ += request;
  line_ += ",\"response\":";
  line_ += response;
  line_ += "}\n";
  out_ << line_;
  if (++written_ % 64 == 0) out_.flush();
}

}  // namespace rtml::observability
