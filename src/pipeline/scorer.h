// Scorer: the one path from a predict request body to a response, shared by
// HTTP and the Kafka stream worker so both validate, enrich, default and score
// identically.
//
// Score resolves the target model version, has the request's codec (its
// wire format: pipeline/codec.h, protocol/) decode it through the version's
// input schema into dense rows, fills the
// inputs the request left out from the online feature store when the model
// names a feature service (one store read for the whole batch), applies
// defaults, runs the model on the batch, and has the codec write the answer.
//
// A missing or stale stored feature falls back to its default and is listed
// in "defaulted" with its status in "feature_statuses". If the store fails,
// the request still scores on defaults ("feature_store": "degraded") when
// every affected input has a default; otherwise it fails with 503.
//
// Client errors come back as a Status whose code maps to an HTTP status and
// whose reason()/field() say what was wrong; malformed JSON names the byte.
// Models are live (model/registry.h): the Scorer owns the Registry and is
// its VersionPreparer, so each version's metrics, drift monitor and
// feature-service resolution are built with the version, on the loading
// thread, and reach the hot path through ModelVersion::serving. Each thread's
// ScoreScratch caches the current snapshot and refreshes it when the
// registry's generation moves (one relaxed-cost atomic read per request); a
// request or a batch runs wholly on the snapshot it started with.
// Thread-safety: Scorer is shared by all threads; each thread passes its own
// ScoreScratch (reused buffers, its feature-store session, its snapshot).
// Ownership: borrows the feature store and metrics registry, which must
// outlive it.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "features/async_reads.h"
#include "features/feature_store.h"
#include "features/online_reader.h"
#include "model/registry.h"
#include "model/repository.h"
#include "pipeline/codec.h"
#include "common/json_writer.h"
#include "observability/metrics.h"
#include "observability/drift.h"
#include "observability/prediction_log.h"
#include "observability/windowed_histogram.h"
#include "pipeline/fallback.h"
#include "pipeline/shadow.h"
#include "schema/schema.h"

namespace rtml::pipeline {

struct ScoringOptions {
  int max_batch_size = 1024;
  bool ignore_unknown_features = false;
  bool drift = true;  // watch input and prediction drift (PSI) per model version
  bool metrics = true;  // false: no per-request metric updates (to measure their cost)
  observability::DriftOptions drift_options;
  observability::PredictionLog* prediction_log = nullptr;  // sampled request/answer log
};

// Which model a request is for: empty name = the repository's default model;
// no version = that model's default version.
// kHttp is rtml's own JSON over HTTP; kV2Rest the Open Inference Protocol's,
// kV2Grpc the same over gRPC.
enum class Path { kHttp = 0, kStream = 1, kShadow = 2, kV2Rest = 3, kV2Grpc = 4 };
inline constexpr int kPaths = 5;
std::string_view PathName(Path p);  // "http", "stream", "shadow", "v2_rest", "v2_grpc"

struct ScoreTarget {
  std::string_view model;
  std::optional<int64_t> version;
  Path path = Path::kHttp;  // which transport asked, for /v1/stats
  std::string_view label;   // a serving.yaml label instead of a version
  // When the client stops waiting (max(): never). Past it, the request
  // fails with DeadlineExceeded instead of reading the store or running the
  // model; the store read is cut at it. ScoreBatch (the stream) has none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // When the request arrived (the epoch: when Score starts). A deadline the
  // body gives (V2's parameters.timeout) counts from here, as the
  // transport's does, so the time it waited and was decoded in counts.
  std::chrono::steady_clock::time_point received{};
};

// A count of events and their total time, since rtml started.
struct TimedCount {
  uint64_t count = 0;
  uint64_t ns = 0;
};

// A version's cumulative statistics over every path, kept across reloads of
// its number: what the V2 statistics extension reports (protocol/v2_rest.h).
struct VersionTotals {
  std::string model;
  int64_t version = 0;
  uint64_t rows = 0;         // rows scored (answered)
  uint64_t model_calls = 0;  // model executions (a request, a poll's batch)
  TimedCount success;        // requests and events answered, decode to answer
  TimedCount fail;           // refused once the model was known (stream events untimed)
  TimedCount queue;          // HTTP and gRPC requests: read to scoring start
  TimedCount compute_input;  // decode and feature-store read, to the model call
  TimedCount compute_infer;  // the model call
  TimedCount compute_output; // the model call to the answer written
  // The last model call (nullopt: none yet).
  std::optional<std::chrono::system_clock::time_point> last_inference;
};

// A thread's view of the live models: the snapshot it last took and the
// registry generation it was taken at.
struct SnapshotRef {
  uint64_t generation = ~uint64_t{0};
  std::shared_ptr<const model::ModelRepository> repo;
};

// Per-thread buffers, reused across requests.
struct ScoreScratch {
  SnapshotRef snapshot;
  uint64_t draw_state = 0;  // xorshift state for unkeyed traffic splits (seeded on first use)
  std::vector<const model::ModelVersion*> picked;  // ScoreBatch: each body's version
  std::vector<std::string_view> routes;            // and its route
  std::vector<uint32_t> group;                     // bodies of the version being scored
  simdjson::ondemand::parser parser;
  std::string padded;
  std::vector<float> rows;
  std::vector<float> outputs;
  std::vector<schema::Cell> cells;
  std::vector<std::string> keys;  // entity join keys per row
  std::vector<features::FeatureStatus> statuses;  // per row and stored feature
  std::unique_ptr<features::StoreSession> store;  // opened on first use
  features::OnlineReader::Scratch lookup;
  std::vector<DecodedBody> decoded;  // ScoreBatch's per-body state
  size_t rows_scored = 0;  // rows of the last Score's body (decoded; 0 if it was not)
  std::chrono::steady_clock::time_point deadline;  // of the request being scored
  bool fell_back = false;  // the last Score was answered by its version's fallback
  // The request Start began, while its stored features are read.
  struct Pending {
    const model::ModelVersion* v = nullptr;  // held by `snapshot`
    Path path = Path::kHttp;
    Payload payload;
    std::string* response = nullptr;
    std::chrono::steady_clock::time_point start, read_start;
    std::chrono::steady_clock::time_point model_start, model_end;  // set by Predict
    DecodedBody d;
  } pending;
};

// Where one scored event's latency goes (its version's stream latency
// histogram and /v1/stats window). The stream worker records it when the
// event's output is handed to the producer, which only it sees.
class LatencySink {
 public:
  LatencySink() = default;
  LatencySink(observability::Histogram* histogram, observability::WindowedHistogram* window)
      : histogram_(histogram), window_(window) {}
  // No-op for an event that reached no model version.
  void Record(std::chrono::nanoseconds elapsed) const;

 private:
  observability::Histogram* histogram_ = nullptr;
  observability::WindowedHistogram* window_ = nullptr;
};

// The outcome of one event of a batch (ScoreBatch).
struct EventResult {
  Status status;
  std::string response;  // the JSON answer when status is OK
  LatencySink latency;   // set when status is OK and metrics are on
};

class Scorer final : public model::VersionPreparer {
 public:
  // Opens the model registry on `models` (every version loaded, checked and
  // prepared: each model's feature service resolved against the store's
  // definitions, every service feature a numeric input of the model).
  // `store` may be null when no model uses one.
  static Result<std::unique_ptr<Scorer>> Create(model::RegistryOptions models,
                                                const features::FeatureStore* store,
                                                ScoringOptions options,
                                                observability::Registry* metrics);

  // Picks the version that answers `body` for `target` in `repo` (a version
  // or label the target names, else the model's serving policy: traffic
  // split by the sticky key or a random draw, else its default), with the
  // route; or a NotFound status naming what is unknown.
  Result<std::pair<const model::ModelVersion*, std::string_view>> Pick(
      const model::ModelRepository& repo, const ScoreTarget& target, const Payload& request,
      ScoreScratch* scratch) const;

  // Scores `request` for `target`; on success `*response` holds the answer,
  // in the request's wire format.
  Status Score(const ScoreTarget& target, const Payload& request, ScoreScratch* scratch,
               std::string* response) const;
  // Score for an event loop that must not wait for the feature store.
  // With `reads` (the loop's), a request whose model needs stored features
  // has them read there: Start returns true and `done` runs on the loop once
  // the read is over, and must call Resume with the read's status, which
  // returns what Score would have. Otherwise (no read needed, or no `reads`)
  // Start finishes at once: false, with Score's status in *status. Each
  // request in flight has a ScoreScratch of its own; the request's bytes and
  // `response` stay alive until it is finished.
  bool Start(const ScoreTarget& target, const Payload& request, ScoreScratch* scratch,
             std::string* response, features::AsyncReads* reads, features::ReadDone* done,
             Status* status) const;
  Status Resume(ScoreScratch* scratch, Status read) const;

  // Scores several bodies (e.g. the events of one Kafka poll) for one target
  // as one batch: one feature-store read and one model call for all their
  // rows. Each body gets its own result, exactly as Score would answer it.
  // Counts are recorded here; latency is the caller's to record, per event,
  // through each result's `latency` (the stream measures from the poll that
  // fetched the event to its output's hand-off to the producer).
  // `read_at_us` (empty, or one per body; 0: now) is when each body's stored
  // features are read: the stream reads an event's window features at its
  // event time, so a replay of the topic gives the same values.
  // REQUIRES: results->size() == bodies.size() (reused across calls).
  void ScoreBatch(const ScoreTarget& target, std::span<const Payload> bodies,
                  ScoreScratch* scratch, std::vector<EventResult>* results,
                  std::span<const int64_t> read_at_us = {}) const;

  // The snapshot a thread works on, refreshed when a new one was published:
  // one atomic read, no lock, in the steady state.
  const model::ModelRepository& Models(ScoreScratch* scratch) const;
  // The models serving now (for listings and scrapes; requests use Models()).
  std::shared_ptr<const model::ModelRepository> repository() const {
    return registry_->Current();
  }
  model::Registry& registry() const { return *registry_; }
  // VersionPreparer: builds a version's serving state (on the loading thread).
  Result<std::shared_ptr<const void>> Prepare(const model::ModelVersion& v) override;
  // Appends the "series" array of GET /v1/stats: per model, version and path,
  // throughput and latency percentiles over 10 s, 1 min and 5 min.
  void WriteStats(JsonWriter& w) const;
  // Every loaded version's totals: of every model (model empty), of one
  // model, or of one version of it; NotFound names what is not loaded.
  Result<std::vector<VersionTotals>> Totals(std::string_view model,
                                            std::optional<int64_t> version) const;
  // Appends the "drift" array of GET /v1/stats: PSI per model, version and series.
  void WriteDrift(JsonWriter& w) const;
  // Appends the "shadow" array of GET /v1/stats: shadow versions' agreement.
  void WriteShadow(JsonWriter& w) const { shadow_->WriteStats(w); }
  // Waits for queued shadow scoring (tests).
  void DrainShadow() const { shadow_->Drain(); }
  // The largest PSI of any series of any version; -1 before there is one.
  double WorstPsi() const;
  // The entity keys a version's rows may carry to read its stored features
  // (none without a feature service).
  std::span<const schema::KeySpec> EntityKeys(const model::ModelVersion& v) const;
  const ScoringOptions& options() const { return options_; }
  const features::FeatureStore* feature_store() const { return store_; }

 private:
  // What one path (HTTP or stream) of a version updates per request.
  struct PathMetrics {
    observability::Counter* ok;        // rtml_requests_total{outcome="ok"}
    observability::Counter* degraded;  // outcome="degraded": scored on defaults
    observability::Counter* errors;    // outcome="error": refused once the model was known
    observability::Counter* predictions;
    observability::Histogram* latency;
    observability::Histogram* model_latency;  // the model call alone
    observability::Histogram* batch_rows;     // rows per model call
    observability::Counter* fallback;         // outcome="fallback": answered by the fallback
    std::array<observability::Counter*, kFallbackReasonCount> fallbacks;  // by reason
    std::unique_ptr<observability::WindowedHistogram> window;
    // For the V2 statistics (not in /metrics): counts and nanoseconds.
    static uint64_t Ns(std::chrono::steady_clock::duration d) {
      return static_cast<uint64_t>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    }
    struct Timed {
      mutable observability::Counter count, ns;
      void Add(std::chrono::steady_clock::duration d) const {
        count.Inc();
        ns.Inc(Ns(d));
      }
      TimedCount Read() const { return {count.value(), ns.value()}; }
    };
    Timed queue, compute_input, compute_output;
    mutable observability::Counter fail_ns;  // time to refuse (the count is `errors`)
  };
  struct VersionMetrics {
    std::array<PathMetrics, kPaths> paths;  // by Path
    // The last model call, steady_clock nanoseconds, refreshed at most once a
    // millisecond (a read of a line other threads rarely write).
    mutable std::atomic<int64_t> last_call_ns{0};
  };
  // How a version's inputs come from the store: resolved once at Create().
  using Decoded = DecodedBody;
  struct Enrichment {
    std::unique_ptr<features::OnlineReader> reader;
    std::vector<schema::KeySpec> keys;  // the reader's join keys
    std::vector<int> columns;           // schema column per reader ref
    std::vector<features::ValueType> types;
  };

  // What a loaded version carries for the Scorer (ModelVersion::serving).
  struct VersionState {
    const VersionMetrics* metrics = nullptr;  // shared by reloads of the same number
    std::unique_ptr<observability::DriftMonitor> drift;  // null when drift is off
    std::unique_ptr<Enrichment> enrichment;   // null without a feature service
  };

  Scorer(const features::FeatureStore* store, ScoringOptions options,
         observability::Registry* metrics)
      : store_(store), options_(options), registry_metrics_(metrics) {}
  const VersionMetrics* MetricsOf(const model::ModelVersion& v);
  Result<std::unique_ptr<Enrichment>> PrepareEnrichment(const model::ModelVersion& v) const;
  Result<std::unique_ptr<observability::DriftMonitor>> PrepareDrift(
      const model::ModelVersion& v) const;
  static const VersionState& StateOf(const model::ModelVersion& v) {
    return *static_cast<const VersionState*>(v.serving.get());
  }


  schema::RowDecoder DecoderFor(const model::ModelVersion& v, const Decoded& d) const;
  const Enrichment* EnrichmentFor(const model::ModelVersion& v) const;
  // The request's rows for v, decoded by its codec from out->first_row.
  Status Decode(const model::ModelVersion& v, const Payload& request, ScoreScratch* scratch,
                Decoded* out) const;
  // Sizes the row, cell and key buffers for n rows (keeps what is there).
  void ReserveRows(const model::ModelVersion& v, size_t n, ScoreScratch* scratch) const;
  // Fills stored inputs for every decoded body in one store read; a body
  // whose enrichment fails gets its status set.
  void Enrich(const model::ModelVersion& v, std::span<Decoded> bodies,
              ScoreScratch* scratch) const;
  // Enrich in three steps. PlanRead: true when the bodies need a read, which
  // it plans in scratch->lookup (false: none needed, or a body's status is
  // set). ReadNow: that read on the thread's session. ApplyRead: the rows
  // filled from what the read gave, or degraded or failed by its status.
  bool PlanRead(const model::ModelVersion& v, std::span<Decoded> bodies,
                ScoreScratch* scratch) const;
  Status ReadNow(ScoreScratch* scratch) const;
  void ApplyRead(const model::ModelVersion& v, std::span<Decoded> bodies, ScoreScratch* scratch,
                 const Status& read, std::chrono::steady_clock::time_point started) const;
  // Start's work after the store read: the model, the answer (or the
  // fallback's), counts, the log line and the shadow offer.
  Status Finish(ScoreScratch* scratch) const;
  // Counts a request that failed once its version was known.
  // Counts (and times, from `start`) a request the version refused.
  Status Failed(const model::ModelVersion& v, Path path, Status s,
                std::chrono::steady_clock::time_point start) const;
  void FillStored(const model::ModelVersion& v, const Enrichment& e, size_t row, int64_t now,
                  ScoreScratch* scratch) const;
  bool NeedsLookup(const model::ModelVersion& v, const Enrichment& e, size_t row,
                   const ScoreScratch& scratch) const;
  // The version's metrics, or null when scoring.metrics is off.
  const VersionMetrics* MetricsFor(const model::ModelVersion& v) const {
    return options_.metrics ? StateOf(v).metrics : nullptr;
  }
  Status Predict(const model::ModelVersion& v, const VersionMetrics* m, Path path, size_t n_rows,
                 ScoreScratch* scratch) const;
  // Finishes and scores one enriched body's rows.
  Status PredictDecoded(const model::ModelVersion& v, const VersionMetrics* m, Path path,
                        Decoded* d, ScoreScratch* scratch) const;
  // After `failed`, answers `body` with v's fallback (fallback.cc): a
  // constant, or its fallback version scored without the feature store.
  // Returns `failed` when the failure is the request's or v has no fallback,
  // `failed` with a note when the fallback cannot answer either.
  Status AnswerFallback(const model::ModelVersion& v, Path path, const Payload& request,
                        const Status& failed, Decoded* d, ScoreScratch* scratch,
                        std::string* response) const;
  // Queues a shadow job when the model has shadow versions (not for shadows).
  void OfferShadow(const model::ModelVersion& v, ShadowJob job,
                   const std::vector<float>& outputs) const;
  // ScoreBatch's work for the bodies scratch->group names, all for version v.
  void ScoreGroup(const model::ModelVersion& v, const ScoreTarget& target,
                  std::span<const Payload> bodies, std::span<const int64_t> read_at_us,
                  ScoreScratch* scratch, std::vector<EventResult>* results) const;
  // Counts a scored body.
  static void Count(const PathMetrics& m, const Decoded& d);
  // Writes a sampled request and its answer to the prediction log, as JSON.
  void MaybeLog(Path path, const Payload& request, std::string_view response,
                const Decoded& d) const;
  Status FinishRows(const model::ModelVersion& v, const Decoded& d, ScoreScratch* scratch) const;
  // The codec's answer for d's scored rows; `fallback_from`: the version
  // whose fallback v is (0: none).
  void WriteAnswer(const model::ModelVersion& v, Decoded& d, const Payload& request,
                   const ScoreScratch& scratch, std::string* response,
                   int64_t fallback_from = 0) const;

  const features::FeatureStore* store_;
  ScoringOptions options_;
  observability::Registry* registry_metrics_;
  std::mutex metrics_mu_;  // guards metrics_ (loading threads only)
  std::map<std::pair<std::string, int64_t>, std::unique_ptr<VersionMetrics>> metrics_;
  std::unique_ptr<model::Registry> registry_;  // its loads use the members above
  std::unique_ptr<ShadowRunner> shadow_;       // last: its thread uses the registry
  observability::Counter* store_reads_ok_ = nullptr;
  observability::Counter* store_reads_failed_ = nullptr;
  observability::Histogram* store_latency_ = nullptr;
  std::vector<observability::Counter*> store_values_;  // by FeatureStatus
};

}  // namespace rtml::pipeline
