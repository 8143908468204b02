#include "pipeline/scorer.h"

#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include "common/json_scan.h"
#include "common/json_writer.h"

namespace rtml::pipeline {
namespace od = simdjson::ondemand;
using model::ModelVersion;
using model::OutputKind;
using schema::Cell;

namespace {

// DeadlineExceeded once `deadline` has passed, saying what was not done.
Status CheckDeadline(std::chrono::steady_clock::time_point deadline, std::string_view when) {
  if (deadline == std::chrono::steady_clock::time_point::max() ||
      std::chrono::steady_clock::now() < deadline) {
    return Status::Ok();
  }
  return Status(StatusCode::kDeadlineExceeded,
                "the request's deadline passed " + std::string(when) + "; not answered",
                "deadline_exceeded");
}

}  // namespace

std::string_view PathName(Path p) {
  switch (p) {
    case Path::kHttp: return "http";
    case Path::kStream: return "stream";
    case Path::kShadow: return "shadow";
    case Path::kV2Rest: return "v2_rest";
    case Path::kV2Grpc: return "v2_grpc";
  }
  return "unknown";
}

Result<std::unique_ptr<Scorer>> Scorer::Create(model::RegistryOptions models,
                                               const features::FeatureStore* store,
                                               ScoringOptions options,
                                               observability::Registry* metrics) {
  auto s = std::unique_ptr<Scorer>(new Scorer(store, options, metrics));
  if (store != nullptr) {
    const std::string backend(store->online().backend());
    s->store_reads_ok_ = metrics->AddCounter(
        "rtml_feature_store_reads_total", "Feature-store batch reads by backend and outcome.",
        {{"backend", backend}, {"outcome", "ok"}});
    s->store_reads_failed_ = metrics->AddCounter(
        "rtml_feature_store_reads_total", "Feature-store batch reads by backend and outcome.",
        {{"backend", backend}, {"outcome", "error"}});
    s->store_latency_ = metrics->AddHistogram(
        "rtml_feature_store_read_duration_seconds", "Time of one feature-store batch read.",
        {{"backend", backend}}, observability::LatencyBucketsSeconds());
    for (auto st : {features::FeatureStatus::kPresent, features::FeatureStatus::kNotFound,
                    features::FeatureStatus::kNullValue,
                    features::FeatureStatus::kOutsideMaxAge}) {
      s->store_values_.push_back(metrics->AddCounter(
          "rtml_feature_store_values_total",
          "Stored feature values looked up for scoring, by Feast status.",
          {{"backend", backend}, {"status", std::string(features::FeatureStatusName(st))}}));
    }
  }
  s->shadow_ = std::make_unique<ShadowRunner>(*s, metrics);
  if (models.metrics == nullptr) models.metrics = metrics;
  ASSIGN_OR_RETURN(s->registry_, model::Registry::Open(std::move(models), s.get()));
  if (options.drift) {
    metrics->AddGaugeFamily(
        "rtml_drift_psi",
        "Population stability index of each input and of the prediction over the drift "
        "window, against the version's reference (0.1: moved, 0.25: shifted).",
        [scorer = s.get()] {
          std::vector<std::pair<observability::Labels, double>> out;
          const auto repo = scorer->repository();
          for (const model::ModelEntry* e : repo->models()) {
            for (const auto& [number, v] : e->versions) {
              const auto& drift = StateOf(*v).drift;
              if (!drift) continue;
              for (const observability::DriftScore& d : drift->Psi()) {
                out.push_back({{{"model", e->name}, {"version", std::to_string(number)},
                                {"series", d.series}},
                               d.psi});
              }
            }
          }
          return out;
        });
  }
  return s;
}

Result<std::shared_ptr<const void>> Scorer::Prepare(const ModelVersion& v) {
  auto state = std::make_shared<VersionState>();
  state->metrics = MetricsOf(v);
  if (options_.drift) {
    ASSIGN_OR_RETURN(state->drift, PrepareDrift(v));
  }
  ASSIGN_OR_RETURN(state->enrichment, PrepareEnrichment(v));
  return std::shared_ptr<const void>(std::move(state));
}

// A version number's metrics, made on its first load and kept across reloads
// (the same series go on counting).
const Scorer::VersionMetrics* Scorer::MetricsOf(const ModelVersion& v) {
  std::lock_guard lock(metrics_mu_);
  std::unique_ptr<VersionMetrics>& slot = metrics_[{v.name, v.version}];
  if (slot != nullptr) return slot.get();
  slot = std::make_unique<VersionMetrics>();
  VersionMetrics& vm = *slot;
  observability::Registry* metrics = registry_metrics_;
  for (int p = 0; p < kPaths; ++p) {
    const Path path = static_cast<Path>(p);
    const observability::Labels labels{{"model", v.name},
                                       {"version", std::to_string(v.version)},
                                       {"path", std::string(PathName(path))}};
    auto with_outcome = [&](const char* outcome) {
      observability::Labels l = labels;
      l.emplace_back("outcome", outcome);
      return metrics->AddCounter(
          "rtml_requests_total",
          "Predict requests (HTTP bodies, stream events) that reached a model version, by "
          "outcome: ok, degraded (scored on defaults: the feature store failed), fallback "
          "(answered by the version's fallback), error.",
          l);
    };
    PathMetrics& pm = vm.paths[static_cast<int>(path)];
    pm.ok = with_outcome("ok");
    pm.degraded = with_outcome("degraded");
    pm.errors = with_outcome("error");
    pm.fallback = with_outcome("fallback");
    for (int r = 0; r < kFallbackReasonCount; ++r) {
      observability::Labels l = labels;
      l.emplace_back("reason", kFallbackReasons[r]);
      pm.fallbacks[r] = metrics->AddCounter(
          "rtml_fallbacks_total",
          "Requests and events answered by their version's fallback (model.yaml), by why the "
          "version could not answer.",
          l);
    }
    pm.predictions = metrics->AddCounter("rtml_predictions_total", "Rows scored.", labels);
    pm.latency = metrics->AddHistogram(
        "rtml_request_duration_seconds",
        "Time to decode, enrich, score and encode a predict request; for a stream event, from "
        "the poll that fetched it to its prediction's hand-off to the producer.",
        labels,
        observability::LatencyBucketsSeconds());
    pm.model_latency = metrics->AddHistogram("rtml_model_duration_seconds",
                                             "Time of the model call alone, per batch of rows.",
                                             labels, observability::LatencyBucketsSeconds());
    pm.batch_rows = metrics->AddHistogram("rtml_batch_rows",
                                          "Rows per model call (a request or a poll).", labels,
                                          {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096});
    pm.window = std::make_unique<observability::WindowedHistogram>();
  }
  return &vm;
}

Result<std::unique_ptr<Scorer::Enrichment>> Scorer::PrepareEnrichment(
    const ModelVersion& v) const {
  const std::string& service_name = v.spec.feature_service;
  if (service_name.empty()) return std::unique_ptr<Enrichment>();
  const std::string where = "model " + v.name + " version " + std::to_string(v.version);
  if (store_ == nullptr) {
    return FailedPrecondition(where + " uses feature service '" + service_name +
                              "' but no feature store is configured (set features.definitions)");
  }
  const features::Definitions& defs = store_->definitions();
  const features::FeatureService* service = defs.FindService(service_name);
  if (service == nullptr) {
    return FailedPrecondition(where + ": unknown feature service '" + service_name + "'");
  }
  Enrichment e;
  for (features::FeatureRef ref : service->features) {
    const features::Feature& f = defs.views()[ref.view].features[ref.feature];
    const int column = v.schema.IndexOf(f.name);
    if (column < 0) {
      return FailedPrecondition(where + ": feature service '" + service_name + "' provides '" +
                                defs.RefName(ref) + "', which is not an input of the model");
    }
    if (f.dtype == features::ValueType::kString) {
      return FailedPrecondition(where + ": '" + defs.RefName(ref) +
                                "' is a string feature and cannot be a model input");
    }
    e.columns.push_back(column);
    e.types.push_back(f.dtype);
  }
  auto reader = features::OnlineReader::Create(defs, service->features, store_->served_log());
  if (!reader.ok()) return reader.status().Annotate(where);
  e.reader = std::make_unique<features::OnlineReader>(std::move(reader).value());
  for (size_t k = 0; k < e.reader->join_keys().size(); ++k) {
    if (v.schema.IndexOf(e.reader->join_keys()[k]) >= 0) {
      return FailedPrecondition(where + ": join key '" + e.reader->join_keys()[k] +
                                "' cannot also be a model input");
    }
    e.keys.push_back({e.reader->join_keys()[k],
                      e.reader->join_key_type(k) == features::ValueType::kInt});
  }
  return std::make_unique<Enrichment>(std::move(e));
}

// A version's drift reference: drift_reference.json beside its model file if
// present (written at training time), else its first scored rows.
Result<std::unique_ptr<observability::DriftMonitor>> Scorer::PrepareDrift(
    const ModelVersion& v) const {
  std::vector<std::string> names;
  for (const schema::FeatureSpec& f : v.schema.features()) names.push_back(f.name);
  std::optional<observability::DriftReference> reference;
  const std::string path = v.dir + "/drift_reference.json";
  if (std::ifstream in(path); in) {
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = observability::ParseDriftReference(text.str(), names);
    if (!parsed.ok()) return parsed.status().Annotate(path);
    reference = std::move(parsed).value();
  }
  return std::make_unique<observability::DriftMonitor>(v.name, v.version, std::move(names),
                                                       std::move(reference),
                                                       options_.drift_options);
}

schema::RowDecoder Scorer::DecoderFor(const ModelVersion& v, const Decoded& d) const {
  const bool ignore =
      d.lenient || v.spec.ignore_unknown_features.value_or(options_.ignore_unknown_features);
  const Enrichment* e = EnrichmentFor(v);
  return schema::RowDecoder(
      v.schema, ignore ? schema::UnknownFeatures::kIgnore : schema::UnknownFeatures::kReject,
      e != nullptr ? std::span<const schema::KeySpec>(e->keys)
                   : std::span<const schema::KeySpec>());
}

const Scorer::Enrichment* Scorer::EnrichmentFor(const ModelVersion& v) const {
  return StateOf(v).enrichment.get();
}

std::span<const schema::KeySpec> Scorer::EntityKeys(const ModelVersion& v) const {
  const Enrichment* e = EnrichmentFor(v);
  return e != nullptr ? std::span<const schema::KeySpec>(e->keys)
                      : std::span<const schema::KeySpec>();
}

const model::ModelRepository& Scorer::Models(ScoreScratch* scratch) const {
  SnapshotRef& ref = scratch->snapshot;
  const uint64_t generation = registry_->generation();
  if (generation != ref.generation) {
    ref.repo = registry_->Current();
    ref.generation = generation;
  }
  return *ref.repo;
}

Result<std::pair<const ModelVersion*, std::string_view>> Scorer::Pick(
    const model::ModelRepository& repo, const ScoreTarget& target, const Payload& request,
    ScoreScratch* scratch) const {
  const model::ModelEntry* entry =
      target.model.empty() ? repo.default_model() : repo.Find(target.model);
  if (entry == nullptr) {
    if (target.model.empty()) {
      return NotFound("no default model: several models are loaded and models.default is not set",
                      "unknown_model");
    }
    return NotFound("unknown model '" + std::string(target.model) + "'", "unknown_model");
  }
  model::RouteRequest r{.version = target.version, .label = target.label};
  const model::ServingPolicy& policy = entry->policy;
  if (policy.total_weight > 0 && !r.version && r.label.empty()) {
    if (!policy.sticky_key.empty()) {
      r.sticky_hash = request.codec->StickyKey(request, policy.sticky_key, *scratch);
    }
    if (!r.sticky_hash) {
      uint64_t& x = scratch->draw_state;
      if (x == 0) x = std::random_device{}() | 1;
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      r.draw = x;
    }
  }
  return entry->Pick(r);
}

Status Scorer::Score(const ScoreTarget& target, const Payload& request, ScoreScratch* scratch,
                     std::string* response) const {
  Status s;
  Start(target, request, scratch, response, nullptr, nullptr, &s);
  return s;
}

bool Scorer::Start(const ScoreTarget& target, const Payload& request, ScoreScratch* scratch,
                   std::string* response, features::AsyncReads* reads, features::ReadDone* done,
                   Status* status) const {
  ScoreScratch::Pending& p = scratch->pending;
  p.start = std::chrono::steady_clock::now();
  scratch->rows_scored = 0;
  scratch->deadline = target.deadline;
  const model::ModelRepository& repo = Models(scratch);  // held by scratch until the next call
  auto picked = Pick(repo, target, request, scratch);
  if (!picked.ok()) {
    *status = picked.status();
    return false;
  }
  p.v = picked->first;
  p.path = target.path;
  p.model_end = {};
  if (const VersionMetrics* m = MetricsFor(*p.v);
      m != nullptr && target.received != std::chrono::steady_clock::time_point{}) {
    m->paths[static_cast<int>(p.path)].queue.Add(p.start - target.received);
  }
  p.payload = request;
  p.response = response;
  p.d = Decoded{};
  p.d.route = picked->second;
  p.d.received = target.received == std::chrono::steady_clock::time_point{} ? p.start
                                                                            : target.received;
  scratch->fell_back = false;
  if (Status s = Decode(*p.v, request, scratch, &p.d); !s.ok()) {
    *status = Failed(*p.v, p.path, std::move(s), p.start);
    return false;
  }
  scratch->rows_scored = p.d.n_rows;
  scratch->deadline = std::min(scratch->deadline, p.d.deadline);  // the body's own, if sooner
  const std::span<Decoded> one(&p.d, 1);
  if (PlanRead(*p.v, one, scratch)) {
    p.read_start = std::chrono::steady_clock::now();
    if (reads != nullptr) {
      reads->Read(scratch->lookup.requests, scratch->deadline, done);
      return true;
    }
    ApplyRead(*p.v, one, scratch, ReadNow(scratch), p.read_start);
  }
  *status = Finish(scratch);
  return false;
}

Status Scorer::Resume(ScoreScratch* scratch, Status read) const {
  ScoreScratch::Pending& p = scratch->pending;
  ApplyRead(*p.v, std::span<Decoded>(&p.d, 1), scratch, read, p.read_start);
  return Finish(scratch);
}

Status Scorer::Finish(ScoreScratch* scratch) const {
  ScoreScratch::Pending& p = scratch->pending;
  const ModelVersion& v = *p.v;
  const VersionMetrics* m = MetricsFor(v);
  if (Status s = PredictDecoded(v, m, p.path, &p.d, scratch); s.ok()) {
    WriteAnswer(v, p.d, p.payload, *scratch, p.response);
  } else if (s = AnswerFallback(v, p.path, p.payload, s, &p.d, scratch, p.response); !s.ok()) {
    return Failed(v, p.path, std::move(s), p.start);
  }
  if (m != nullptr) {
    const PathMetrics& pm = m->paths[static_cast<int>(p.path)];
    Count(pm, p.d);
    const auto now = std::chrono::steady_clock::now();
    LatencySink(pm.latency, pm.window.get()).Record(now - p.start);
    if (!scratch->fell_back && p.model_end != std::chrono::steady_clock::time_point{}) {
      pm.compute_input.Add(p.model_start - p.start);
      pm.compute_output.Add(now - p.model_end);
    }
  }
  MaybeLog(p.path, p.payload, *p.response, p.d);
  if (p.path != Path::kShadow && !scratch->fell_back) {
    // The snapshot Start took (held by the scratch).
    if (const model::ModelEntry* e = scratch->snapshot.repo->Find(v.name);
        !e->policy.shadow.empty()) {
      const int n_out = v.model->num_outputs();
      OfferShadow(v,
                  {.model = v.name, .codec = p.payload.codec,
                   .bodies = {std::string(p.payload.bytes)},
                   .header_sizes = {p.payload.header_size},
                   .rows = {{0, scratch->outputs.size() / n_out}}},
                  scratch->outputs);
    }
  }
  return Status::Ok();
}

Status Scorer::Failed(const ModelVersion& v, Path path, Status s,
                      std::chrono::steady_clock::time_point start) const {
  if (const VersionMetrics* m = MetricsFor(v)) {
    const PathMetrics& pm = m->paths[static_cast<int>(path)];
    pm.errors->Inc();
    pm.fail_ns.Inc(PathMetrics::Ns(std::chrono::steady_clock::now() - start));
  }
  return s;
}

Status Scorer::PredictDecoded(const ModelVersion& v, const VersionMetrics* m, Path path,
                              Decoded* d, ScoreScratch* scratch) const {
  // The request's own errors come before the store's or the deadline's.
  if (!d->status.ok() && !FallbackReason(d->status)) return d->status;
  RETURN_IF_ERROR(FinishRows(v, *d, scratch));
  RETURN_IF_ERROR(d->status);
  RETURN_IF_ERROR(CheckDeadline(scratch->deadline, "before the model ran"));
  return Predict(v, m, path, d->n_rows, scratch);
}

void Scorer::ScoreBatch(const ScoreTarget& target, std::span<const Payload> bodies,
                        ScoreScratch* scratch, std::vector<EventResult>* results,
                        std::span<const int64_t> read_at_us) const {
  for (EventResult& r : *results) r.latency = LatencySink();
  scratch->deadline = std::chrono::steady_clock::time_point::max();
  // One snapshot for the whole batch: every body is picked and scored in it.
  const model::ModelRepository& repo = Models(scratch);
  scratch->picked.assign(bodies.size(), nullptr);
  scratch->routes.assign(bodies.size(), {});
  for (size_t i = 0; i < bodies.size(); ++i) {
    auto picked = Pick(repo, target, bodies[i], scratch);
    if (!picked.ok()) {
      (*results)[i].status = picked.status();
      continue;
    }
    std::tie(scratch->picked[i], scratch->routes[i]) = *picked;
  }
  // One model call per version the bodies went to, in order of first use.
  for (size_t first = 0; first < bodies.size(); ++first) {
    const ModelVersion* v = scratch->picked[first];
    if (v == nullptr) continue;
    scratch->group.clear();
    for (size_t i = first; i < bodies.size(); ++i) {
      if (scratch->picked[i] != v) continue;
      scratch->group.push_back(static_cast<uint32_t>(i));
      if (i != first) scratch->picked[i] = nullptr;  // taken
    }
    scratch->picked[first] = nullptr;
    ScoreGroup(*v, target, bodies, read_at_us, scratch, results);
  }
}

void Scorer::ScoreGroup(const ModelVersion& v, const ScoreTarget& target,
                        std::span<const Payload> bodies,
                        std::span<const int64_t> read_at_us, ScoreScratch* scratch,
                        std::vector<EventResult>* results) const {
  const std::vector<uint32_t>& group = scratch->group;
  std::vector<Decoded>& decoded = scratch->decoded;
  decoded.assign(group.size(), Decoded{});
  size_t rows = 0;
  for (size_t g = 0; g < group.size(); ++g) {
    decoded[g].first_row = rows;
    decoded[g].route = scratch->routes[group[g]];
    if (!read_at_us.empty()) decoded[g].read_at_us = read_at_us[group[g]];
    decoded[g].status = Decode(v, bodies[group[g]], scratch, &decoded[g]);
    if (decoded[g].status.ok()) {
      rows += decoded[g].n_rows;
    } else {
      decoded[g].n_rows = 0;  // its partial rows are overwritten by the next body
    }
  }
  ReserveRows(v, rows, scratch);
  Enrich(v, decoded, scratch);
  for (Decoded& d : decoded) {
    // The request's own errors come before the store's (which may fall back).
    if (!d.status.ok() && !FallbackReason(d.status)) continue;
    if (Status s = FinishRows(v, d, scratch); !s.ok()) d.status = s;
  }
  const VersionMetrics* m = MetricsFor(v);
  const Status predicted = Predict(v, m, target.path, rows, scratch);
  for (size_t g = 0; g < group.size(); ++g) {
    EventResult& r = (*results)[group[g]];
    r.status = decoded[g].status.ok() ? predicted : decoded[g].status;
    if (!r.status.ok()) continue;
    WriteAnswer(v, decoded[g], bodies[group[g]], *scratch, &r.response);
    MaybeLog(target.path, bodies[group[g]], r.response, decoded[g]);
  }
  if (target.path != Path::kShadow && predicted.ok()) {
    // The batch's snapshot (ScoreBatch took it; no refresh mid-batch).
    const model::ModelEntry* e = scratch->snapshot.repo->Find(v.name);
    if (e != nullptr && !e->policy.shadow.empty()) {
      ShadowJob job{.model = v.name, .codec = bodies[group[0]].codec};
      for (size_t g = 0; g < group.size(); ++g) {
        job.bodies.emplace_back(bodies[group[g]].bytes);
        job.header_sizes.push_back(bodies[group[g]].header_size);
        job.rows.emplace_back(decoded[g].first_row,
                              (*results)[group[g]].status.ok() ? decoded[g].n_rows : 0);
      }
      OfferShadow(v, std::move(job), scratch->outputs);
    }
  }
  // Last: a fallback reuses the scratch buffers the answers above were made from.
  for (size_t g = 0; g < group.size(); ++g) {
    EventResult& r = (*results)[group[g]];
    if (!r.status.ok() && v.spec.fallback) {
      r.status = AnswerFallback(v, target.path, bodies[group[g]], r.status, &decoded[g], scratch,
                                &r.response);
      if (r.status.ok()) MaybeLog(target.path, bodies[group[g]], r.response, decoded[g]);
    }
  }
  if (m == nullptr) return;
  const PathMetrics& pm = m->paths[static_cast<int>(target.path)];
  for (size_t g = 0; g < group.size(); ++g) {
    EventResult& r = (*results)[group[g]];
    if (r.status.ok()) {
      Count(pm, decoded[g]);
      r.latency = LatencySink(pm.latency, pm.window.get());
    } else {
      pm.errors->Inc();
    }
  }
}

void Scorer::OfferShadow(const ModelVersion& v, ShadowJob job,
                         const std::vector<float>& outputs) const {
  job.answered_version = v.version;
  job.n_out = v.model->num_outputs();
  size_t rows = 0;
  for (const auto& [first, n] : job.rows) rows = std::max(rows, first + n);
  job.outputs.assign(outputs.begin(), outputs.begin() + rows * job.n_out);
  shadow_->Offer(std::move(job));
}

Status Scorer::Predict(const ModelVersion& v, const VersionMetrics* m, Path path, size_t n_rows,
                       ScoreScratch* scratch) const {
  const int n_out = v.model->num_outputs();
  scratch->outputs.resize(n_rows * n_out);
  const std::span<const float> rows(scratch->rows.data(), n_rows * v.schema.size());
  if (m == nullptr) return v.model->Predict(rows, n_rows, scratch->outputs);
  const auto t0 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(v.model->Predict(rows, n_rows, scratch->outputs));
  const auto t1 = std::chrono::steady_clock::now();
  const PathMetrics& pm = m->paths[static_cast<int>(path)];
  pm.model_latency->Observe(std::chrono::duration<double>(t1 - t0).count());
  scratch->pending.model_start = t0;
  scratch->pending.model_end = t1;
  const int64_t t1_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            t1.time_since_epoch()).count();
  if (t1_ns - m->last_call_ns.load(std::memory_order_relaxed) > 1'000'000) {
    m->last_call_ns.store(t1_ns, std::memory_order_relaxed);
  }
  pm.batch_rows->Observe(static_cast<double>(n_rows));
  if (const auto& drift = StateOf(v).drift) drift->Observe(rows, n_rows, scratch->outputs, n_out);
  return Status::Ok();
}

double Scorer::WorstPsi() const {
  double worst = -1;
  const auto repo = repository();
  for (const model::ModelEntry* e : repo->models()) {
    for (const auto& [number, v] : e->versions) {
      if (const auto& drift = StateOf(*v).drift) {
        for (const observability::DriftScore& s : drift->Psi()) worst = std::max(worst, s.psi);
      }
    }
  }
  return worst;
}

void Scorer::WriteDrift(JsonWriter& w) const {
  w.BeginArray();
  const auto repo = repository();
  for (const model::ModelEntry* e : repo->models()) {
    for (const auto& [number, v] : e->versions) {
      const auto& drift = StateOf(*v).drift;
      if (!drift) continue;
      for (const observability::DriftScore& s : drift->Psi()) {
        w.BeginObject().Key("model").String(e->name).Key("version").Int(number);
        w.Key("series").String(s.series).Key("psi").Double(s.psi).EndObject();
      }
    }
  }
  w.EndArray();
}

void Scorer::Count(const PathMetrics& m, const Decoded& d) {
  if (d.fallback_reason >= 0) {
    m.fallback->Inc();
    m.fallbacks[d.fallback_reason]->Inc();
  } else {
    (d.degraded ? m.degraded : m.ok)->Inc();
  }
  m.predictions->Inc(d.n_rows);
}

void LatencySink::Record(std::chrono::nanoseconds elapsed) const {
  if (histogram_ == nullptr) return;
  histogram_->Observe(std::chrono::duration<double>(elapsed).count());
  window_->Record(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
}

void Scorer::MaybeLog(Path path, const Payload& request, std::string_view response,
                      const Decoded& d) const {
  observability::PredictionLog* log = options_.prediction_log;
  if (log == nullptr || !log->ShouldSample()) return;
  std::string_view body = request.codec->LogText(request);
  while (!body.empty() && (body.back() == '\n' || body.back() == ' ' || body.back() == '\r')) {
    body.remove_suffix(1);
  }
  log->Write(std::string(PathName(path)), body, request.codec->LogAnswer(response, d));
}

void Scorer::WriteStats(JsonWriter& w) const {
  static constexpr std::pair<const char*, int> kWindows[] = {{"10s", 10}, {"1m", 60},
                                                             {"5m", 300}};
  w.BeginArray();
  const auto repo = repository();
  for (const model::ModelEntry* e : repo->models()) {
    for (const auto& [number, v] : e->versions) {
      const VersionMetrics& m = *StateOf(*v).metrics;
      for (int path = 0; path < kPaths; ++path) {
        w.BeginObject().Key("model").String(e->name).Key("version").Int(number);
        w.Key("path").String(PathName(static_cast<Path>(path)));
        for (const auto& [name, seconds] : kWindows) {
          const observability::WindowSummary s = m.paths[path].window->Summarize(seconds);
          w.Key(name).BeginObject().Key("count").Uint(s.count);
          w.Key("rate_per_s").Double(s.rate_per_s).Key("p50_ms").Double(s.p50_us / 1000);
          w.Key("p95_ms").Double(s.p95_us / 1000).Key("p99_ms").Double(s.p99_us / 1000);
          w.Key("max_ms").Double(s.max_us / 1000).EndObject();
        }
        w.EndObject();
      }
    }
  }
  w.EndArray();
}

namespace {

VersionTotals TotalsOf(std::string model, int64_t version, const auto& m) {
  VersionTotals t;
  t.model = std::move(model);
  t.version = version;
  auto seconds_to_ns = [](double s) { return static_cast<uint64_t>(s * 1e9); };
  for (const auto& pm : m.paths) {
    t.rows += pm.predictions->value();
    t.model_calls += pm.model_latency->count();
    t.success.count += pm.latency->count();
    t.success.ns += seconds_to_ns(pm.latency->sum());
    t.fail.count += pm.errors->value();
    t.fail.ns += pm.fail_ns.value();
    t.compute_infer.count += pm.model_latency->count();
    t.compute_infer.ns += seconds_to_ns(pm.model_latency->sum());
    auto add = [](TimedCount& to, TimedCount x) { to.count += x.count, to.ns += x.ns; };
    add(t.queue, pm.queue.Read());
    add(t.compute_input, pm.compute_input.Read());
    add(t.compute_output, pm.compute_output.Read());
  }
  if (const int64_t last = m.last_call_ns.load(std::memory_order_relaxed); last != 0) {
    const auto ago = std::chrono::steady_clock::now().time_since_epoch() -
                     std::chrono::nanoseconds(last);
    t.last_inference = std::chrono::system_clock::now() -
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(ago);
  }
  return t;
}

}  // namespace

Result<std::vector<VersionTotals>> Scorer::Totals(std::string_view model,
                                                  std::optional<int64_t> version) const {
  const auto repo = repository();
  std::vector<VersionTotals> out;
  auto add_model = [&](const model::ModelEntry& e) {
    for (const auto& [number, v] : e.versions) {
      if (!version || *version == number) {
        out.push_back(TotalsOf(e.name, number, *StateOf(*v).metrics));
      }
    }
  };
  if (model.empty()) {
    for (const model::ModelEntry* e : repo->models()) add_model(*e);
    return out;
  }
  const model::ModelEntry* e = repo->Find(model);
  if (e == nullptr) return NotFound("unknown model '" + std::string(model) + "'", "unknown_model");
  if (version && e->Get(version) == nullptr) return e->NoSuchVersion(std::to_string(*version));
  add_model(*e);
  return out;
}

Status Scorer::Decode(const ModelVersion& v, const Payload& request, ScoreScratch* scratch,
                      Decoded* out) const {
  const schema::RowDecoder decoder = DecoderFor(v, *out);
  const Enrichment* e = EnrichmentFor(v);
  RowSink rows(v, decoder,
               e != nullptr ? std::span<const schema::KeySpec>(e->keys)
                            : std::span<const schema::KeySpec>(),
               static_cast<size_t>(options_.max_batch_size), out->first_row, *scratch);
  return request.codec->Decode(request, rows, out);
}

void RowSink::Resize(size_t n) {
  const size_t rows = first_row_ + n;
  const size_t nf = version.schema.size(), nk = keys.size();
  scratch.rows.resize(rows * nf);
  scratch.cells.resize(rows * nf);
  scratch.keys.resize(rows * nk);
}

RowSink::Row RowSink::At(size_t i) {
  const size_t row = first_row_ + i;
  const size_t nf = version.schema.size(), nk = keys.size();
  return Row{std::span<float>(scratch.rows.data() + row * nf, nf),
             std::span<Cell>(scratch.cells.data() + row * nf, nf),
             std::span<std::string>(scratch.keys.data() + row * nk, nk)};
}

void Scorer::ReserveRows(const ModelVersion& v, size_t n, ScoreScratch* scratch) const {
  const Enrichment* e = EnrichmentFor(v);
  scratch->rows.resize(n * v.schema.size());
  scratch->cells.resize(n * v.schema.size());
  scratch->keys.resize(n * (e != nullptr ? e->keys.size() : 0));
}

namespace {
int InstanceOf(bool batch, bool flat, size_t row) {
  return batch ? static_cast<int>(row) : flat ? schema::kFlatRow : -1;
}
}  // namespace

bool Scorer::NeedsLookup(const ModelVersion& v, const Enrichment& e, size_t row,
                         const ScoreScratch& scratch) const {
  const Cell* cells = scratch.cells.data() + row * v.schema.size();
  for (int col : e.columns) {
    if (cells[col] == Cell::kUnset) return true;
  }
  return false;
}

// Fills the inputs the bodies left unset from the online store, one read for
// all their rows. Leaves unset whatever the store cannot give (FinishRows then
// applies defaults) and records why in scratch->statuses.
void Scorer::Enrich(const ModelVersion& v, std::span<Decoded> bodies,
                    ScoreScratch* scratch) const {
  if (!PlanRead(v, bodies, scratch)) return;
  const auto t0 = std::chrono::steady_clock::now();
  ApplyRead(v, bodies, scratch, ReadNow(scratch), t0);
}

bool Scorer::PlanRead(const ModelVersion& v, std::span<Decoded> bodies,
                      ScoreScratch* scratch) const {
  const Enrichment* e = EnrichmentFor(v);
  if (e == nullptr) return false;
  const size_t n_features = v.schema.size(), n_keys = e->keys.size(), n_refs = e->columns.size();
  const size_t n_rows = scratch->cells.size() / n_features;
  scratch->statuses.assign(n_rows * n_refs, features::FeatureStatus::kPresent);
  bool any = false;
  for (Decoded& d : bodies) {
    for (size_t i = 0; d.status.ok() && i < d.n_rows; ++i) {
      const size_t row = d.first_row + i;
      if (!NeedsLookup(v, *e, row, *scratch)) continue;
      for (size_t k = 0; k < n_keys && d.status.ok(); ++k) {
        if (!scratch->keys[row * n_keys + k].empty()) continue;
        d.status = InvalidArgument(
            "entity key '" + e->keys[k].name +
                "' is needed to look up the model's stored features",
            "missing_entity_key",
            schema::FieldPath(InstanceOf(d.batch, d.flat, i), e->keys[k].name));
      }
      any = any || d.status.ok();
    }
  }
  if (!any) return false;
  if (Status late = CheckDeadline(scratch->deadline, "before its stored features were read");
      !late.ok()) {
    for (Decoded& d : bodies) d.status = late;
    return false;
  }
  e->reader->Plan(n_rows, scratch->keys, &scratch->lookup);
  return true;
}

Status Scorer::ReadNow(ScoreScratch* scratch) const {
  if (scratch->store == nullptr) scratch->store = store_->online().NewSession();
  scratch->store->SetDeadline(scratch->deadline);
  return scratch->store->Read(scratch->lookup.requests);
}

void Scorer::ApplyRead(const ModelVersion& v, std::span<Decoded> bodies, ScoreScratch* scratch,
                       const Status& read, std::chrono::steady_clock::time_point started) const {
  const Enrichment* e = EnrichmentFor(v);
  const size_t n_features = v.schema.size();
  const size_t n_rows = scratch->cells.size() / n_features;
  store_latency_->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (!read.ok()) {
    store_reads_failed_->Inc();
    if (Status late = CheckDeadline(scratch->deadline, "while its stored features were read");
        !late.ok()) {
      for (Decoded& d : bodies) d.status = late;
      return;
    }
    for (Decoded& d : bodies) {
      if (!d.status.ok()) continue;
      d.degraded = true;
      for (size_t row = d.first_row; row < d.first_row + d.n_rows && d.status.ok(); ++row) {
        for (int col : e->columns) {
          if (scratch->cells[row * n_features + col] != Cell::kUnset ||
              v.schema.feature(col).default_value) {
            continue;
          }
          d.status = Status(StatusCode::kUnavailable,
                            "the feature store failed and input '" + v.schema.feature(col).name +
                                "' has no default: " + read.message(),
                            "feature_store_unavailable");
          break;
        }
      }
    }
    return;
  }
  e->reader->Decode(n_rows, &scratch->lookup);
  store_reads_ok_->Inc();
  const int64_t now_us = store_->clock().NowMicros();
  for (const Decoded& d : bodies) {
    if (!d.status.ok()) continue;
    const int64_t now = d.read_at_us != 0 ? d.read_at_us : now_us;
    for (size_t row = d.first_row; row < d.first_row + d.n_rows; ++row) {
      FillStored(v, *e, row, now, scratch);
    }
  }
}

// Fills one row's unset inputs from the read (Enrich's last step).
void Scorer::FillStored(const ModelVersion& v, const Enrichment& e, size_t row, int64_t now,
                        ScoreScratch* scratch) const {
  const size_t n_features = v.schema.size(), n_refs = e.columns.size();
  for (size_t ref = 0; ref < n_refs; ++ref) {
    const size_t at = row * n_features + e.columns[ref];
    if (scratch->cells[at] != Cell::kUnset) continue;
    const features::OnlineReader::Cell c = e.reader->Get(scratch->lookup, row, ref, now);
    store_values_[static_cast<int>(c.status)]->Inc();
    if (c.status == features::FeatureStatus::kPresent) {
      auto value = features::DecodeNumeric(e.types[ref], **c.value);
      if (value.ok()) {
        scratch->rows[at] = static_cast<float>(*value);
        scratch->cells[at] = Cell::kStored;
        continue;
      }
    }
    scratch->statuses[row * n_refs + ref] = c.status == features::FeatureStatus::kPresent
                                                ? features::FeatureStatus::kNullValue
                                                : c.status;
  }
}

Status Scorer::FinishRows(const ModelVersion& v, const Decoded& d, ScoreScratch* scratch) const {
  const size_t n = v.schema.size();
  const schema::RowDecoder decoder = DecoderFor(v, d);
  for (size_t i = 0; i < d.n_rows; ++i) {
    const size_t row = d.first_row + i;
    RETURN_IF_ERROR(decoder.Finish(InstanceOf(d.batch, d.flat, i),
                                   std::span<float>(scratch->rows.data() + row * n, n),
                                   std::span<Cell>(scratch->cells.data() + row * n, n)));
  }
  return Status::Ok();
}

void Scorer::WriteAnswer(const ModelVersion& v, Decoded& d, const Payload& request,
                         const ScoreScratch& scratch, std::string* response,
                         int64_t fallback_from) const {
  // A fallback version's stored inputs were not read.
  const Enrichment* e = fallback_from != 0 ? nullptr : EnrichmentFor(v);
  request.codec->WriteAnswer(v, d, scratch, e != nullptr ? &e->columns : nullptr, fallback_from,
                             response);
}

}  // namespace rtml::pipeline
