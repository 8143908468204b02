#include "pipeline/shadow.h"

#include <algorithm>
#include <cmath>

#include "common/threads.h"
#include "observability/log.h"
#include "pipeline/scorer.h"

namespace rtml::pipeline {
namespace {

size_t ArgMax(const float* p, int n) { return std::max_element(p, p + n) - p; }

}  // namespace

ShadowRunner::ShadowRunner(const Scorer& scorer, observability::Registry* metrics)
    : scorer_(scorer), metrics_(metrics), thread_([this] { Run(); }) {}

ShadowRunner::~ShadowRunner() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ShadowRunner::Offer(ShadowJob job) {
  {
    std::lock_guard lock(mu_);
    if (jobs_.size() < kCapacity) {
      jobs_.push_back(std::move(job));
    } else {
      observability::Counter*& c = skipped_[job.model];
      if (c == nullptr) {
        c = metrics_->AddCounter("rtml_shadow_skipped_total",
                                 "Answers not shadow-scored because the shadow fell behind.",
                                 {{"model", job.model}});
      }
      c->Inc();
      return;
    }
  }
  cv_.notify_one();
}

void ShadowRunner::Drain() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return jobs_.empty() && !busy_; });
}

void ShadowRunner::Run() {
  LowerThisThreadPriority();  // a shadow never competes with what answers
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    ShadowJob job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_ = true;
    lock.unlock();
    Score(job);
    lock.lock();
    busy_ = false;
    if (jobs_.empty()) idle_cv_.notify_all();
  }
}

ShadowRunner::Agreement& ShadowRunner::AgreementFor(const Key& key) {
  std::lock_guard lock(mu_);
  std::unique_ptr<Agreement>& a = agreement_[key];
  if (a != nullptr) return *a;
  a = std::make_unique<Agreement>();
  const auto& [model, shadow, answered] = key;
  const observability::Labels labels{{"model", model},
                                     {"version", std::to_string(shadow)},
                                     {"against", std::to_string(answered)}};
  a->rows = metrics_->AddCounter("rtml_shadow_rows_total",
                                 "Rows a shadow version scored beside the answering version.",
                                 labels);
  a->differ = metrics_->AddCounter(
      "rtml_shadow_decisions_differ_total",
      "Shadow rows whose decision (probability >= threshold, or top class) differs.", labels);
  metrics_->AddGauge("rtml_shadow_abs_diff_sum",
                     "Sum over shadow rows of |shadow output - answering output| (divide by "
                     "rtml_shadow_rows_total for the mean).",
                     labels, [p = a.get()] { return p->abs_diff_sum.load(); });
  return *a;
}

// Scores the job's bodies with each shadow version the model has now and
// compares them, row by row, with what answered.
void ShadowRunner::Score(const ShadowJob& job) {
  static thread_local ScoreScratch scratch;  // this runner's thread only
  const model::ModelRepository& repo = scorer_.Models(&scratch);
  const model::ModelEntry* entry = repo.Find(job.model);
  if (entry == nullptr) return;
  std::vector<Payload> bodies;
  for (size_t b = 0; b < job.bodies.size(); ++b) {
    bodies.push_back({job.codec, job.bodies[b], job.header_sizes[b]});
  }
  std::vector<EventResult> results(bodies.size());
  for (int64_t s : entry->policy.shadow) {
    const model::ModelVersion* v = entry->Get(s);
    if (v == nullptr || s == job.answered_version || v->model->num_outputs() != job.n_out) {
      continue;
    }
    scorer_.ScoreBatch({.model = job.model, .version = s, .path = Path::kShadow}, bodies,
                       &scratch, &results);
    Agreement& a = AgreementFor({job.model, s, job.answered_version});
    a.decisions = v->spec.output != model::OutputKind::kRegression;
    const double threshold = entry->policy.decision_threshold;
    uint64_t rows = 0, differ = 0;
    double diff = 0;
    for (size_t b = 0; b < bodies.size(); ++b) {
      const auto [first, n] = job.rows[b];
      const DecodedBody& d = scratch.decoded[b];
      if (!results[b].status.ok() || n == 0 || d.n_rows != n) continue;
      for (size_t r = 0; r < n; ++r) {
        const float* x = job.outputs.data() + (first + r) * job.n_out;
        const float* y = scratch.outputs.data() + (d.first_row + r) * job.n_out;
        double row_diff = 0;
        for (int k = 0; k < job.n_out; ++k) row_diff += std::fabs(double(x[k]) - y[k]);
        diff += row_diff / job.n_out;
        if (v->spec.output == model::OutputKind::kClasses) {
          differ += ArgMax(x, job.n_out) != ArgMax(y, job.n_out);
        } else if (v->spec.output == model::OutputKind::kProbability) {
          differ += (x[0] >= threshold) != (y[0] >= threshold);
        }
        ++rows;
      }
    }
    a.rows->Inc(rows);
    a.differ->Inc(differ);
    a.rows_seen.fetch_add(rows, std::memory_order_relaxed);
    a.differ_seen.fetch_add(differ, std::memory_order_relaxed);
    a.abs_diff_sum.store(a.abs_diff_sum.load(std::memory_order_relaxed) + diff,
                         std::memory_order_relaxed);  // one writer: this thread
  }
}

void ShadowRunner::WriteStats(JsonWriter& w) const {
  std::lock_guard lock(mu_);
  w.BeginArray();
  for (const auto& [key, a] : agreement_) {
    const auto& [model, shadow, answered] = key;
    const uint64_t rows = a->rows_seen.load();
    w.BeginObject().Key("model").String(model).Key("version").Int(shadow);
    w.Key("against").Int(answered).Key("rows").Uint(rows);
    w.Key("mean_abs_diff").Double(rows ? a->abs_diff_sum.load() / rows : 0.0);
    w.Key("decision_disagreement");
    if (a->decisions) {
      w.Double(rows ? static_cast<double>(a->differ_seen.load()) / rows : 0.0);
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace rtml::pipeline
