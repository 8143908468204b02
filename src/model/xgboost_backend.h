// XgboostModel: the `xgboost` backend, scoring through libxgboost's C API
// (Debian's libxgboost 1.7). It is the reference the native evaluator is
// checked against and the fallback for models the native one refuses
// (categorical splits, other objectives, gblinear).
// Thread-safety: libxgboost's in-place prediction is safe to call from several
// threads (each gets its own thread-local output buffer); Predict() is const.
// Each call runs with nthread=1 (more threads than cores make libxgboost's
// OpenMP workers spin: ../shared/notes/build-and-speed.md).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "model/model.h"

namespace rtml::model {

class XgboostModel final : public Model {
 public:
  // Loads a model file in any format libxgboost 1.7 reads (JSON, UBJSON, binary).
  static Result<std::unique_ptr<XgboostModel>> Load(const std::string& path);
  ~XgboostModel() override;

  int num_features() const override { return num_features_; }
  int num_outputs() const override { return num_outputs_; }
  const std::string& objective() const override { return objective_; }
  std::string_view backend() const override { return "xgboost"; }
  const std::vector<std::string>& feature_names() const override { return feature_names_; }
  Status Predict(std::span<const float> rows, size_t n_rows,
                 std::span<float> out) const override;
  size_t size_bytes() const override { return size_bytes_; }

 private:
  XgboostModel() = default;
  size_t size_bytes_ = 0;

  void* booster_ = nullptr;  // BoosterHandle
  std::string objective_;
  std::vector<std::string> feature_names_;
  int num_features_ = 0;
  int num_outputs_ = 1;
};

}  // namespace rtml::model
