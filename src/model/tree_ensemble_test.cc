#include "model/tree_ensemble.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "model/xgboost_json.h"

namespace rtml::model {
namespace {

// One split on feature 0 at 1.0: left leaf -1, right leaf +2; missing goes
// the way default_left says.
TreeNodes Stump(bool default_left, int feature = 0) {
  TreeNodes t;
  t.left = {1, -1, -1};
  t.right = {2, -1, -1};
  t.feature = {feature, 0, 0};
  t.value = {1.0f, -1.0f, 2.0f};
  t.default_left = {static_cast<uint8_t>(default_left), 0, 0};
  return t;
}

TreeEnsembleDef Regression(std::vector<TreeNodes> trees, float base = 0.5f) {
  TreeEnsembleDef def;
  def.objective = "reg:squarederror";
  def.num_features = 2;
  def.base_margin = {base};
  def.trees = std::move(trees);
  return def;
}

float PredictOne(const TreeEnsemble& m, std::vector<float> row) {
  float out = 0;
  EXPECT_TRUE(m.Predict(row, 1, std::span<float>(&out, 1)).ok());
  return out;
}

TEST(TreeEnsembleTest, GoesLeftBelowThresholdAndRightAtIt) {
  auto m = TreeEnsemble::Create(Regression({Stump(true)}));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FLOAT_EQ(PredictOne(**m, {0.999f, 0}), -0.5f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {1.0f, 0}), 2.5f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {INFINITY, 0}), 2.5f);
}

TEST(TreeEnsembleTest, MissingFollowsDefaultDirectionInBothKernels) {
  for (int max_padded : {TreeEnsemble::kMaxPaddedDepth, 0}) {
    auto m = TreeEnsemble::Create(Regression({Stump(true), Stump(false)}), max_padded);
    ASSERT_TRUE(m.ok());
    EXPECT_FLOAT_EQ(PredictOne(**m, {NAN, 0}), 0.5f - 1.0f + 2.0f) << max_padded;
  }
}

TEST(TreeEnsembleTest, LeafAboveFullDepthIsPaddedCorrectly) {
  // Root splits on f1; its left child is a leaf, its right child a stump on f0.
  TreeNodes t;
  t.left = {1, -1, 3, -1, -1};
  t.right = {2, -1, 4, -1, -1};
  t.feature = {1, 0, 0, 0, 0};
  t.value = {0.0f, 7.0f, 1.0f, -1.0f, 2.0f};
  t.default_left = {0, 0, 1, 0, 0};
  auto m = TreeEnsemble::Create(Regression({t}, 0.0f));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->depth(), 2);
  EXPECT_FLOAT_EQ(PredictOne(**m, {5.0f, -1.0f}), 7.0f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {NAN, -1.0f}), 7.0f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {5.0f, 1.0f}), 2.0f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {NAN, NAN}), -1.0f);  // f1 missing -> right, f0 -> left
}

TEST(TreeEnsembleTest, ManyTreesSumInOrderAcrossBlocks) {
  std::vector<TreeNodes> trees(TreeEnsemble::kTreeBlock * 2 + 3, Stump(true));
  auto m = TreeEnsemble::Create(Regression(trees, 0.0f));
  ASSERT_TRUE(m.ok());
  EXPECT_FLOAT_EQ(PredictOne(**m, {5.0f, 0}), 2.0f * trees.size());
}

TEST(TreeEnsembleTest, DeepTreesUseTheNodeWalk) {
  // A chain of depth kMaxPaddedDepth + 4: always-right splits on f0 at 0.
  const int depth = TreeEnsemble::kMaxPaddedDepth + 4;
  TreeNodes t;
  for (int d = 0; d < depth; ++d) {
    const int i = static_cast<int>(t.left.size());
    t.left.push_back(i + 1);
    t.right.push_back(i + 2);
    t.feature.push_back(0);
    t.value.push_back(0.0f);
    t.default_left.push_back(1);
    t.left.push_back(-1), t.right.push_back(-1), t.feature.push_back(0);
    t.value.push_back(static_cast<float>(-d)), t.default_left.push_back(0);
  }
  // The last right child is the final leaf.
  t.left.push_back(-1), t.right.push_back(-1), t.feature.push_back(0);
  t.value.push_back(100.0f), t.default_left.push_back(0);
  auto m = TreeEnsemble::Create(Regression({t}, 0.0f));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE((*m)->padded());
  EXPECT_FLOAT_EQ(PredictOne(**m, {1.0f, 0}), 100.0f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {-1.0f, 0}), 0.0f);
  EXPECT_FLOAT_EQ(PredictOne(**m, {NAN, 0}), 0.0f);
}

TEST(TreeEnsembleTest, SigmoidAndSoftmaxTransforms) {
  TreeEnsembleDef def = Regression({Stump(true)}, 0.0f);
  def.objective = "binary:logistic";
  auto m = TreeEnsemble::Create(def);
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(PredictOne(**m, {5.0f, 0}), 1.0 / (1.0 + std::exp(-2.0)), 1e-7);

  def.objective = "multi:softprob";
  def.num_groups = 2;
  def.base_margin = {0.0f, 0.0f};
  def.trees = {Stump(true), Stump(true)};
  def.trees[1].group = 1;
  def.trees[1].value = {1.0f, 0.0f, 0.0f};
  m = TreeEnsemble::Create(def);
  ASSERT_TRUE(m.ok());
  std::vector<float> row{5.0f, 0}, out(2);
  ASSERT_TRUE((*m)->Predict(row, 1, out).ok());
  EXPECT_NEAR(out[0], std::exp(2.0) / (std::exp(2.0) + 1.0), 1e-6);
  EXPECT_NEAR(out[0] + out[1], 1.0, 1e-6);
}

TEST(TreeEnsembleTest, RejectsMalformedTreesNamingTheNode) {
  TreeNodes bad = Stump(true);
  bad.right[0] = 9;
  auto m = TreeEnsemble::Create(Regression({bad}));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("tree 0 node 0"), std::string::npos);

  auto f = TreeEnsemble::Create(Regression({Stump(true, /*feature=*/5)}));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("split feature 5"), std::string::npos);

  TreeNodes cycle = Stump(true);
  cycle.left = {1, 0, -1};
  cycle.right = {2, 2, -1};
  EXPECT_FALSE(TreeEnsemble::Create(Regression({cycle})).ok());
}

TEST(TreeEnsembleTest, RefusesUnsupportedObjectiveSayingWhatToDo) {
  TreeEnsembleDef def = Regression({Stump(true)});
  def.objective = "rank:pairwise";
  auto m = TreeEnsemble::Create(def);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("backend: xgboost"), std::string::npos);
}

TEST(XgboostJsonTest, ParsesBothBaseScoreForms) {
  EXPECT_EQ(ParseBaseScore("5E-1").value(), std::vector<float>{0.5f});
  EXPECT_EQ(ParseBaseScore("[5.2225E-1]").value(), std::vector<float>{0.52225f});
  EXPECT_EQ(ParseBaseScore("[1E0,-2E0,3.5E0]").value(), (std::vector<float>{1, -2, 3.5f}));
  EXPECT_FALSE(ParseBaseScore("[abc]").ok());
  EXPECT_FALSE(ParseBaseScore("").ok());
}

TEST(XgboostJsonTest, RejectsNonModelsWithAClearMessage) {
  auto r = ParseXgboostJson(R"({"hello": 1})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("learner"), std::string::npos);
  EXPECT_FALSE(ParseXgboostJson("{not json").ok());
  EXPECT_FALSE(LoadXgboostJsonFile("/nonexistent/model.json").ok());
}

// A two-tree model written by XGBoost (also the fuzz target's seed).
std::string TinyModel() {
  std::ifstream f(std::string(RTML_SOURCE_DIR) +
                  "/tests/fuzz/corpus/xgboost_json_fuzzer/binary.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Inputs the fuzzer found crashing the loader (a read through a null parser
// past a malformed field; a split_type longer than its tree read out of
// bounds) are refused with a message.
TEST(XgboostJsonTest, RefusesWhatTheFuzzerFoundWithAMessage) {
  const std::string model = TinyModel();
  ASSERT_TRUE(ParseXgboostJson(model).ok());
  std::string longer = model;
  const size_t at = longer.find("\"split_type\":[");
  ASSERT_NE(at, std::string::npos);
  longer.insert(at + 14, "0,0,0,0,");
  auto r = ParseXgboostJson(longer);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("split_type has 7 entries for 3 nodes"), std::string::npos)
      << r.status().message();
  std::string broken = model;
  broken.replace(broken.find("\"feature_names\":["), 17, "\"feature[\"g]\"s,:");
  EXPECT_FALSE(ParseXgboostJson(broken).ok());
  for (size_t cut = 1; cut < model.size(); cut += 97) {
    EXPECT_FALSE(ParseXgboostJson(model.substr(0, cut)).ok()) << cut;
  }
}

}  // namespace
}  // namespace rtml::model
