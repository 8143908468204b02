// model_eval: rtml's native tree evaluator against libxgboost's own predictor
// (C API, one thread) on the same model and rows, in one run.
//
//   build/bench/model_eval [MODEL.json] [--rows N] [--reps R]
//
// Reports the median over R repetitions of: single-row latency (one Predict
// call per row) and batch throughput (1024-row Predict calls), for rows with
// and without missing values, and checks that both backends agree.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/tree_ensemble.h"
#include "model/xgboost_backend.h"
#include "model/xgboost_json.h"

using rtml::model::Model;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds per row over `reps` passes of `rows` in calls of `batch` rows.
double SecondsPerRow(const Model& m, const std::vector<float>& rows, size_t batch, int reps) {
  const size_t nf = m.num_features();
  const size_t n = rows.size() / nf;
  std::vector<float> out(batch * m.num_outputs());
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i + batch <= n; i += batch) {
      (void)m.Predict(std::span<const float>(rows.data() + i * nf, batch * nf), batch, out);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    samples.push_back(s / static_cast<double>(n / batch * batch));
  }
  return Median(samples);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = "examples/fraud/models/fraud/1/model.json";
  size_t n_rows = 16384;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc) n_rows = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::stoi(argv[++i]);
    else path = argv[i];
  }
  auto def = rtml::model::LoadXgboostJsonFile(path);
  if (!def.ok()) return std::fprintf(stderr, "%s\n", def.status().message().c_str()), 1;
  auto native = rtml::model::TreeEnsemble::Create(std::move(def).value());
  auto xgb = rtml::model::XgboostModel::Load(path);
  if (!native.ok() || !xgb.ok()) return std::fprintf(stderr, "cannot load %s\n", path.c_str()), 1;
  const size_t nf = (*native)->num_features();
  std::printf("model %s: %d trees, depth %d, %zu features; %zu rows, median of %d\n",
              path.c_str(), (*native)->num_trees(), (*native)->depth(), nf, n_rows, reps);

  std::mt19937 rng(42);
  std::lognormal_distribution<float> value(2.0f, 1.5f);
  std::uniform_real_distribution<float> unit(0, 1);
  std::vector<float> dense(n_rows * nf), sparse(n_rows * nf);
  for (size_t i = 0; i < dense.size(); ++i) {
    dense[i] = unit(rng) < 0.3f ? std::round(unit(rng) * 3) : value(rng) * unit(rng);
    sparse[i] = unit(rng) < 0.15f ? NAN : dense[i];
  }
  std::vector<float> a(n_rows), b(n_rows);
  (void)(*native)->Predict(sparse, n_rows, a);
  (void)(*xgb)->Predict(sparse, n_rows, b);
  float worst = 0;
  for (size_t i = 0; i < n_rows; ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  std::printf("max |native - xgboost| = %g\n\n", worst);

  std::printf("| rows | call | native | xgboost C API | speed-up |\n|---|---|---:|---:|---:|\n");
  for (const auto& [label, rows] : {std::pair{"no missing", &dense}, {"15% missing", &sparse}}) {
    for (size_t batch : {size_t{1}, size_t{1024}}) {
      const double n = SecondsPerRow(**native, *rows, batch, reps);
      const double x = SecondsPerRow(**xgb, *rows, batch, reps);
      if (batch == 1) {
        std::printf("| %s | 1 row | %.2f µs/row | %.2f µs/row | %.1fx |\n", label, n * 1e6,
                    x * 1e6, x / n);
      } else {
        std::printf("| %s | 1024 rows | %.0fk rows/s | %.0fk rows/s | %.1fx |\n", label,
                    1e-3 / n, 1e-3 / x, x / n);
      }
    }
  }
  return 0;
}
