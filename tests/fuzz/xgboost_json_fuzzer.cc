// The XGBoost JSON model loader, then compiling what it accepted into the
// native evaluator and scoring a row of NaNs and a row of zeros with it.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "model/tree_ensemble.h"
#include "model/xgboost_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto def = rtml::model::ParseXgboostJson(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!def.ok()) return 0;
  auto model = rtml::model::TreeEnsemble::Create(std::move(def).value());
  if (!model.ok()) return 0;
  const auto& m = **model;
  if (m.num_features() > 4096 || m.num_outputs() > 64) return 0;
  std::vector<float> rows(2 * static_cast<size_t>(m.num_features()), 0.0f);
  for (int i = 0; i < m.num_features(); ++i) rows[i] = std::nanf("");
  std::vector<float> out(2 * static_cast<size_t>(m.num_outputs()));
  (void)m.Predict(rows, 2, out);
  return 0;
}
