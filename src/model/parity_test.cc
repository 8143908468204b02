// Parity: the native evaluator against XGBoost's own predictions, on 10,000
// random rows with missing values, for every supported objective and for model
// files written by Debian's XGBoost 1.7 and by the pinned PyPI release
// (tests/testdata/parity, made by scripts/gen_testdata.sh). XGBoost 1.7 models
// are also scored live through libxgboost (the `xgboost` backend).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "model/tree_ensemble.h"
#include "model/xgboost_backend.h"
#include "model/xgboost_json.h"

namespace rtml::model {
namespace {

const std::string kDir = std::string(RTML_SOURCE_DIR) + "/tests/testdata/parity/";
constexpr float kTolerance = 1e-5f;

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in) << path;
  std::vector<float> v(static_cast<size_t>(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), v.size() * sizeof(float));
  return v;
}

struct Case {
  std::string tag, name, objective;
};

std::vector<Case> Cases(std::vector<std::string> tags) {
  std::vector<Case> out;
  for (const std::string& tag : tags) {
    simdjson::dom::parser parser;
    auto manifest = parser.load(kDir + tag + "/manifest.json");
    for (auto m : manifest["models"].get_array()) {
      out.push_back({tag, std::string(m["name"].get_string().value()),
                     std::string(m["objective"].get_string().value())});
    }
  }
  return out;
}

size_t CountOver(const std::vector<float>& a, const std::vector<float>& b, float* worst) {
  size_t bad = 0;
  *worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    *worst = std::max(*worst, d);
    bad += !(d <= kTolerance);
  }
  return bad;
}

class ParityTest : public ::testing::TestWithParam<Case> {};

TEST_P(ParityTest, NativeMatchesXgboostWithin1e5) {
  const Case& c = GetParam();
  const std::vector<float> rows = ReadF32(kDir + "rows.f32");
  const std::vector<float> expected = ReadF32(kDir + c.tag + "/" + c.name + ".pred.f32");
  auto def = LoadXgboostJsonFile(kDir + c.tag + "/" + c.name + ".json");
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  auto model = TreeEnsemble::Create(std::move(def).value());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const size_t n_rows = rows.size() / (*model)->num_features();
  ASSERT_GE(n_rows, 10000u);
  ASSERT_EQ(expected.size(), n_rows * (*model)->num_outputs());
  EXPECT_EQ((*model)->objective(), c.objective);
  size_t missing = std::count_if(rows.begin(), rows.end(), [](float v) { return std::isnan(v); });
  EXPECT_GT(missing, rows.size() / 20) << "rows must exercise missing values";

  EXPECT_TRUE((*model)->padded());
  std::vector<float> got(expected.size());
  ASSERT_TRUE((*model)->Predict(rows, n_rows, got).ok());
  float worst = 0;
  EXPECT_EQ(CountOver(got, expected, &worst), 0u) << "worst difference " << worst;

  // The node-walk kernel (used for deep trees) must agree too.
  auto walk = TreeEnsemble::Create(LoadXgboostJsonFile(kDir + c.tag + "/" + c.name + ".json").value(),
                                   /*max_padded_depth=*/0);
  ASSERT_TRUE(walk.ok());
  EXPECT_FALSE((*walk)->padded());
  ASSERT_TRUE((*walk)->Predict(rows, n_rows, got).ok());
  EXPECT_EQ(CountOver(got, expected, &worst), 0u) << "node walk: worst difference " << worst;
}

// libxgboost 1.7 is the live oracle for the files it wrote; newer files are
// checked against the predictions their own XGBoost committed (above).
class LiveParityTest : public ::testing::TestWithParam<Case> {};

TEST_P(LiveParityTest, NativeMatchesLiveLibxgboost) {
  const Case& c = GetParam();
  const std::vector<float> rows = ReadF32(kDir + "rows.f32");
  const std::string path = kDir + c.tag + "/" + c.name + ".json";
  auto ref = XgboostModel::Load(path);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto native = TreeEnsemble::Create(LoadXgboostJsonFile(path).value());
  ASSERT_TRUE(native.ok());
  ASSERT_EQ((*ref)->num_outputs(), (*native)->num_outputs());
  ASSERT_EQ((*ref)->num_features(), (*native)->num_features());
  const size_t n_rows = rows.size() / (*ref)->num_features();
  std::vector<float> a(n_rows * (*ref)->num_outputs()), b(a.size());
  ASSERT_TRUE((*ref)->Predict(rows, n_rows, a).ok());
  ASSERT_TRUE((*native)->Predict(rows, n_rows, b).ok());
  float worst = 0;
  EXPECT_EQ(CountOver(a, b, &worst), 0u) << "worst difference " << worst;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string n = info.param.tag + "_" + info.param.name;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

INSTANTIATE_TEST_SUITE_P(AllObjectives, ParityTest,
                         ::testing::ValuesIn(Cases({"xgb-debian", "xgb-pypi"})), CaseName);
INSTANTIATE_TEST_SUITE_P(AllObjectives, LiveParityTest,
                         ::testing::ValuesIn(Cases({"xgb-debian"})), CaseName);

}  // namespace
}  // namespace rtml::model
