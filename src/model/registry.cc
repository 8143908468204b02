#include "model/registry.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>


#include "common/threads.h"
#include "observability/log.h"

namespace rtml::model {
namespace fs = std::filesystem;
namespace {

spdlog::logger& Log() {
  static spdlog::logger& log = observability::ComponentLogger("models");
  return log;
}

constexpr size_t kWarmupRows = 8;

// Sizes and modification times of a version folder's files: a change to any
// of them makes the version reload.
std::string Fingerprint(const std::string& dir) {
  std::vector<std::string> parts;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir, ec)) {
    if (!f.is_regular_file(ec)) continue;
    const auto mtime = f.last_write_time(ec).time_since_epoch().count();
    parts.push_back(f.path().filename().string() + ":" + std::to_string(f.file_size(ec)) + ":" +
                    std::to_string(mtime));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& p : parts) out += p + ";";
  return out;
}

// model.yaml's warmup rows when it has them, else rows made from the schema.
std::vector<float> WarmupRowsFor(const ModelVersion& v, size_t* n_rows) {
  if (v.spec.warmup.empty()) {
    *n_rows = kWarmupRows;
    return WarmupRows(v.schema, kWarmupRows);
  }
  const std::vector<float> base = WarmupRows(v.schema, 1);
  std::vector<float> rows;
  for (const auto& given : v.spec.warmup) {
    const size_t at = rows.size();
    rows.insert(rows.end(), base.begin(), base.end());
    for (const auto& [name, value] : given) {
      rows[at + v.schema.IndexOf(name)] = static_cast<float>(value);
    }
  }
  *n_rows = v.spec.warmup.size();
  return rows;
}

Status Warmup(const ModelVersion& v) {
  const Model& m = *v.model;
  size_t n = 0;
  std::vector<float> rows = WarmupRowsFor(v, &n);
  std::vector<float> out(n * m.num_outputs());
  RETURN_IF_ERROR(m.Predict(rows, n, out).Annotate("warm-up"));
  for (float x : out) {
    if (std::isnan(x)) return FailedPrecondition("warm-up: the model answered NaN");
  }
  return Status::Ok();
}

}  // namespace

std::string_view VersionStateName(VersionState s) {
  switch (s) {
    case VersionState::kLoading: return "LOADING";
    case VersionState::kReady: return "READY";
    case VersionState::kFailed: return "FAILED";
    case VersionState::kUnloaded: return "UNLOADED";
  }
  return "UNKNOWN";
}

std::vector<float> WarmupRows(const schema::InputSchema& schema, size_t n_rows) {
  std::vector<float> row;
  for (const schema::FeatureSpec& f : schema.features()) {
    double x = 0;
    if (f.default_value) {
      x = *f.default_value;
    } else if (f.min && f.max) {
      x = (*f.min + *f.max) / 2;
      if (f.dtype != schema::DType::kFloat) x = std::floor(x);
    } else if (f.min || f.max) {
      x = f.min ? *f.min : *f.max;
    }
    row.push_back(static_cast<float>(x));
  }
  std::vector<float> rows;
  for (size_t i = 0; i < n_rows; ++i) rows.insert(rows.end(), row.begin(), row.end());
  return rows;
}

Result<std::unique_ptr<Registry>> Registry::Open(RegistryOptions options,
                                                 VersionPreparer* preparer) {
  auto r = std::unique_ptr<Registry>(new Registry(std::move(options), preparer));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListModelDirs(r->options_.path));
  std::lock_guard lock(r->mu_);
  for (const std::string& name : names) {
    ModelRecord& record = r->models_[name];
    RETURN_IF_ERROR(r->SyncModel(name, &record));  // at start, every version must load
    if (record.versions.empty()) {
      return FailedPrecondition("model '" + name + "' in " + r->options_.path +
                                " has no version folders (expected " + name + "/1/model.yaml)");
    }
  }
  if (r->models_.empty()) {
    return FailedPrecondition("model repository '" + r->options_.path +
                              "' holds no models (expected <name>/<version>/model.yaml)");
  }
  if (!r->options_.default_model.empty() && !r->models_.count(r->options_.default_model)) {
    return FailedPrecondition("models.default names '" + r->options_.default_model +
                              "', which is not in " + r->options_.path);
  }
  RETURN_IF_ERROR(r->Publish());
  r->background_ = std::thread([p = r.get()] { p->BackgroundLoop(); });
  return r;
}


Registry::~Registry() {
  {
    std::lock_guard lock(poll_mu_);
    stopping_ = true;
  }
  poll_cv_.notify_all();
  if (background_.joinable()) background_.join();
}

std::shared_ptr<const ModelRepository> Registry::Current() const {
  std::lock_guard lock(current_mu_);
  return current_;
}

Result<std::shared_ptr<const ModelVersion>> Registry::LoadVersion(const std::string& dir,
                                                                  const std::string& name,
                                                                  int64_t version) {
  ASSIGN_OR_RETURN(auto loaded, LoadModelVersion(dir, name, version));
  RETURN_IF_ERROR(Warmup(*loaded).Annotate(dir));
  auto v = std::make_shared<ModelVersion>(*loaded);
  auto prepared = preparer_ != nullptr ? preparer_->Prepare(*v)
                                       : Result<std::shared_ptr<const void>>(nullptr);
  if (!prepared.ok()) return prepared.status();
  v->serving = std::move(prepared).value();
  return std::shared_ptr<const ModelVersion>(std::move(v));
}

Status Registry::SyncModel(const std::string& name, ModelRecord* record) {
  const std::string model_dir = (fs::path(options_.path) / name).string();
  std::map<int64_t, std::string> on_disk;
  std::error_code ec;
  if (fs::is_directory(model_dir, ec)) {
    ASSIGN_OR_RETURN(on_disk, ListVersionDirs(model_dir));
  }
  std::string failures;
  for (auto& [number, rec] : record->versions) {  // removed folders unload
    if (on_disk.count(number) || rec.state == VersionState::kUnloaded) continue;
    Log().info("model {} version {}: its folder is gone, unloading", name, number);
    rec = VersionRecord{.state = VersionState::kUnloaded, .reason = "its folder was removed"};
  }
  for (const auto& [number, dir] : on_disk) {
    VersionRecord& rec = record->versions[number];
    const std::string print = Fingerprint(dir);
    if (rec.loaded != nullptr && print == rec.fingerprint) continue;  // unchanged
    if (rec.state == VersionState::kFailed && print == rec.fingerprint) {
      failures += (failures.empty() ? "" : "; ") + rec.reason;  // still broken
      continue;
    }
    const observability::LogScope scope({.model = name, .version = number});
    auto started = std::chrono::steady_clock::now();
    rec.state = VersionState::kLoading;
    PublishIndex();
    auto v = LoadVersion(dir, name, number);
    if (v.ok() && options_.max_loaded_bytes > 0) {
      const size_t total = LoadedBytes(rec.loaded.get()) + (*v)->model->size_bytes();
      if (total > options_.max_loaded_bytes) {
        v = FailedPrecondition(
            "loading it would hold " + std::to_string(total) + " bytes of models, over "
            "models.max_loaded_bytes (" + std::to_string(options_.max_loaded_bytes) +
            "); unload a version or raise the limit");
      }
    }
    rec.fingerprint = print;
    CountLoad(name, v.ok());
    if (!v.ok()) {
      rec.state = VersionState::kFailed;
      rec.reason = v.status().message();
      if (rec.loaded) rec.reason += " (the version loaded before keeps serving)";
      Log().warn("model {} version {} not loaded: {}", name, number, rec.reason);
      failures += (failures.empty() ? "" : "; ") + rec.reason;
      continue;
    }
    rec.state = VersionState::kReady;
    rec.reason.clear();
    rec.loaded = std::move(v).value();
    Log().info("model {} version {}: {} backend, {}, {} inputs, ready in {:.0f} ms", name,
               number, rec.loaded->model->backend(), rec.loaded->model->objective(),
               rec.loaded->schema.size(),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                         started)
                   .count());
  }
  if (Status s = SyncPolicy(name, record); !s.ok()) {
    failures += (failures.empty() ? "" : "; ") + s.message();
  }
  if (!failures.empty()) return FailedPrecondition(failures);
  return Status::Ok();
}

size_t Registry::LoadedBytes(const ModelVersion* except) const {
  size_t n = 0;
  for (const auto& [name, record] : models_) {
    for (const auto& [number, rec] : record.versions) {
      if (rec.loaded != nullptr && rec.loaded.get() != except &&
          rec.state != VersionState::kUnloaded) {
        n += rec.loaded->model->size_bytes();
      }
    }
  }
  return n;
}

Status Registry::SyncPolicy(const std::string& name, ModelRecord* record) {
  const fs::path path = fs::path(options_.path) / name / "serving.yaml";
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (record->has_policy) {
      Log().info("model {}: serving.yaml removed, the highest version serves", name);
    }
    record->has_policy = false;
    record->policy = {};
    return Status::Ok();
  }
  record->has_policy = true;
  auto loaded = [&](int64_t v) {
    auto it = record->versions.find(v);
    return it != record->versions.end() && it->second.loaded != nullptr &&
           it->second.state != VersionState::kUnloaded;
  };
  auto missing = [&](const ServingPolicy& p) -> std::optional<int64_t> {
    for (int64_t v : p.NamedVersions()) {
      if (!loaded(v)) return v;
    }
    return std::nullopt;
  };
  Result<ServingPolicy> parsed = [&]() -> Result<ServingPolicy> {
    std::ifstream in(path);
    if (!in) return FailedPrecondition("cannot read " + path.string());
    std::stringstream text;
    text << in.rdbuf();
    ASSIGN_OR_RETURN(ServingPolicy p, ParseServingPolicy(text.str(), path.string()));
    if (auto v = missing(p)) {
      return FailedPrecondition(path.string() + " names version " + std::to_string(*v) +
                                ", which is not loaded");
    }
    return p;
  }();
  if (parsed.ok()) {
    if (record->policy_state != VersionState::kReady || !record->policy_reason.empty()) {
      Log().info("model {}: serving.yaml in force", name);
    }
    record->policy = std::move(parsed).value();
    record->policy_state = VersionState::kReady;
    record->policy_reason.clear();
    return Status::Ok();
  }
  const bool keep = !missing(record->policy);
  if (!keep) record->policy = {};
  record->policy_state = VersionState::kFailed;
  record->policy_reason = parsed.status().message() +
                          (keep ? " (the policy before stays in force)"
                                : " (no policy in force: the highest version serves)");
  Log().warn("model {}: {}", name, record->policy_reason);
  return FailedPrecondition(record->policy_reason);
}

std::vector<PolicyStatus> Registry::Policies() const {
  std::lock_guard lock(index_mu_);
  return policies_;
}

Status Registry::Publish() {
  std::vector<ModelEntry> entries;
  for (const auto& [name, record] : models_) {
    if (record.unloaded) continue;
    ModelEntry& e = entries.emplace_back();
    e.name = name;
    e.policy = record.policy;
    for (const auto& [number, rec] : record.versions) {
      if (rec.loaded != nullptr && rec.state != VersionState::kUnloaded) {
        e.versions.emplace(number, rec.loaded);
      }
    }
  }
  ASSIGN_OR_RETURN(auto repo, ModelRepository::Build(std::move(entries), options_.default_model,
                                                     options_.path, /*live=*/true));
  {
    std::lock_guard lock(current_mu_);
    if (current_ != nullptr) retired_.push_back(std::move(current_));
    current_ = std::move(repo);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  PublishIndex();
  return Status::Ok();
}

void Registry::PublishIndex() {
  std::vector<VersionStatus> index;
  std::vector<PolicyStatus> policies;
  for (const auto& [name, record] : models_) {
    for (const auto& [number, rec] : record.versions) {
      index.push_back({name, number, rec.state, rec.reason,
                       rec.loaded ? rec.loaded->model->size_bytes() : 0});
    }
    if (record.has_policy) {
      policies.push_back({name, record.policy_state, record.policy_reason, record.policy});
    }
  }
  std::lock_guard lock(index_mu_);
  index_ = std::move(index);
  policies_ = std::move(policies);
}

void Registry::CountLoad(const std::string& model, bool ok) {
  if (options_.metrics == nullptr) return;
  observability::Counter*& c = load_counters_[{model, ok}];
  if (c == nullptr) {
    c = options_.metrics->AddCounter("rtml_model_loads_total",
                                     "Model version loads (start, poll, load API), by outcome.",
                                     {{"model", model}, {"outcome", ok ? "ok" : "failed"}});
  }
  c->Inc();
}

Status Registry::LoadModel(std::string_view name_view) {
  const std::string name(name_view);
  std::lock_guard lock(mu_);
  std::error_code ec;
  if (!fs::is_directory(fs::path(options_.path) / name, ec)) {
    return NotFound("the model repository " + options_.path + " has no folder '" + name + "'",
                    "unknown_model");
  }
  ModelRecord& record = models_[name];
  record.unloaded = false;
  for (auto& [number, rec] : record.versions) {  // an explicit load retries failures
    if (rec.state == VersionState::kFailed) rec.fingerprint.clear();
  }
  Status synced = SyncModel(name, &record);
  RETURN_IF_ERROR(Publish());
  return synced;
}

Status Registry::UnloadModel(std::string_view name_view) {
  const std::string name(name_view);
  std::lock_guard lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.unloaded) {
    return NotFound("model '" + name + "' is not loaded", "unknown_model");
  }
  it->second.unloaded = true;
  for (auto& [number, rec] : it->second.versions) {
    rec = VersionRecord{.state = VersionState::kUnloaded, .reason = "unloaded by request"};
  }
  Log().info("model {} unloaded", name);
  return Publish();  // also refreshes the index
}

Status Registry::Rescan() {
  std::lock_guard lock(mu_);
  auto names = ListModelDirs(options_.path);
  if (!names.ok()) return names.status();
  std::string failures;
  for (auto& [name, record] : models_) {  // folders that vanished
    if (std::find(names->begin(), names->end(), name) == names->end() && !record.unloaded) {
      Status s = SyncModel(name, &record);
      (void)s;  // nothing to load: every version unloads
    }
  }
  for (const std::string& name : *names) {
    ModelRecord& record = models_[name];
    if (record.unloaded) continue;
    if (Status s = SyncModel(name, &record); !s.ok()) {
      failures += (failures.empty() ? "" : "; ") + s.message();
    }
  }
  RETURN_IF_ERROR(Publish());
  if (!failures.empty()) return FailedPrecondition(failures);
  return Status::Ok();
}

std::vector<VersionStatus> Registry::Index() const {
  std::lock_guard lock(index_mu_);
  return index_;
}

void Registry::Reap() {
  std::vector<std::shared_ptr<const ModelRepository>> unused;
  {
    std::lock_guard lock(current_mu_);
    auto held = std::partition(retired_.begin(), retired_.end(),
                               [](const auto& r) { return r.use_count() > 1; });
    unused.assign(std::make_move_iterator(held), std::make_move_iterator(retired_.end()));
    retired_.erase(held, retired_.end());
  }
  // `unused` goes out of scope here, off the lock: its versions are freed on
  // this thread (a version shared with the current snapshot lives on).
}

void Registry::BackgroundLoop() {
  LowerThisThreadPriority();
  using Clock = std::chrono::steady_clock;
  auto next_poll = Clock::now() + std::chrono::seconds(options_.poll_s);
  std::unique_lock lock(poll_mu_);
  while (!poll_cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_; })) {
    lock.unlock();
    Reap();
    if (options_.poll_s > 0 && Clock::now() >= next_poll) {
      Status s = Rescan();
      if (!s.ok()) Log().debug("poll: {}", s.message());
      next_poll = Clock::now() + std::chrono::seconds(options_.poll_s);
    }
    lock.lock();
  }
}

}  // namespace rtml::model
