#include "model/xgboost_backend.h"

#include <simdjson.h>
#include <xgboost/c_api.h>

#include <cmath>
#include <cstdio>
#include <vector>

namespace rtml::model {
namespace {

Status XgbError(std::string_view what) {
  return Internal("libxgboost: " + std::string(what) + ": " + XGBGetLastError());
}

constexpr char kPredictConfig[] =
    R"({"type":0,"training":false,"cache_id":0,"iteration_begin":0,"iteration_end":0,)"
    R"("strict_shape":false,"missing":NaN})";

}  // namespace

Result<std::unique_ptr<XgboostModel>> XgboostModel::Load(const std::string& path) {
  auto m = std::unique_ptr<XgboostModel>(new XgboostModel());
  if (XGBoosterCreate(nullptr, 0, &m->booster_) != 0) return XgbError("create");
  if (XGBoosterLoadModel(m->booster_, path.c_str()) != 0) {
    return FailedPrecondition("libxgboost cannot load '" + path + "': " + XGBGetLastError());
  }
  if (XGBoosterSetParam(m->booster_, "nthread", "1") != 0) return XgbError("set nthread");
  bst_ulong raw_len = 0;
  const char* raw = nullptr;
  if (XGBoosterSaveModelToBuffer(m->booster_, R"({"format": "ubj"})", &raw_len, &raw) == 0) {
    m->size_bytes_ = static_cast<size_t>(raw_len);  // an estimate of what the booster holds
  }
  bst_ulong nf = 0;
  if (XGBoosterGetNumFeature(m->booster_, &nf) != 0) return XgbError("num_feature");
  m->num_features_ = static_cast<int>(nf);
  bst_ulong n_names = 0;
  const char** names = nullptr;
  if (XGBoosterGetStrFeatureInfo(m->booster_, "feature_name", &n_names, &names) == 0) {
    for (bst_ulong i = 0; i < n_names; ++i) m->feature_names_.emplace_back(names[i]);
  }
  bst_ulong len = 0;
  const char* config = nullptr;
  if (XGBoosterSaveJsonConfig(m->booster_, &len, &config) != 0) return XgbError("config");
  simdjson::dom::parser parser;
  std::string_view objective;
  auto doc = parser.parse(config, len);
  if (doc["learner"]["objective"]["name"].get(objective)) {
    return Internal("libxgboost config has no learner.objective.name");
  }
  m->objective_ = std::string(objective);
  // Outputs per row: predict one all-missing row.
  std::vector<float> row(m->num_features_, NAN), out(64);
  if (m->num_features_ > 0) {
    char iface[256];
    std::snprintf(iface, sizeof(iface),
                  R"({"data":[%llu,true],"shape":[1,%d],"typestr":"<f4","version":3})",
                  static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(row.data())),
                  m->num_features_);
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    if (XGBoosterPredictFromDense(m->booster_, iface, kPredictConfig, nullptr, &shape, &dim,
                                  &result) != 0) {
      return XgbError("probe prediction");
    }
    m->num_outputs_ = dim >= 2 ? static_cast<int>(shape[1]) : 1;
  }
  return m;
}

XgboostModel::~XgboostModel() {
  if (booster_ != nullptr) XGBoosterFree(booster_);
}

Status XgboostModel::Predict(std::span<const float> rows, size_t n_rows,
                             std::span<float> out) const {
  if (n_rows == 0) return Status::Ok();
  char iface[256];
  std::snprintf(iface, sizeof(iface),
                R"({"data":[%llu,true],"shape":[%zu,%d],"typestr":"<f4","version":3})",
                static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(rows.data())),
                n_rows, num_features_);
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  if (XGBoosterPredictFromDense(booster_, iface, kPredictConfig, nullptr, &shape, &dim,
                                &result) != 0) {
    return XgbError("predict");
  }
  std::copy(result, result + n_rows * num_outputs_, out.begin());
  return Status::Ok();
}

}  // namespace rtml::model
