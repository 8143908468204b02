// ModelRepository: a Triton-like folder of models, as loaded at one moment
// (model/registry.h keeps it live and publishes each change as a new one).
//
//   <repository>/<name>/<version>/model.yaml   (+ the model file it names)
//
// model.yaml says the backend (native | xgboost), the model file, the output
// kind (probability | regression | classes with labels) and the ordered input
// features (dtype, default, min/max, required). Every version of every model
// is loaded and checked against its file (feature count and names, output
// count); the highest version serves by default.
// Ownership: the repository owns the loaded versions; versions are shared as
// std::shared_ptr<const ModelVersion> and never change once loaded.
// Thread-safety: immutable once built; lookups may run on any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/model.h"
#include "model/serving_policy.h"
#include "schema/schema.h"

namespace rtml::model {

enum class OutputKind { kProbability, kRegression, kClasses };
std::string_view OutputKindName(OutputKind kind);

// What answers when a version cannot (model.yaml `fallback:`): another
// version of the same model, or a constant answer (one value per output).
// Used only when the failure is not the request's (the feature store
// unavailable, the deadline passed, the model failed): see pipeline/fallback.h.
struct FallbackSpec {
  std::optional<int64_t> version;  // `fallback: {version: 1}`
  std::vector<float> values;       // `{value: 0.02}`, or `{values: {label: p, ...}}` for classes
};

struct ModelSpec {
  std::string backend = "native";  // native | xgboost
  std::string file = "model.json";
  std::string description;
  OutputKind output = OutputKind::kProbability;
  std::vector<std::string> labels;  // for kClasses, one per output
  std::vector<schema::FeatureSpec> inputs;
  std::optional<bool> ignore_unknown_features;  // overrides scoring.unknown_features
  // A feature service whose features fill the inputs a request leaves out,
  // looked up by the entity keys the request carries (see pipeline/scorer.h).
  std::string feature_service;
  // Rows run through a new version before it serves (`warmup:` in model.yaml,
  // each a mapping of input name to value; inputs left out take their
  // default or the middle of their bounds). Empty: rows made from the schema.
  std::vector<std::vector<std::pair<std::string, double>>> warmup;
  std::optional<FallbackSpec> fallback;  // none: failures are answered as errors
};

// Parses model.yaml text. `where` names it in errors.
Result<ModelSpec> ParseModelSpec(std::string_view yaml, std::string_view where);

struct ModelVersion {
  std::string name;
  int64_t version = 0;
  std::string dir;
  ModelSpec spec;
  schema::InputSchema schema;
  std::shared_ptr<const Model> model;
  // What the serving side prepared for this version (pipeline's per-version
  // state: metrics, feature-service resolution), set by the Registry before
  // the version is published; null for a version loaded on its own.
  std::shared_ptr<const void> serving;
};

// The model folders of a repository (sorted by name) and the version folders
// of a model that hold a model.yaml (by number). Folder names that are not
// positive integers are errors naming them.
Result<std::vector<std::string>> ListModelDirs(const std::string& repository);
Result<std::map<int64_t, std::string>> ListVersionDirs(const std::string& model_dir);

// Loads one version folder: model.yaml, then the model file through its
// backend, and checks that they agree.
Result<std::shared_ptr<const ModelVersion>> LoadModelVersion(const std::string& dir,
                                                             std::string name,
                                                             int64_t version);

struct ModelEntry {
  std::string name;
  std::map<int64_t, std::shared_ptr<const ModelVersion>> versions;
  int64_t default_version = 0;  // serving.yaml's default, else the highest
  int64_t highest_version = 0;
  ServingPolicy policy;         // from serving.yaml; empty without one

  // The given version, or the default when none is given; null if unknown.
  const ModelVersion* Get(std::optional<int64_t> version) const;
  // Picks the version for a request (model/serving_policy.h) and returns it
  // with its route; NotFound when the version or label is unknown.
  Result<std::pair<const ModelVersion*, std::string_view>> Pick(const RouteRequest& r) const;
  // The error for a version of this model that is not loaded
  // (unknown_version), `version` as the request wrote it.
  Status NoSuchVersion(std::string_view version) const;
};

class ModelRepository {
 public:
  // Loads every model and version under `path`. `default_model` names the
  // model for POST /predict; empty means the only model, if there is one.
  static Result<std::unique_ptr<ModelRepository>> Load(const std::string& path,
                                                       const std::string& default_model);
  // A snapshot of already loaded models (the Registry's publish). An empty
  // one, or one without the named default model, is allowed when `live`
  // (models can come back); Load() refuses both.
  static Result<std::unique_ptr<ModelRepository>> Build(std::vector<ModelEntry> entries,
                                                        const std::string& default_model,
                                                        const std::string& path, bool live);

  const ModelEntry* Find(std::string_view name) const;
  const ModelEntry* default_model() const { return default_; }
  // All models, sorted by name.
  const std::vector<const ModelEntry*>& models() const { return sorted_; }

 private:
  std::unordered_map<std::string, ModelEntry, schema::TransparentHash, std::equal_to<>> models_;
  std::vector<const ModelEntry*> sorted_;
  const ModelEntry* default_ = nullptr;
};

}  // namespace rtml::model
