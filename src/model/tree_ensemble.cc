#include "model/tree_ensemble.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace rtml::model {
namespace {

std::string Where(size_t tree, int node) {
  return "tree " + std::to_string(tree) + " node " + std::to_string(node);
}

// Checks that the tree is well formed and returns its depth (split levels).
Result<int> TreeDepth(const TreeNodes& t, size_t tree_index, int num_features) {
  const int n = static_cast<int>(t.left.size());
  if (n == 0) return FailedPrecondition(Where(tree_index, 0) + ": tree has no nodes");
  if (t.right.size() != t.left.size() || t.feature.size() != t.left.size() ||
      t.value.size() != t.left.size() || t.default_left.size() != t.left.size()) {
    return FailedPrecondition("tree " + std::to_string(tree_index) +
                              ": node arrays differ in length");
  }
  // Iterative DFS; visiting more nodes than exist means a cycle or sharing.
  std::vector<std::pair<int, int>> stack{{0, 0}};
  int depth = 0, visited = 0;
  while (!stack.empty()) {
    auto [i, d] = stack.back();
    stack.pop_back();
    if (++visited > n) return FailedPrecondition(Where(tree_index, i) + ": cycle in tree");
    if (t.left[i] == -1) {
      depth = std::max(depth, d);
      continue;
    }
    for (int c : {t.left[i], t.right[i]}) {
      if (c <= 0 || c >= n) {
        return FailedPrecondition(Where(tree_index, i) + ": child index " +
                                  std::to_string(c) + " out of range");
      }
      stack.push_back({c, d + 1});
    }
    if (t.feature[i] < 0 || t.feature[i] >= num_features) {
      return FailedPrecondition(Where(tree_index, i) + ": split feature " +
                                std::to_string(t.feature[i]) + " outside the model's " +
                                std::to_string(num_features) + " features");
    }
  }
  return depth;
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

bool IsSupportedObjective(const std::string& objective) {
  return objective == "binary:logistic" || objective == "reg:logistic" ||
         objective == "reg:squarederror" || objective == "multi:softprob";
}

float BaseScoreToMargin(const std::string& objective, float base_score) {
  if (objective == "binary:logistic" || objective == "reg:logistic") {
    return -std::log(1.0f / base_score - 1.0f);
  }
  return base_score;
}

Result<std::unique_ptr<TreeEnsemble>> TreeEnsemble::Create(TreeEnsembleDef def,
                                                           int max_padded_depth) {
  if (!IsSupportedObjective(def.objective)) {
    return FailedPrecondition("objective '" + def.objective +
                              "' is not supported by the native backend (supported: "
                              "binary:logistic, reg:logistic, reg:squarederror, "
                              "multi:softprob); use backend: xgboost");
  }
  if (def.num_features <= 0) return FailedPrecondition("model has no features");
  if (def.num_groups <= 0 || def.base_margin.size() != static_cast<size_t>(def.num_groups)) {
    return FailedPrecondition("base margin has " + std::to_string(def.base_margin.size()) +
                              " values for " + std::to_string(def.num_groups) + " outputs");
  }
  auto m = std::unique_ptr<TreeEnsemble>(new TreeEnsemble());
  for (size_t t = 0; t < def.trees.size(); ++t) {
    ASSIGN_OR_RETURN(int d, TreeDepth(def.trees[t], t, def.num_features));
    m->depth_ = std::max(m->depth_, d);
    if (def.trees[t].group < 0 || def.trees[t].group >= def.num_groups) {
      return FailedPrecondition("tree " + std::to_string(t) + ": output group " +
                                std::to_string(def.trees[t].group) + " out of range");
    }
    m->group_.push_back(def.trees[t].group);
  }
  m->objective_ = def.objective;
  m->feature_names_ = def.feature_names;
  m->transform_ = def.objective == "multi:softprob" ? Transform::kSoftmax
                  : (def.objective == "reg:squarederror") ? Transform::kIdentity
                                                          : Transform::kSigmoid;
  m->num_features_ = def.num_features;
  m->num_groups_ = def.num_groups;
  m->num_trees_ = static_cast<int>(def.trees.size());
  m->base_margin_ = def.base_margin;
  m->padded_ = m->depth_ <= std::min(max_padded_depth, int{kMaxPaddedDepth});
  if (m->padded_) {
    m->CompilePadded(def);
  } else {
    m->CompileNodes(def);
  }
  return m;
}

void TreeEnsemble::CompilePadded(const TreeEnsembleDef& def) {
  internal_ = (1u << depth_) - 1;
  leaves_ = 1u << depth_;
  const size_t n_trees = def.trees.size();
  p_feature_.assign(n_trees * internal_, 0);
  p_threshold_.assign(n_trees * internal_, std::numeric_limits<float>::quiet_NaN());
  p_default_right_.assign(n_trees * internal_, 0);
  p_leaf_.assign(n_trees * leaves_, 0.0f);
  for (size_t t = 0; t < n_trees; ++t) {
    const TreeNodes& tree = def.trees[t];
    // (node in the source tree, position in the complete tree, level)
    std::vector<std::tuple<int, uint32_t, int>> stack{{0, 0u, 0}};
    while (!stack.empty()) {
      auto [node, pos, level] = stack.back();
      stack.pop_back();
      if (level == depth_) {
        p_leaf_[t * leaves_ + (pos - internal_)] = tree.value[node] * tree.weight;
        continue;
      }
      if (tree.left[node] == -1) {  // leaf above full depth: pad, always left
        stack.push_back({node, 2 * pos + 1, level + 1});
        continue;
      }
      const size_t at = t * internal_ + pos;
      p_feature_[at] = static_cast<uint32_t>(tree.feature[node]);
      p_threshold_[at] = tree.value[node];
      p_default_right_[at] = tree.default_left[node] ? 0 : 1;
      stack.push_back({tree.left[node], 2 * pos + 1, level + 1});
      stack.push_back({tree.right[node], 2 * pos + 2, level + 1});
    }
  }
}

void TreeEnsemble::CompileNodes(const TreeEnsembleDef& def) {
  for (const TreeNodes& tree : def.trees) {
    const int32_t offset = static_cast<int32_t>(n_left_.size());
    n_root_.push_back(offset);
    for (size_t i = 0; i < tree.left.size(); ++i) {
      const bool leaf = tree.left[i] == -1;
      n_left_.push_back(leaf ? -1 : tree.left[i] + offset);
      n_right_.push_back(leaf ? -1 : tree.right[i] + offset);
      n_feature_.push_back(leaf ? 0 : tree.feature[i]);
      n_value_.push_back(leaf ? tree.value[i] * tree.weight : tree.value[i]);
      n_default_left_.push_back(tree.default_left[i]);
    }
  }
}

template <bool kHasMissing>
void TreeEnsemble::PaddedRow(const float* x, float* sums) const {
  const size_t n_trees = group_.size();
  size_t t = 0;
  auto step = [&](size_t tree, uint32_t i) -> uint32_t {
    const size_t at = tree * internal_ + i;
    const float v = x[p_feature_[at]];
    uint32_t right;
    if constexpr (kHasMissing) {
      // Branch-free: NaN compares false, so it goes right only by default.
      right = static_cast<uint32_t>(v >= p_threshold_[at]) |
              (static_cast<uint32_t>(v != v) & p_default_right_[at]);
    } else {
      right = v >= p_threshold_[at];
    }
    return 2 * i + 1 + right;
  };
  for (; t + kTreeBlock <= n_trees; t += kTreeBlock) {
    uint32_t idx[kTreeBlock] = {};
    for (int d = 0; d < depth_; ++d) {
      for (int k = 0; k < kTreeBlock; ++k) idx[k] = step(t + k, idx[k]);
    }
    for (int k = 0; k < kTreeBlock; ++k) {
      sums[group_[t + k]] += p_leaf_[(t + k) * leaves_ + (idx[k] - internal_)];
    }
  }
  for (; t < n_trees; ++t) {
    uint32_t i = 0;
    for (int d = 0; d < depth_; ++d) i = step(t, i);
    sums[group_[t]] += p_leaf_[t * leaves_ + (i - internal_)];
  }
}

void TreeEnsemble::NodeWalkRow(const float* x, float* sums) const {
  for (size_t t = 0; t < n_root_.size(); ++t) {
    int32_t n = n_root_[t];
    while (n_left_[n] != -1) {
      const float v = x[n_feature_[n]];
      const bool left = std::isnan(v) ? n_default_left_[n] != 0 : v < n_value_[n];
      n = left ? n_left_[n] : n_right_[n];
    }
    sums[group_[t]] += n_value_[n];
  }
}

void TreeEnsemble::ApplyTransform(float* sums) const {
  switch (transform_) {
    case Transform::kIdentity:
      return;
    case Transform::kSigmoid:
      for (int g = 0; g < num_groups_; ++g) sums[g] = Sigmoid(sums[g]);
      return;
    case Transform::kSoftmax: {
      // As XGBoost's common::Softmax: subtract the max, sum in double.
      float wmax = sums[0];
      for (int g = 1; g < num_groups_; ++g) wmax = std::max(wmax, sums[g]);
      double wsum = 0.0;
      for (int g = 0; g < num_groups_; ++g) {
        sums[g] = std::exp(sums[g] - wmax);
        wsum += sums[g];
      }
      for (int g = 0; g < num_groups_; ++g) sums[g] /= static_cast<float>(wsum);
      return;
    }
  }
}

Status TreeEnsemble::Predict(std::span<const float> rows, size_t n_rows,
                             std::span<float> out) const {
  assert(rows.size() == n_rows * num_features_);
  assert(out.size() == n_rows * num_groups_);
  for (size_t r = 0; r < n_rows; ++r) {
    const float* x = rows.data() + r * num_features_;
    float* sums = out.data() + r * num_groups_;
    std::copy(base_margin_.begin(), base_margin_.end(), sums);
    if (!padded_) {
      NodeWalkRow(x, sums);
    } else if (std::none_of(x, x + num_features_, [](float v) { return std::isnan(v); })) {
      PaddedRow<false>(x, sums);
    } else {
      PaddedRow<true>(x, sums);
    }
    ApplyTransform(sums);
  }
  return Status::Ok();
}

namespace {
template <typename T>
size_t Bytes(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}
}  // namespace

size_t TreeEnsemble::size_bytes() const {
  size_t n = sizeof(*this) + Bytes(base_margin_) + Bytes(group_) + Bytes(p_feature_) +
             Bytes(p_threshold_) + Bytes(p_default_right_) + Bytes(p_leaf_) + Bytes(n_root_) +
             Bytes(n_left_) + Bytes(n_right_) + Bytes(n_feature_) + Bytes(n_value_) +
             Bytes(n_default_left_) + Bytes(feature_names_);
  for (const std::string& f : feature_names_) n += f.capacity();
  return n;
}

}  // namespace rtml::model
