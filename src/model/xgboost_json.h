// Reads XGBoost's JSON model format (as written by Booster.save_model("*.json"))
// into a TreeEnsembleDef, for XGBoost 1.x through 3.x: base_score as "5E-1"
// (1.x) or as a bracketed list "[5.2E-1]" / one value per class (2.x, 3.x),
// gbtree and dart boosters. Categorical splits, vector leaves and multi-target
// models are refused with a message saying so.
// Thread-safety: free functions, no shared state.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "model/tree_ensemble.h"

namespace rtml::model {

// Parses the JSON text of a model. Errors name the JSON path at fault.
Result<TreeEnsembleDef> ParseXgboostJson(std::string_view json);
// Reads and parses a model file. Errors name the file.
Result<TreeEnsembleDef> LoadXgboostJsonFile(const std::string& path);

// Parses XGBoost's base_score text: "5E-1" or "[a,b,...]".
Result<std::vector<float>> ParseBaseScore(std::string_view text);

}  // namespace rtml::model
