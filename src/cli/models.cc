#include <simdjson.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "model/repository.h"
#include "model/serving_policy.h"
#include "model/tree_ensemble.h"
#include "model/xgboost_json.h"

namespace rtml::cli {
namespace {
namespace fs = std::filesystem;

void PrintVersion(const model::ModelVersion& v, bool is_default) {
  std::printf("  version %lld%s: backend %s, objective %s, output %s, %d inputs\n",
              static_cast<long long>(v.version), is_default ? " (default)" : "",
              std::string(v.model->backend()).c_str(), v.model->objective().c_str(),
              std::string(model::OutputKindName(v.spec.output)).c_str(), v.schema.size());
  if (!v.spec.description.empty()) std::printf("    %s\n", v.spec.description.c_str());
  for (const schema::FeatureSpec& f : v.schema.features()) {
    std::printf("    %-24s %-5s", f.name.c_str(), std::string(schema::DTypeName(f.dtype)).c_str());
    if (f.default_value) std::printf(" default=%g", *f.default_value);
    if (f.min) std::printf(" min=%g", *f.min);
    if (f.max) std::printf(" max=%g", *f.max);
    if (f.required) std::printf(" required");
    std::printf("\n");
  }
}

int InspectFile(const std::string& path) {
  auto def = model::LoadXgboostJsonFile(path);
  if (!def.ok()) {
    std::fprintf(stderr, "rtml models inspect: %s\n", def.status().message().c_str());
    return 1;
  }
  const size_t n_trees = def->trees.size();
  std::printf("%s\n  XGBoost JSON model: objective %s, %d features, %d outputs, %zu trees\n",
              path.c_str(), def->objective.c_str(), def->num_features, def->num_groups, n_trees);
  std::printf("  base margin:");
  for (float b : def->base_margin) std::printf(" %g", b);
  std::printf("\n");
  if (!def->feature_names.empty()) {
    std::printf("  feature names:");
    for (const auto& n : def->feature_names) std::printf(" %s", n.c_str());
    std::printf("\n");
  }
  auto m = model::TreeEnsemble::Create(std::move(def).value());
  if (!m.ok()) {
    std::printf("  native backend: cannot serve it: %s\n", m.status().message().c_str());
    return 0;
  }
  std::printf("  native backend: depth %d, %s layout\n", (*m)->depth(),
              (*m)->padded() ? "padded complete-tree" : "node-walk");
  return 0;
}

void PrintPolicy(const model::ServingPolicy& p) {
  if (p.default_version) std::printf("    default: %lld\n", static_cast<long long>(*p.default_version));
  for (const auto& [label, v] : p.labels) {
    std::printf("    label %s -> %lld\n", label.c_str(), static_cast<long long>(v));
  }
  for (const auto& [v, w] : p.traffic) {
    std::printf("    traffic %lld: %llu/%llu (%.1f%%)\n", static_cast<long long>(v),
                static_cast<unsigned long long>(w), static_cast<unsigned long long>(p.total_weight),
                100.0 * w / p.total_weight);
  }
  if (!p.sticky_key.empty()) std::printf("    sticky key: %s\n", p.sticky_key.c_str());
  for (int64_t v : p.shadow) std::printf("    shadow: %lld\n", static_cast<long long>(v));
}

// Every model and version of a repository, whether it loads (and why not),
// and its serving.yaml: what `rtml serve` would make of the folder.
int InspectRepository(const std::string& path) {
  auto names = model::ListModelDirs(path);
  if (!names.ok()) {
    std::fprintf(stderr, "rtml models inspect: %s\n", names.status().message().c_str());
    return 1;
  }
  int failed = 0;
  for (const std::string& name : *names) {
    std::printf("%s\n", name.c_str());
    const std::string dir = (fs::path(path) / name).string();
    auto versions = model::ListVersionDirs(dir);
    if (!versions.ok()) {
      std::printf("  FAILED: %s\n", versions.status().message().c_str());
      ++failed;
      continue;
    }
    const fs::path serving = fs::path(dir) / "serving.yaml";
    std::optional<Result<model::ServingPolicy>> policy;
    if (fs::exists(serving)) {
      std::ifstream in(serving);
      std::stringstream text;
      text << in.rdbuf();
      policy = model::ParseServingPolicy(text.str(), serving.string());
    }
    const int64_t highest = versions->empty() ? 0 : versions->rbegin()->first;
    const int64_t default_version =
        policy && policy->ok() ? (**policy).default_version.value_or(highest) : highest;
    std::vector<int64_t> loaded;
    for (const auto& [number, version_dir] : *versions) {
      auto v = model::LoadModelVersion(version_dir, name, number);
      if (!v.ok()) {
        std::printf("  version %lld: FAILED: %s\n", static_cast<long long>(number),
                    v.status().message().c_str());
        ++failed;
        continue;
      }
      loaded.push_back(number);
      PrintVersion(**v, number == default_version);
    }
    if (!policy) {
      if (!loaded.empty()) std::printf("  serving: the highest version (%lld)\n",
                                       static_cast<long long>(highest));
      continue;
    }
    if (!policy->ok()) {
      std::printf("  serving.yaml: FAILED: %s\n", policy->status().message().c_str());
      ++failed;
      continue;
    }
    std::printf("  serving.yaml:\n");
    PrintPolicy(**policy);
    for (int64_t v : (*policy)->NamedVersions()) {
      if (std::find(loaded.begin(), loaded.end(), v) == loaded.end()) {
        std::printf("  serving.yaml: FAILED: names version %lld, which does not load\n",
                    static_cast<long long>(v));
        ++failed;
      }
    }
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

int RunModelsInspect(const std::string& path) {
  if (fs::is_regular_file(path)) return InspectFile(path);
  if (fs::exists(fs::path(path) / "model.yaml")) {
    const fs::path p = fs::path(path).lexically_normal();
    const fs::path dir = p.filename().empty() ? p.parent_path() : p;
    auto v = model::LoadModelVersion(dir.string(), dir.parent_path().filename().string(),
                                     std::atoll(dir.filename().string().c_str()));
    if (!v.ok()) {
      std::fprintf(stderr, "rtml models inspect: %s\n", v.status().message().c_str());
      return 1;
    }
    std::printf("%s\n", (*v)->name.c_str());
    PrintVersion(**v, false);
    return 0;
  }
  return InspectRepository(path);
}

int RunVersion() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  std::printf(
      "rtml %s\n  libxgboost %d.%d.%d (reference backend)\n  simdjson %d.%d.%d (%s kernel)\n",
              RTML_VERSION, major, minor, patch, int{simdjson::SIMDJSON_VERSION_MAJOR},
              int{simdjson::SIMDJSON_VERSION_MINOR}, int{simdjson::SIMDJSON_VERSION_REVISION},
              SIMDJSON_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION));
  return 0;
}

}  // namespace rtml::cli
