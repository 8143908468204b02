#include "observability/drift.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "observability/log.h"

namespace rtml::observability {
namespace {

spdlog::logger& Log() {
  static spdlog::logger& log = observability::ComponentLogger("drift");
  return log;
}

constexpr int kSlots = 32;
constexpr int64_t kSlotUs = 10'000'000;

int BinOf(const ReferenceBins& b, double x) {
  if (std::isnan(x)) return static_cast<int>(b.edges.size()) + 1;
  return static_cast<int>(std::lower_bound(b.edges.begin(), b.edges.end(), x) - b.edges.begin());
}

double Psi(const std::vector<double>& expected, const std::vector<uint64_t>& counts) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return 0;
  constexpr double kEps = 1e-4;
  double psi = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = std::max(expected[i], kEps);
    const double a = std::max(static_cast<double>(counts[i]) / total, kEps);
    psi += (a - e) * std::log(a / e);
  }
  return psi;
}

Result<ReferenceBins> ParseBins(simdjson::dom::element e, const std::string& name) {
  ReferenceBins b;
  simdjson::dom::array edges, props;
  if (e["edges"].get(edges) || e["proportions"].get(props)) {
    return FailedPrecondition("drift reference for '" + name + "' needs edges and proportions");
  }
  for (double v : edges) b.edges.push_back(v);
  for (double v : props) b.proportions.push_back(v);
  if (b.proportions.size() != b.edges.size() + 2 ||
      !std::is_sorted(b.edges.begin(), b.edges.end())) {
    return FailedPrecondition("drift reference for '" + name +
                              "': proportions must be one per bin plus missing, edges sorted");
  }
  return b;
}

// Quantile edges and shares of a sample (NaN = missing).
ReferenceBins FromSample(std::vector<double> v, int bins) {
  ReferenceBins b;
  const size_t total = v.size();
  std::vector<double> present;
  for (double x : v) {
    if (!std::isnan(x)) present.push_back(x);
  }
  std::sort(present.begin(), present.end());
  for (int k = 1; k < bins && !present.empty(); ++k) {
    const double edge = present[std::min(present.size() - 1, present.size() * k / bins)];
    if (b.edges.empty() || edge > b.edges.back()) b.edges.push_back(edge);
  }
  std::vector<uint64_t> counts(b.edges.size() + 2, 0);
  for (double x : v) ++counts[BinOf(b, x)];
  for (uint64_t c : counts) b.proportions.push_back(total ? static_cast<double>(c) / total : 0);
  return b;
}

}  // namespace

// One thread's counts: per series, per bin, per 10-second slot.
struct DriftMonitor::Slots {
  Slots(size_t series, size_t bins)
      : n_series(series), n_bins(bins), counts(new std::atomic<uint32_t>[kSlots * series * bins]),
        epochs(new std::atomic<int64_t>[kSlots]) {
    for (size_t i = 0; i < kSlots * series * bins; ++i) counts[i].store(0);
    for (int i = 0; i < kSlots; ++i) epochs[i].store(-1);
  }
  std::atomic<uint32_t>& At(int slot, size_t series, size_t bin) {
    return counts[(slot * n_series + series) * n_bins + bin];
  }
  uint32_t Get(int slot, size_t series, size_t bin) const {
    return counts[(slot * n_series + series) * n_bins + bin].load(std::memory_order_relaxed);
  }
  int SlotFor(int64_t epoch) {
    const int s = static_cast<int>(epoch % kSlots);
    int64_t seen = epochs[s].load(std::memory_order_acquire);
    if (seen != epoch && epochs[s].compare_exchange_strong(seen, epoch)) {
      for (size_t i = 0; i < n_series * n_bins; ++i) {
        counts[s * n_series * n_bins + i].store(0, std::memory_order_relaxed);
      }
    }
    return s;
  }
  size_t n_series, n_bins;
  std::unique_ptr<std::atomic<uint32_t>[]> counts;  // < 2^32 rows a thread in 10 s
  std::unique_ptr<std::atomic<int64_t>[]> epochs;
  std::atomic<uint64_t> observed{0};  // rows this thread has counted
};

Result<DriftReference> ParseDriftReference(std::string_view json,
                                           const std::vector<std::string>& names) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc)) {
    return FailedPrecondition("drift reference is not valid JSON");
  }
  DriftReference r;
  for (const std::string& n : names) {
    simdjson::dom::element e;
    if (doc["features"][n].get(e)) {
      return FailedPrecondition("drift reference has no feature '" + n + "'");
    }
    ASSIGN_OR_RETURN(ReferenceBins b, ParseBins(e, n));
    r.features.push_back(std::move(b));
  }
  simdjson::dom::element p;
  if (doc["prediction"].get(p)) return FailedPrecondition("drift reference has no prediction");
  ASSIGN_OR_RETURN(r.prediction, ParseBins(p, "prediction"));
  return r;
}

DriftMonitor::DriftMonitor(std::string model, int64_t version, std::vector<std::string> features,
                           std::optional<DriftReference> reference, DriftOptions options,
                           const Clock& clock)
    : model_(std::move(model)), version_(version), features_(std::move(features)),
      options_(options), clock_(clock), level_(features_.size() + 1, 0) {
  size_t max_bins = static_cast<size_t>(options_.bins) + 1;
  if (reference) {
    bins_ = std::move(reference->features);
    bins_.push_back(std::move(reference->prediction));
    for (const auto& b : bins_) max_bins = std::max(max_bins, b.proportions.size());
    ready_.store(true);
  } else {
    samples_.resize(features_.size() + 1);
  }
  slots_ = std::make_unique<PerThread<Slots>>(
      [series = features_.size() + 1, max_bins] { return std::make_unique<Slots>(series, max_bins); });
}

DriftMonitor::~DriftMonitor() = default;

void DriftMonitor::CollectReference(std::span<const float> rows, size_t n_rows,
                                    std::span<const float> outputs, int outputs_per_row) {
  std::lock_guard lock(reference_mu_);
  if (ready_.load(std::memory_order_acquire)) return;
  const size_t nf = features_.size();
  for (size_t r = 0; r < n_rows && samples_[0].size() < options_.reference_rows; ++r) {
    for (size_t f = 0; f < nf; ++f) samples_[f].push_back(rows[r * nf + f]);
    samples_[nf].push_back(outputs[r * outputs_per_row]);
  }
  if (samples_[0].size() >= options_.reference_rows) BuildReferenceLocked();
}

void DriftMonitor::BuildReferenceLocked() {
  for (auto& s : samples_) bins_.push_back(FromSample(std::move(s), options_.bins));
  samples_.clear();
  ready_.store(true, std::memory_order_release);
  const LogScope scope({.model = model_, .version = version_});
  Log().info("model {} version {}: reference taken from the first {} rows", model_,
               version_, options_.reference_rows);
}

void DriftMonitor::Observe(std::span<const float> rows, size_t n_rows,
                           std::span<const float> outputs, int outputs_per_row) {
  if (!ready_.load(std::memory_order_acquire)) {
    CollectReference(rows, n_rows, outputs, outputs_per_row);
    return;
  }
  auto [mine, shared] = slots_->local();
  const int slot = mine.SlotFor(clock_.NowMicros() / kSlotUs);
  const size_t nf = features_.size();
  for (size_t r = 0; r < n_rows; ++r) {
    for (size_t f = 0; f < nf; ++f) Add(mine.At(slot, f, BinOf(bins_[f], rows[r * nf + f])), 1, shared);
    Add(mine.At(slot, nf, BinOf(bins_[nf], outputs[r * outputs_per_row])), 1, shared);
  }
  const uint64_t before = mine.observed.load(std::memory_order_relaxed);
  Add(mine.observed, n_rows, shared);
  if (before / options_.check_every_rows != (before + n_rows) / options_.check_every_rows) {
    CheckThresholds();
  }
}

std::vector<DriftScore> DriftMonitor::Psi() const {
  std::vector<DriftScore> out;
  if (!ready_.load(std::memory_order_acquire)) return out;
  const int64_t current = clock_.NowMicros() / kSlotUs;
  const int n_slots = std::clamp(static_cast<int>(options_.window_s / 10), 1, kSlots);
  for (size_t s = 0; s < bins_.size(); ++s) {
    std::vector<uint64_t> counts(bins_[s].proportions.size(), 0);
    slots_->ForEach([&](const Slots& thread) {
      for (int i = 0; i < n_slots && current - i >= 0; ++i) {
        const int slot = static_cast<int>((current - i) % kSlots);
        if (thread.epochs[slot].load(std::memory_order_acquire) != current - i) continue;
        for (size_t b = 0; b < counts.size(); ++b) counts[b] += thread.Get(slot, s, b);
      }
    });
    uint64_t total = 0;
    for (uint64_t c : counts) total += c;
    if (total == 0 || total < options_.min_rows) continue;
    out.push_back({s < features_.size() ? features_[s] : "prediction",
                   observability::Psi(bins_[s].proportions, counts)});
  }
  return out;
}

void DriftMonitor::CheckThresholds() {
  std::lock_guard lock(check_mu_);
  std::vector<DriftScore> scores = Psi();
  std::vector<DriftScore> rose;  // series whose level went up since the last check
  for (const DriftScore& s : scores) {
    const size_t index = s.series == "prediction"
                             ? features_.size()
                             : std::find(features_.begin(), features_.end(), s.series) -
                                   features_.begin();
    const int level = s.psi > options_.alert ? 2 : s.psi > options_.warn ? 1 : 0;
    if (level > level_[index]) rose.push_back(s);
    level_[index] = level;
  }
  if (rose.empty()) return;
  std::sort(rose.begin(), rose.end(),
            [](const DriftScore& a, const DriftScore& b) { return a.psi > b.psi; });
  // One line: the series that reached each threshold, worst first.
  std::string text;
  for (const int level : {2, 1}) {
    const double threshold = level == 2 ? options_.alert : options_.warn;
    std::string list;
    size_t listed = 0, more = 0;
    for (const DriftScore& r : rose) {
      if ((r.psi > options_.alert ? 2 : 1) != level) continue;
      if (listed++ < 5) {
        list += (list.empty() ? "" : ", ") + r.series + " " + std::to_string(r.psi).substr(0, 5);
      } else {
        ++more;
      }
    }
    if (list.empty()) continue;
    if (more > 0) list += " and " + std::to_string(more) + " more";
    char head[48];
    std::snprintf(head, sizeof(head), "past %s %g: ", level == 2 ? "alert" : "warn", threshold);
    text += (text.empty() ? "" : "; ") + std::string(head) + list;
  }
  const LogScope scope({.model = model_, .version = version_});
  Log().warn("model {} version {}: PSI {} (see rtml_drift_psi or /v1/stats)", model_, version_,
             text);
}

}  // namespace rtml::observability
