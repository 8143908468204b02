#include "features/served_log.h"

#include <cmath>
#include <random>

#include "common/json_writer.h"
#include "common/time_format.h"

namespace rtml::features {

Result<std::unique_ptr<ServedLog>> ServedLog::Open(double rate, const std::string& path,
                                                   observability::Registry* metrics) {
  auto counters = observability::AddPredictionLogCounters(metrics, "served_features");
  auto sink = observability::FileSink::Open(path, counters);
  if (!sink.ok()) {
    return FailedPrecondition("cannot open the served-values log '" + path +
                              "' for appending (check features.served_log.file)");
  }
  return std::unique_ptr<ServedLog>(new ServedLog(rate, std::move(sink).value()));
}

bool ServedLog::ShouldSample() const {
  thread_local uint64_t state = std::random_device{}() | 1;
  state ^= state << 13;  // xorshift64
  state ^= state >> 7;
  state ^= state << 17;
  return state <= threshold_ && threshold_ != 0;
}

std::string ServedRecordJson(const FeatureView& view, std::string_view entity, int64_t at_us,
                             uint64_t seen, std::span<const double> values) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("view").String(view.name).Key("entity").String(entity);
  w.Key("at_us").Int(at_us).Key("at").String(FormatTimestamp(at_us)).Key("seen").Uint(seen);
  w.Key("values").BeginObject();
  for (size_t i = 0; i < values.size() && i < view.features.size(); ++i) {
    w.Key(view.features[i].name);
    if (std::isnan(values[i])) {
      w.Null();
    } else {
      w.Double(values[i]);
    }
  }
  w.EndObject().EndObject();
  return out;
}

void ServedLog::Write(const FeatureView& view, std::string_view entity, int64_t at_us,
                      uint64_t seen, std::span<const double> values) const {
  sink_->Write(ServedRecordJson(view, entity, at_us, seen, values));
}

}  // namespace rtml::features
