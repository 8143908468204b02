// TreeEnsemble: rtml's native evaluator for gradient-boosted tree ensembles.
//
// Built once from a TreeEnsembleDef (as read from an XGBoost JSON model by
// xgboost_json.h) into flat arrays. Ensembles no deeper than kMaxPaddedDepth
// are laid out as padded complete trees and walked without branches
// (i = 2i + 1 + (x >= t)), several trees at a time per row, with a NaN-free
// kernel chosen per row when the row has no missing value; deeper ensembles
// use a plain node walk. Both follow XGBoost exactly: go left when
// x < threshold, NaN follows the node's default direction, leaf values summed
// in float in tree order onto the base margin, then the objective's transform.
// Thread-safety: immutable after Create(); Predict() may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model.h"

namespace rtml::model {

// One tree as XGBoost stores it: node i is a leaf when left[i] == -1, and then
// value[i] is its leaf value; otherwise value[i] is the split threshold.
struct TreeNodes {
  std::vector<int32_t> left;
  std::vector<int32_t> right;
  std::vector<int32_t> feature;
  std::vector<float> value;
  std::vector<uint8_t> default_left;
  int group = 0;        // output (class) this tree adds to
  float weight = 1.0f;  // DART tree weight; 1 for gbtree
};

struct TreeEnsembleDef {
  std::string objective;  // XGBoost objective name
  int num_features = 0;
  std::vector<std::string> feature_names;  // empty when the model has none
  int num_groups = 1;              // outputs per row (classes for softprob)
  std::vector<float> base_margin;  // per group, in margin space
  std::vector<TreeNodes> trees;
};

// The objectives the native evaluator implements; others are refused at load.
bool IsSupportedObjective(const std::string& objective);
// base_score as XGBoost stores it (probability space) -> margin, in float, as
// the objective's ProbToMargin does it.
float BaseScoreToMargin(const std::string& objective, float base_score);

class TreeEnsemble final : public Model {
 public:
  static constexpr int kMaxPaddedDepth = 8;
  static constexpr int kTreeBlock = 8;

  // Validates the definition (child indexes, features in range, acyclic) and
  // compiles it. Fails with a message naming the tree and node at fault.
  // Ensembles deeper than max_padded_depth use the node walk.
  static Result<std::unique_ptr<TreeEnsemble>> Create(
      TreeEnsembleDef def, int max_padded_depth = kMaxPaddedDepth);

  int num_features() const override { return num_features_; }
  int num_outputs() const override { return num_groups_; }
  const std::string& objective() const override { return objective_; }
  std::string_view backend() const override { return "native"; }
  const std::vector<std::string>& feature_names() const override { return feature_names_; }
  Status Predict(std::span<const float> rows, size_t n_rows,
                 std::span<float> out) const override;
  size_t size_bytes() const override;

  int num_trees() const { return num_trees_; }
  int depth() const { return depth_; }
  bool padded() const { return padded_; }

 private:
  enum class Transform { kIdentity, kSigmoid, kSoftmax };

  TreeEnsemble() = default;
  void CompilePadded(const TreeEnsembleDef& def);
  void CompileNodes(const TreeEnsembleDef& def);
  template <bool kHasMissing>
  void PaddedRow(const float* x, float* sums) const;
  void NodeWalkRow(const float* x, float* sums) const;
  void ApplyTransform(float* sums) const;

  std::string objective_;
  std::vector<std::string> feature_names_;
  Transform transform_ = Transform::kIdentity;
  int num_features_ = 0;
  int num_groups_ = 1;
  int num_trees_ = 0;
  int depth_ = 0;
  bool padded_ = false;
  std::vector<float> base_margin_;
  std::vector<int32_t> group_;  // per tree

  // Padded layout: tree t's internal node i at t * internal_ + i.
  uint32_t internal_ = 0;  // 2^depth - 1
  uint32_t leaves_ = 0;    // 2^depth
  std::vector<uint32_t> p_feature_;
  std::vector<float> p_threshold_;  // NaN for padding: always left
  std::vector<uint8_t> p_default_right_;
  std::vector<float> p_leaf_;

  // Node-walk layout: all trees' nodes concatenated; roots at n_root_.
  std::vector<int32_t> n_root_;
  std::vector<int32_t> n_left_, n_right_, n_feature_;
  std::vector<float> n_value_;
  std::vector<uint8_t> n_default_left_;
};

}  // namespace rtml::model
