#include "model/registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace rtml::model {
namespace {
namespace fs = std::filesystem;

const std::string kParity = std::string(RTML_SOURCE_DIR) + "/tests/testdata/parity/xgb-debian/";

constexpr char kInputs[] = R"(
inputs:
  - {name: f0, default: 0}
  - {name: f1}
  - {name: f2, min: -100, max: 100}
  - {name: f3}
  - {name: f4}
  - {name: f5, dtype: int}
)";

// Counts what it prepares; refuses versions whose description says "refuse".
class CountingPreparer : public VersionPreparer {
 public:
  Result<std::shared_ptr<const void>> Prepare(const ModelVersion& v) override {
    if (v.spec.description == "refuse") return FailedPrecondition("refused by the preparer");
    ++prepared;
    return std::shared_ptr<const void>(std::make_shared<int>(static_cast<int>(v.version)));
  }
  int prepared = 0;
};

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("rtml_registry_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void AddVersion(const std::string& name, int version, const std::string& yaml = kInputs,
                  const std::string& model = "binary_logistic.json") {
    fs::path dir = root_ / name / std::to_string(version);
    fs::create_directories(dir);
    fs::copy_file(kParity + model, dir / "model.json", fs::copy_options::overwrite_existing);
    std::ofstream(dir / "model.yaml") << yaml;
  }

  std::unique_ptr<Registry> Open(int poll_s = 0) {
    auto r = Registry::Open({.path = root_.string(), .poll_s = poll_s}, &preparer_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  std::vector<int64_t> Serving(const Registry& r, const std::string& name) {
    std::vector<int64_t> out;
    const ModelEntry* e = r.Current()->Find(name);
    if (e != nullptr) {
      for (const auto& [number, v] : e->versions) out.push_back(number);
    }
    return out;
  }

  VersionStatus StatusOf(const Registry& r, const std::string& name, int64_t version) {
    for (const VersionStatus& s : r.Index()) {
      if (s.model == name && s.version == version) return s;
    }
    return {};
  }

  fs::path root_;
  CountingPreparer preparer_;
};

TEST_F(RegistryTest, NewVersionAppearsOnLoadAndOldSnapshotsStayIntact) {
  AddVersion("m", 1);
  auto r = Open();
  ASSERT_NE(r, nullptr);
  const auto before = r->Current();
  const uint64_t generation = r->generation();
  AddVersion("m", 2);
  ASSERT_TRUE(r->LoadModel("m").ok());
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(r->Current()->Find("m")->default_version, 2);
  EXPECT_GT(r->generation(), generation);
  EXPECT_EQ(before->Find("m")->versions.size(), 1u);  // a held snapshot never changes
  EXPECT_EQ(*static_cast<const int*>(r->Current()->Find("m")->Get(2)->serving.get()), 2);
  EXPECT_EQ(StatusOf(*r, "m", 2).state, VersionState::kReady);
}

TEST_F(RegistryTest, ABrokenVersionIsRefusedWithItsReasonAndTheOldOneKeepsServing) {
  AddVersion("m", 1);
  auto r = Open();
  ASSERT_NE(r, nullptr);
  AddVersion("m", 2, "inputs: [{name: a}, {name: b}]\n");  // wrong feature count
  Status s = r->LoadModel("m");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("6 features but model.yaml lists 2"), std::string::npos)
      << s.message();
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1}));
  const VersionStatus st = StatusOf(*r, "m", 2);
  EXPECT_EQ(st.state, VersionState::kFailed);
  EXPECT_NE(st.reason.find("6 features"), std::string::npos);
  // Bad JSON in the model file, and a version the serving side refuses.
  AddVersion("m", 3);
  std::ofstream(root_ / "m" / "3" / "model.json") << "{\"learner\": ";
  AddVersion("m", 4, std::string("description: refuse\n") + kInputs);
  EXPECT_FALSE(r->LoadModel("m").ok());
  EXPECT_EQ(StatusOf(*r, "m", 3).state, VersionState::kFailed);
  EXPECT_EQ(StatusOf(*r, "m", 4).reason, "refused by the preparer");
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1}));
  // Fixed on disk: the next load takes it.
  AddVersion("m", 2);
  (void)r->LoadModel("m");
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1, 2}));
}

TEST_F(RegistryTest, AFailedReloadKeepsTheLoadedVersionServing) {
  AddVersion("m", 1);
  auto r = Open();
  ASSERT_NE(r, nullptr);
  std::ofstream(root_ / "m" / "1" / "model.yaml") << "inputs: [{name: a}]\n# changed\n";
  EXPECT_FALSE(r->LoadModel("m").ok());
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1}));
  EXPECT_NE(StatusOf(*r, "m", 1).reason.find("keeps serving"), std::string::npos);
}

TEST_F(RegistryTest, AFolderWithoutModelYamlIsNotPickedUp) {
  AddVersion("m", 1);
  auto r = Open();
  ASSERT_NE(r, nullptr);
  fs::create_directories(root_ / "m" / "2");
  fs::copy_file(kParity + "binary_logistic.json", root_ / "m" / "2" / "model.json");
  EXPECT_TRUE(r->Rescan().ok());
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1}));
  std::ofstream(root_ / "m" / "2" / "model.yaml") << kInputs;  // written last
  EXPECT_TRUE(r->Rescan().ok());
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1, 2}));
}

TEST_F(RegistryTest, RemovedVersionsAndUnloadedModelsStopServing) {
  AddVersion("m", 1);
  AddVersion("m", 2);
  AddVersion("other", 1);
  auto r = Open();
  ASSERT_NE(r, nullptr);
  fs::remove_all(root_ / "m" / "2");
  EXPECT_TRUE(r->Rescan().ok());
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1}));
  EXPECT_EQ(StatusOf(*r, "m", 2).state, VersionState::kUnloaded);
  ASSERT_TRUE(r->UnloadModel("other").ok());
  EXPECT_EQ(r->Current()->Find("other"), nullptr);
  EXPECT_TRUE(r->Rescan().ok());  // polling does not bring it back
  EXPECT_EQ(r->Current()->Find("other"), nullptr);
  EXPECT_EQ(r->UnloadModel("other").code(), StatusCode::kNotFound);
  ASSERT_TRUE(r->LoadModel("other").ok());
  EXPECT_EQ(Serving(*r, "other"), (std::vector<int64_t>{1}));
  EXPECT_EQ(r->LoadModel("nope").code(), StatusCode::kNotFound);
}

TEST_F(RegistryTest, UnchangedVersionsAreNotReloaded) {
  AddVersion("m", 1);
  auto r = Open();
  ASSERT_NE(r, nullptr);
  const int prepared = preparer_.prepared;
  const ModelVersion* v1 = r->Current()->Find("m")->Get(1);
  EXPECT_TRUE(r->Rescan().ok());
  EXPECT_EQ(preparer_.prepared, prepared);
  EXPECT_EQ(r->Current()->Find("m")->Get(1), v1);
}

TEST_F(RegistryTest, PollingPicksUpANewVersion) {
  AddVersion("m", 1);
  auto r = Open(/*poll_s=*/1);
  ASSERT_NE(r, nullptr);
  AddVersion("m", 2);
  for (int i = 0; i < 50 && Serving(*r, "m").size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1, 2}));
}

TEST_F(RegistryTest, StartUpFailsOnABadVersion) {
  AddVersion("m", 1, "inputs: [{name: a}]\n");
  auto r = Registry::Open({.path = root_.string()}, &preparer_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.yaml lists 1"), std::string::npos);
}

TEST_F(RegistryTest, ALoadPastMaxLoadedBytesIsRefused) {
  AddVersion("m", 1);
  size_t one = 0;
  {
    auto r = Open();
    ASSERT_NE(r, nullptr);
    one = r->Current()->Find("m")->Get(1)->model->size_bytes();
    ASSERT_GT(one, 1000u);
    EXPECT_EQ(StatusOf(*r, "m", 1).size_bytes, one);
  }
  auto r = Registry::Open({.path = root_.string(), .max_loaded_bytes = one * 3 / 2}, &preparer_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  AddVersion("m", 2);
  Status s = (*r)->LoadModel("m");
  EXPECT_NE(s.message().find("over models.max_loaded_bytes"), std::string::npos) << s.message();
  EXPECT_EQ(Serving(**r, "m"), (std::vector<int64_t>{1}));
  // Replacing a version counts the new one instead of the old.
  fs::remove_all(root_ / "m" / "2");
  std::ofstream(root_ / "m" / "1" / "model.yaml") << kInputs << "# edited\n";
  EXPECT_TRUE((*r)->LoadModel("m").ok());
}

TEST_F(RegistryTest, WarmupRowsFromModelYamlMustNameInputs) {
  AddVersion("m", 1, std::string(kInputs) + "warmup:\n  - {f0: 1, f1: 2.5}\n  - {f5: 3}\n");
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->Current()->Find("m")->Get(1)->spec.warmup.size(), 2u);
  AddVersion("m", 2, std::string(kInputs) + "warmup:\n  - {nope: 1}\n");
  Status s = r->LoadModel("m");
  EXPECT_NE(s.message().find("'nope' is not an input"), std::string::npos) << s.message();
  EXPECT_EQ(Serving(*r, "m"), (std::vector<int64_t>{1}));
}

TEST(WarmupRowsTest, UsesDefaultsThenBoundsThenZero) {
  auto schema = schema::InputSchema::Create(
      {{.name = "a", .default_value = 3.0}, {.name = "b", .min = 2.0, .max = 4.0},
       {.name = "c", .max = -1.0}, {.name = "d"}});
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ(WarmupRows(*schema, 2), (std::vector<float>{3, 3, -1, 0, 3, 3, -1, 0}));
}

}  // namespace
}  // namespace rtml::model
