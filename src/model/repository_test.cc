#include "model/repository.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace rtml::model {
namespace {
namespace fs = std::filesystem;

const std::string kParity = std::string(RTML_SOURCE_DIR) + "/tests/testdata/parity/xgb-debian/";

constexpr char kBinaryInputs[] = R"(
inputs:
  - {name: f0, default: 0}
  - {name: f1}
  - {name: f2, min: -100, max: 100}
  - {name: f3}
  - {name: f4}
  - {name: f5, dtype: int}
)";

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("rtml_repo_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void AddVersion(const std::string& name, const std::string& version, const std::string& yaml,
                  const std::string& model = "binary_logistic.json") {
    fs::path dir = root_ / name / version;
    fs::create_directories(dir);
    fs::copy_file(kParity + model, dir / "model.json");
    std::ofstream(dir / "model.yaml") << yaml;
  }

  Status LoadError() {
    auto r = ModelRepository::Load(root_.string(), "");
    return r.ok() ? Status::Ok() : r.status();
  }

  fs::path root_;
};

TEST_F(RepositoryTest, LoadsAllVersionsAndServesTheHighestByDefault) {
  AddVersion("fraud", "1", std::string("backend: native\n") + kBinaryInputs);
  AddVersion("fraud", "12", std::string("backend: xgboost\n") + kBinaryInputs);
  AddVersion("fraud", "3", kBinaryInputs);
  auto repo = ModelRepository::Load(root_.string(), "");
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  const ModelEntry* e = (*repo)->Find("fraud");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ((*repo)->default_model(), e);
  EXPECT_EQ(e->versions.size(), 3u);
  EXPECT_EQ(e->default_version, 12);
  EXPECT_EQ(e->Get(std::nullopt)->model->backend(), "xgboost");
  EXPECT_EQ(e->Get(1)->model->backend(), "native");
  EXPECT_EQ(e->Get(2), nullptr);
  EXPECT_EQ(e->Get(1)->schema.IndexOf("f2"), 2);
  EXPECT_EQ((*repo)->Find("other"), nullptr);
}

TEST_F(RepositoryTest, ClassesOutputNeedsOneLabelPerClass) {
  AddVersion("iris", "1", std::string("output: {kind: classes, labels: [a, b, c]}\n") +
             kBinaryInputs, "multi_softprob.json");
  ASSERT_TRUE(LoadError().ok()) << LoadError().ToString();
  fs::remove_all(root_);
  AddVersion("iris", "1", std::string("output: {kind: classes, labels: [a, b]}\n") +
             kBinaryInputs, "multi_softprob.json");
  EXPECT_NE(LoadError().message().find("expects 2 outputs"), std::string::npos)
      << LoadError().message();
}

TEST_F(RepositoryTest, DefaultModelMustExistAndIsRequiredToBeUnambiguous) {
  AddVersion("a", "1", kBinaryInputs);
  AddVersion("b", "1", kBinaryInputs);
  auto repo = ModelRepository::Load(root_.string(), "");
  ASSERT_TRUE(repo.ok());
  EXPECT_EQ((*repo)->default_model(), nullptr);
  EXPECT_EQ((*repo)->models().size(), 2u);
  EXPECT_EQ((*repo)->models()[0]->name, "a");
  EXPECT_FALSE(ModelRepository::Load(root_.string(), "c").ok());
  EXPECT_EQ((*ModelRepository::Load(root_.string(), "b"))->default_model()->name, "b");
}

TEST_F(RepositoryTest, RejectsInconsistentModelsWithClearMessages) {
  AddVersion("m", "1", "inputs: [{name: a}, {name: b}]\n");
  EXPECT_NE(LoadError().message().find("6 features but model.yaml lists 2"), std::string::npos)
      << LoadError().message();
  fs::remove_all(root_);
  AddVersion("m", "v1", kBinaryInputs);
  EXPECT_NE(LoadError().message().find("not a positive integer"), std::string::npos);
  fs::remove_all(root_);
  AddVersion("m", "1", std::string("backend: onnx\n") + kBinaryInputs);
  EXPECT_NE(LoadError().message().find("backend must be"), std::string::npos);
  fs::remove_all(root_);
  AddVersion("m", "1", std::string("output: {kind: regression}\nbogus: 1\n") + kBinaryInputs);
  EXPECT_NE(LoadError().message().find("unknown key 'bogus'"), std::string::npos);
  fs::remove_all(root_);
  AddVersion("m", "1", std::string("output: {kind: probability}\n") + kBinaryInputs,
             "reg_squarederror.json");
  EXPECT_NE(LoadError().message().find("needs a logistic objective"), std::string::npos);
  fs::remove_all(root_);
  fs::create_directories(root_ / "m" / "1");
  EXPECT_NE(LoadError().message().find("model.yaml"), std::string::npos);
  EXPECT_FALSE(ModelRepository::Load("/nonexistent", "").ok());
}

TEST_F(RepositoryTest, ParsesFallbacksAndRefusesOnesThatCannotAnswer) {
  auto spec = [](const std::string& yaml) {
    return ParseModelSpec(yaml + kBinaryInputs, "model.yaml");
  };
  auto v = spec("fallback: {version: 1}\n");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->fallback->version, 1);
  auto c = spec("fallback: {value: 0.02}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->fallback->values, std::vector<float>{0.02f});
  auto classes = spec("output: {kind: classes, labels: [a, b]}\nfallback: {values: {b: 0.25, a: 0.75}}\n");
  ASSERT_TRUE(classes.ok()) << classes.status().ToString();
  EXPECT_EQ(classes->fallback->values, (std::vector<float>{0.75f, 0.25f}));
  EXPECT_FALSE(spec("").value().fallback.has_value());
  const std::pair<const char*, const char*> bad[] = {
      {"fallback: 1\n", "give {version: N}"},
      {"fallback: {}\n", "exactly one of version, value or values"},
      {"fallback: {version: 1, value: 0.5}\n", "exactly one"},
      {"fallback: {version: 0}\n", "positive version"},
      {"fallback: {value: 1.5}\n", "probability in [0, 1]"},
      {"fallback: {model: x}\n", "unknown key 'model'"},
      {"fallback: {values: {a: 1}}\n", "for classes models"},
      {"output: {kind: classes, labels: [a, b]}\nfallback: {value: 0.5}\n", "values: {label"},
      {"output: {kind: classes, labels: [a, b]}\nfallback: {values: {a: 1}}\n",
       "label 'b' has no probability"},
      {"output: {kind: classes, labels: [a, b]}\nfallback: {values: {a: 0.5, b: 0.5, c: 0}}\n",
       "a label the output does not have"},
      {"output: {kind: classes, labels: [a, b]}\nfallback: {values: {a: x, b: 1}}\n",
       "values.a"},
  };
  for (const auto& [yaml, want] : bad) {
    auto r = spec(yaml);
    ASSERT_FALSE(r.ok()) << yaml;
    EXPECT_NE(r.status().message().find(want), std::string::npos)
        << yaml << " -> " << r.status().message();
  }
  AddVersion("m", "2", std::string("fallback: {version: 2}\n") + kBinaryInputs);
  EXPECT_NE(LoadError().message().find("cannot be its own fallback"), std::string::npos)
      << LoadError().message();
}

}  // namespace
}  // namespace rtml::model
