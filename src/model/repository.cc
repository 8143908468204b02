#include "model/repository.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include "config/yaml.h"
#include "model/tree_ensemble.h"
#include "model/xgboost_backend.h"
#include "model/xgboost_json.h"

namespace rtml::model {
namespace fs = std::filesystem;
using config::CheckKeys;
using config::Read;

namespace {

Result<schema::FeatureSpec> ParseInput(const YAML::Node& n, const std::string& where) {
  RETURN_IF_ERROR(CheckKeys(n, where, {"name", "dtype", "default", "min", "max", "required",
                                       "description"}));
  schema::FeatureSpec f;
  RETURN_IF_ERROR(Read(n, where, "name", &f.name));
  if (f.name.empty()) return FailedPrecondition(where + ": 'name' is required");
  std::string dtype = "float";
  RETURN_IF_ERROR(Read(n, where, "dtype", &dtype));
  auto parsed = schema::ParseDType(dtype);
  if (!parsed.ok()) return parsed.status().Annotate(where);
  f.dtype = *parsed;
  if (f.dtype == schema::DType::kBool && n["default"] && n["default"].IsScalar() &&
      (n["default"].Scalar() == "true" || n["default"].Scalar() == "false")) {
    f.default_value = n["default"].Scalar() == "true" ? 1.0 : 0.0;
  } else {
    RETURN_IF_ERROR(Read(n, where, "default", &f.default_value));
  }
  RETURN_IF_ERROR(Read(n, where, "min", &f.min));
  RETURN_IF_ERROR(Read(n, where, "max", &f.max));
  RETURN_IF_ERROR(Read(n, where, "required", &f.required));
  return f;
}

Status ParseOutput(const YAML::Node& n, std::string_view where, ModelSpec* spec) {
  const std::string w = std::string(where) + ".output";
  RETURN_IF_ERROR(CheckKeys(n, w, {"kind", "labels"}));
  std::string kind = "probability";
  RETURN_IF_ERROR(Read(n, w, "kind", &kind));
  if (kind == "probability") {
    spec->output = OutputKind::kProbability;
  } else if (kind == "regression") {
    spec->output = OutputKind::kRegression;
  } else if (kind == "classes") {
    spec->output = OutputKind::kClasses;
  } else {
    return FailedPrecondition(w + ".kind must be probability, regression or classes, not '" +
                              kind + "'");
  }
  RETURN_IF_ERROR(Read(n, w, "labels", &spec->labels));
  if (spec->output == OutputKind::kClasses && spec->labels.size() < 2) {
    return FailedPrecondition(w + ".labels: classes output needs at least two labels");
  }
  return Status::Ok();
}

Result<int64_t> ParseVersion(const std::string& s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v <= 0) {
    return FailedPrecondition("version folder '" + s + "' is not a positive integer");
  }
  return v;
}

Result<std::shared_ptr<const Model>> LoadBackend(const ModelSpec& spec, const std::string& path) {
  if (spec.backend == "native") {
    ASSIGN_OR_RETURN(TreeEnsembleDef def, LoadXgboostJsonFile(path));
    ASSIGN_OR_RETURN(std::unique_ptr<TreeEnsemble> m, TreeEnsemble::Create(std::move(def)));
    return std::shared_ptr<const Model>(std::move(m));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<XgboostModel> m, XgboostModel::Load(path));
  return std::shared_ptr<const Model>(std::move(m));
}

Status CheckAgreement(const ModelSpec& spec, const Model& m) {
  if (m.num_features() != static_cast<int>(spec.inputs.size())) {
    return FailedPrecondition("model file has " + std::to_string(m.num_features()) +
                              " features but model.yaml lists " +
                              std::to_string(spec.inputs.size()) + " inputs");
  }
  const auto& names = m.feature_names();
  for (size_t i = 0; i < names.size() && i < spec.inputs.size(); ++i) {
    if (names[i] != spec.inputs[i].name) {
      return FailedPrecondition("input " + std::to_string(i) + " is '" + spec.inputs[i].name +
                                "' in model.yaml but '" + names[i] + "' in the model file");
    }
  }
  const std::string& objective = m.objective();
  if (spec.output == OutputKind::kProbability && objective.find("logistic") == std::string::npos) {
    return FailedPrecondition("output kind probability needs a logistic objective; the model's is " +
                              objective + " (use kind: regression or classes)");
  }
  const int want = spec.output == OutputKind::kClasses ? static_cast<int>(spec.labels.size()) : 1;
  if (m.num_outputs() != want) {
    return FailedPrecondition("output kind " + std::string(OutputKindName(spec.output)) +
                              " expects " + std::to_string(want) + " outputs per row; the " +
                              m.objective() + " model gives " + std::to_string(m.num_outputs()));
  }
  return Status::Ok();
}

}  // namespace

Result<ModelSpec> SpecFromYaml(const YAML::Node& root, std::string_view where);

// warmup: [{name: value, ...}, ...]; every name must be an input.
Status ParseWarmup(const YAML::Node& n, const std::string& where, ModelSpec* spec) {
  if (!n) return Status::Ok();
  if (!n.IsSequence()) return FailedPrecondition(where + ": give a list of rows (name: value)");
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string w = where + "[" + std::to_string(i) + "]";
    if (!n[i].IsMap()) return FailedPrecondition(w + ": a row is a mapping of input: value");
    auto& row = spec->warmup.emplace_back();
    for (const auto& kv : n[i]) {
      const std::string name = kv.first.Scalar();
      const bool known = std::any_of(spec->inputs.begin(), spec->inputs.end(),
                                     [&](const schema::FeatureSpec& f) { return f.name == name; });
      if (!known) return FailedPrecondition(w + ": '" + name + "' is not an input");
      double v = 0;
      try {
        v = kv.second.Scalar() == "true" ? 1 : kv.second.Scalar() == "false" ? 0
                                                                              : kv.second.as<double>();
      } catch (const YAML::Exception&) {
        return FailedPrecondition(w + "." + name + ": a number or true/false");
      }
      row.emplace_back(name, v);
    }
  }
  return Status::Ok();
}

// fallback: {version: N} | {value: x} | {values: {label: p, ...}} (classes);
// after ParseOutput (the constant must fit the output kind).
Status ParseFallback(const YAML::Node& n, const std::string& where, ModelSpec* spec) {
  if (!n) return Status::Ok();
  if (!n.IsMap()) {
    return FailedPrecondition(where + ": give {version: N}, {value: x} or, for classes, "
                              "{values: {label: probability, ...}}");
  }
  RETURN_IF_ERROR(CheckKeys(n, where, {"version", "value", "values"}));
  FallbackSpec f;
  RETURN_IF_ERROR(Read(n, where, "version", &f.version));
  const bool has_value = n["value"].IsDefined(), has_values = n["values"].IsDefined();
  if (f.version.has_value() + has_value + has_values != 1) {
    return FailedPrecondition(where + ": give exactly one of version, value or values");
  }
  if (f.version && *f.version <= 0) {
    return FailedPrecondition(where + ".version must be a positive version number");
  }
  if (has_value) {
    if (spec->output == OutputKind::kClasses) {
      return FailedPrecondition(where + ": a classes model's constant fallback is "
                                "values: {label: probability, ...}");
    }
    double v = 0;
    RETURN_IF_ERROR(Read(n, where, "value", &v));
    if (!std::isfinite(v) || (spec->output == OutputKind::kProbability && (v < 0 || v > 1))) {
      return FailedPrecondition(where + ".value must be a probability in [0, 1]");
    }
    f.values.push_back(static_cast<float>(v));
  }
  if (has_values) {
    const YAML::Node values = n["values"];
    if (spec->output != OutputKind::kClasses || !values.IsMap()) {
      return FailedPrecondition(where + ".values is for classes models: {label: probability, "
                                "...} naming every label (others give value: x)");
    }
    f.values.assign(spec->labels.size(), 0);
    for (size_t k = 0; k < spec->labels.size(); ++k) {
      double p = -1;
      RETURN_IF_ERROR(Read(values, where + ".values", spec->labels[k].c_str(), &p));
      if (!values[spec->labels[k]]) {
        return FailedPrecondition(where + ".values: label '" + spec->labels[k] +
                                  "' has no probability");
      }
      if (!(p >= 0 && p <= 1)) {
        return FailedPrecondition(where + ".values." + spec->labels[k] +
                                  " must be a probability in [0, 1]");
      }
      f.values[k] = static_cast<float>(p);
    }
    if (values.size() != spec->labels.size()) {
      return FailedPrecondition(where + ".values names a label the output does not have");
    }
  }
  spec->fallback = std::move(f);
  return Status::Ok();
}

std::string_view OutputKindName(OutputKind kind) {
  switch (kind) {
    case OutputKind::kProbability: return "probability";
    case OutputKind::kRegression: return "regression";
    case OutputKind::kClasses: return "classes";
  }
  return "probability";
}

Result<ModelSpec> ParseModelSpec(std::string_view yaml, std::string_view where) {
  ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(yaml, where));
  return SpecFromYaml(root, where);
}

Result<ModelSpec> SpecFromYaml(const YAML::Node& root, std::string_view where) {
  const std::string w(where);
  if (!root.IsMap()) return FailedPrecondition(w + ": must be a mapping");
  RETURN_IF_ERROR(CheckKeys(root, w, {"backend", "file", "description", "output", "inputs",
                                      "unknown_features", "feature_service", "warmup",
                                      "fallback"}));
  ModelSpec spec;
  RETURN_IF_ERROR(Read(root, w, "backend", &spec.backend));
  if (spec.backend != "native" && spec.backend != "xgboost") {
    return FailedPrecondition(w + ".backend must be native or xgboost, not '" + spec.backend +
                              "'");
  }
  RETURN_IF_ERROR(Read(root, w, "file", &spec.file));
  RETURN_IF_ERROR(Read(root, w, "description", &spec.description));
  RETURN_IF_ERROR(Read(root, w, "feature_service", &spec.feature_service));
  RETURN_IF_ERROR(ParseOutput(root["output"], w, &spec));
  std::string unknown;
  RETURN_IF_ERROR(Read(root, w, "unknown_features", &unknown));
  if (!unknown.empty()) {
    if (unknown != "reject" && unknown != "ignore") {
      return FailedPrecondition(w + ".unknown_features must be reject or ignore");
    }
    spec.ignore_unknown_features = unknown == "ignore";
  }
  const YAML::Node inputs = root["inputs"];
  if (!inputs || !inputs.IsSequence() || inputs.size() == 0) {
    return FailedPrecondition(w + ".inputs: a non-empty list of input features is required");
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(schema::FeatureSpec f,
                     ParseInput(inputs[i], w + ".inputs[" + std::to_string(i) + "]"));
    spec.inputs.push_back(std::move(f));
  }
  RETURN_IF_ERROR(ParseWarmup(root["warmup"], w + ".warmup", &spec));
  RETURN_IF_ERROR(ParseFallback(root["fallback"], w + ".fallback", &spec));
  return spec;
}

Result<std::shared_ptr<const ModelVersion>> LoadModelVersion(const std::string& dir,
                                                             std::string name,
                                                             int64_t version) {
  const std::string yaml_path = dir + "/model.yaml";
  ASSIGN_OR_RETURN(YAML::Node root, config::LoadYamlFile(yaml_path));
  ASSIGN_OR_RETURN(ModelSpec spec, SpecFromYaml(root, yaml_path));
  auto schema = schema::InputSchema::Create(spec.inputs);
  if (!schema.ok()) return schema.status().Annotate(yaml_path);
  auto model = LoadBackend(spec, config::ResolvePath(dir, spec.file));
  if (!model.ok()) return model.status().Annotate(dir);
  if (Status s = CheckAgreement(spec, **model); !s.ok()) return s.Annotate(dir);
  if (spec.fallback && spec.fallback->version == version) {
    return FailedPrecondition(yaml_path + ".fallback: a version cannot be its own fallback");
  }
  auto v = std::make_shared<ModelVersion>(ModelVersion{
      std::move(name), version, dir, std::move(spec), std::move(schema).value(),
      std::move(model).value()});
  return std::shared_ptr<const ModelVersion>(std::move(v));
}

const ModelVersion* ModelEntry::Get(std::optional<int64_t> version) const {
  auto it = versions.find(version.value_or(default_version));
  return it == versions.end() ? nullptr : it->second.get();
}

Result<std::vector<std::string>> ListModelDirs(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return FailedPrecondition("model repository '" + path + "' is not a folder");
  }
  std::vector<std::string> names;
  for (const auto& d : fs::directory_iterator(path, ec)) {
    if (d.is_directory()) names.push_back(d.path().filename().string());
  }
  if (ec) return FailedPrecondition("cannot read model repository '" + path + "': " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::map<int64_t, std::string>> ListVersionDirs(const std::string& model_dir) {
  std::map<int64_t, std::string> out;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(model_dir, ec)) {
    if (!d.is_directory()) continue;
    auto v = ParseVersion(d.path().filename().string());
    if (!v.ok()) return v.status().Annotate(model_dir);
    if (fs::exists(d.path() / "model.yaml")) out.emplace(*v, d.path().string());
  }
  if (ec) return FailedPrecondition("cannot read '" + model_dir + "': " + ec.message());
  return out;
}

Result<std::unique_ptr<ModelRepository>> ModelRepository::Load(
    const std::string& path, const std::string& default_model) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListModelDirs(path));
  std::vector<ModelEntry> entries;
  for (const std::string& name : names) {
    const std::string dir = (fs::path(path) / name).string();
    ASSIGN_OR_RETURN(auto versions, ListVersionDirs(dir));
    ModelEntry& entry = entries.emplace_back();
    entry.name = name;
    for (const auto& [number, version_dir] : versions) {
      ASSIGN_OR_RETURN(auto loaded, LoadModelVersion(version_dir, name, number));
      entry.versions.emplace(number, std::move(loaded));
    }
    if (entry.versions.empty()) {
      return FailedPrecondition("model '" + name + "' in " + path +
                                " has no version folders (expected " + name +
                                "/1/model.yaml)");
    }
  }
  return Build(std::move(entries), default_model, path, /*live=*/false);
}

Result<std::unique_ptr<ModelRepository>> ModelRepository::Build(std::vector<ModelEntry> entries,
                                                                 const std::string& default_model,
                                                                 const std::string& path,
                                                                 bool live) {
  auto repo = std::unique_ptr<ModelRepository>(new ModelRepository());
  for (ModelEntry& entry : entries) {
    if (entry.versions.empty()) continue;
    entry.highest_version = entry.versions.rbegin()->first;
    const auto& d = entry.policy.default_version;
    entry.default_version = d && entry.versions.count(*d) ? *d : entry.highest_version;
    std::string name = entry.name;
    repo->models_.emplace(std::move(name), std::move(entry));
  }
  if (repo->models_.empty() && !live) {
    return FailedPrecondition("model repository '" + path +
                              "' holds no models (expected <name>/<version>/model.yaml)");
  }
  for (const auto& [name, entry] : repo->models_) repo->sorted_.push_back(&entry);
  std::sort(repo->sorted_.begin(), repo->sorted_.end(),
            [](const ModelEntry* a, const ModelEntry* b) { return a->name < b->name; });
  if (!default_model.empty()) {
    repo->default_ = repo->Find(default_model);
    if (repo->default_ == nullptr && !live) {
      return FailedPrecondition("models.default names '" + default_model +
                                "', which is not in " + path);
    }
  } else if (repo->sorted_.size() == 1) {
    repo->default_ = repo->sorted_.front();
  }
  return repo;
}

Result<std::pair<const ModelVersion*, std::string_view>> ModelEntry::Pick(
    const RouteRequest& r) const {
  ASSIGN_OR_RETURN(RouteChoice choice, Route(policy, default_version, r));
  const ModelVersion* v = Get(choice.version);
  if (v == nullptr) return NoSuchVersion(std::to_string(choice.version));
  return std::pair{v, choice.route};
}

Status ModelEntry::NoSuchVersion(std::string_view version) const {
  return NotFound("model '" + name + "' has no version " + std::string(version) + " loaded",
                  "unknown_version");
}

const ModelEntry* ModelRepository::Find(std::string_view name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second;
}

}  // namespace rtml::model
