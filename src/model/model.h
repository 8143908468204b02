// Model is what every backend implements: score a batch of dense rows.
//
// Rows are row-major float32, num_features() per row; NaN means missing (each
// backend applies its own missing-value rule, for trees the node's default
// direction). Outputs are num_outputs() floats per row, already transformed by
// the objective (probabilities for logistic objectives, class probabilities for
// softprob, raw values for regression).
// Thread-safety: Predict() is const and may be called from any number of
// threads at once. Models are immutable once built and shared as
// std::shared_ptr<const Model>.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rtml::model {

class Model {
 public:
  virtual ~Model() = default;

  virtual int num_features() const = 0;
  virtual int num_outputs() const = 0;
  // XGBoost objective name, e.g. "binary:logistic".
  virtual const std::string& objective() const = 0;
  virtual std::string_view backend() const = 0;
  // Feature names stored in the model file, in column order; empty if none.
  virtual const std::vector<std::string>& feature_names() const = 0;
  // Memory the loaded model holds, in bytes (exact for the native evaluator's
  // arrays; for libxgboost, the size of its serialized model).
  virtual size_t size_bytes() const = 0;

  // REQUIRES: rows.size() == n_rows * num_features(),
  //           out.size() == n_rows * num_outputs().
  virtual Status Predict(std::span<const float> rows, size_t n_rows,
                         std::span<float> out) const = 0;
};

}  // namespace rtml::model
