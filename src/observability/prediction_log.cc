#include "observability/prediction_log.h"

#include <chrono>
#include <random>

#include "common/time_format.h"

namespace rtml::observability {

PredictionLogCounters AddPredictionLogCounters(Registry* metrics, const std::string& sink) {
  const std::string help = "Sampled prediction records, logged or dropped, by sink.";
  return {metrics->AddCounter("rtml_prediction_log_records_total", help,
                              {{"sink", sink}, {"outcome", "logged"}}),
          metrics->AddCounter("rtml_prediction_log_records_total", help,
                              {{"sink", sink}, {"outcome", "dropped"}})};
}

Result<std::unique_ptr<FileSink>> FileSink::Open(const std::string& path,
                                                 PredictionLogCounters counters) {
  auto sink = std::unique_ptr<FileSink>(new FileSink(path, counters));
  sink->out_.open(path, std::ios::app);
  if (!sink->out_) {
    return FailedPrecondition("cannot open the prediction log '" + path +
                              "' for appending (check log.predictions.file)");
  }
  return sink;
}

void FileSink::Write(std::string_view record) {
  std::lock_guard lock(mu_);
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.put('\n');
  if (++written_ % 64 == 0) out_.flush();
  (out_ ? counters_.logged : counters_.dropped)->Inc();
  out_.clear();  // a full disk may free up; keep trying
}

FileSink::~FileSink() {
  std::lock_guard lock(mu_);
  out_.flush();
}

Result<std::unique_ptr<PredictionLog>> PredictionLog::Create(
    double rate, std::unique_ptr<PredictionSink> sink) {
  if (rate < 0 || rate > 1) return FailedPrecondition("log.predictions.rate must be in [0, 1]");
  return std::unique_ptr<PredictionLog>(new PredictionLog(rate, std::move(sink)));
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
  thread_local std::string record;  // sampled traffic only; reused
  record = "{\"time\":\"" + FormatTimestamp(now) + "\",\"path\":\"";
  record += path;
  record += "\",\"request\":";
  record += request;
  record += ",\"response\":";
  record += response;
  record += "}";
  sink_->Write(record);
}

}  // namespace rtml::observability
