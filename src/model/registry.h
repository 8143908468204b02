// Registry: the live model repository. The folder stays the source of truth
// (a mounted volume or ConfigMap in production); the Registry reads it at
// start (every version must load, or start-up fails), then again for one
// model on LoadModel(), for all of them on Rescan() and every poll_s seconds,
// and publishes each change as a new immutable ModelRepository snapshot.
//
// A version folder counts once its model.yaml is present (so writers put the
// model file in first, or move the whole folder in). A new or changed version
// is loaded, checked against its model.yaml, warmed up (rows generated from
// its schema through the model) and prepared by the serving side (metrics,
// feature-service resolution: VersionPreparer) off the serving threads; only
// then is a snapshot holding it published. A version that fails any step is
// FAILED with the reason and changes nothing: what served before keeps
// serving. A removed version folder unloads; a version is changed when a file
// in its folder changed size or modification time.
//
// Readers hold a snapshot (std::shared_ptr) for as long as they use it: a
// request or a stream batch finishes on the versions it started with. A
// replaced snapshot is kept by the Registry until nobody else holds it and
// then freed on the Registry's reaper thread, never on a serving thread
// (freeing a model's arrays mid-request was a latency spike). Loads and the
// reaper run at a lower CPU priority (nice 10) than the serving threads.
// Thread-safety: Current(), generation() and Index() from any thread;
// LoadModel(), UnloadModel() and Rescan() from any thread, one at a time
// (they serialize on an internal mutex and may take as long as loading does).
// Ownership: borrows the preparer, which must outlive the Registry.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "model/repository.h"
#include "observability/metrics.h"

namespace rtml::model {

struct RegistryOptions {
  std::string path;           // the repository folder
  std::string default_model;  // behind POST /predict; empty: the only model
  int poll_s = 0;             // rescan the folder this often; 0: only on request
  size_t max_loaded_bytes = 0;  // refuse a load that would hold more models; 0: no limit
  // Where rtml_model_loads_total{model,outcome} goes; null: not counted.
  observability::Registry* metrics = nullptr;
};

// What the serving side builds for a version before it may serve (its
// metrics, its feature-service resolution). A failure refuses the version.
class VersionPreparer {
 public:
  virtual ~VersionPreparer() = default;
  // Returns the object published as ModelVersion::serving.
  virtual Result<std::shared_ptr<const void>> Prepare(const ModelVersion& v) = 0;
};

enum class VersionState { kLoading, kReady, kFailed, kUnloaded };
std::string_view VersionStateName(VersionState s);  // "LOADING", "READY", ...

struct VersionStatus {
  std::string model;
  int64_t version = 0;
  VersionState state = VersionState::kLoading;
  std::string reason;  // why it FAILED, or what unloaded it
  size_t size_bytes = 0;  // memory of the loaded version (0 when none is loaded)
};

// A model's serving.yaml: READY when in force, FAILED (with the reason)
// when the file does not parse or names a version that is not loaded; then
// the previous policy stays in force if it still can, else none.
struct PolicyStatus {
  std::string model;
  VersionState state = VersionState::kReady;
  std::string reason;
  ServingPolicy policy;  // the one in force
};

// Rows generated from a schema for warming a version up: each input at its
// default, else the middle of its bounds, else a bound, else 0.
std::vector<float> WarmupRows(const schema::InputSchema& schema, size_t n_rows);

class Registry {
 public:
  // Reads the folder and loads every version (failing, naming the version,
  // when one does not load), then starts polling when poll_s > 0.
  static Result<std::unique_ptr<Registry>> Open(RegistryOptions options,
                                                VersionPreparer* preparer);
  ~Registry();

  // The snapshot serving now; never null after Open().
  std::shared_ptr<const ModelRepository> Current() const;
  // Incremented by every publish: readers that cache a snapshot per thread
  // refresh it when this changes.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Re-reads one model's folder: new versions load, changed ones reload,
  // removed ones unload. NotFound when the repository has no such folder.
  // A version that fails is reported in Index() and in the returned Status
  // (FailedPrecondition naming it); the others still apply.
  Status LoadModel(std::string_view name);
  // Stops serving every version of `name` until the next LoadModel(name)
  // (polling does not bring it back). NotFound when nothing of it is loaded.
  Status UnloadModel(std::string_view name);
  // Re-reads every model folder (what each poll does); unloaded models stay so.
  Status Rescan();
  // Every model and version seen on disk or loaded, with its state (LOADING
  // while a load runs). Never waits for a load.
  std::vector<VersionStatus> Index() const;
  // The models that have a serving.yaml, and its state.
  std::vector<PolicyStatus> Policies() const;
  const RegistryOptions& options() const { return options_; }

 private:
  struct VersionRecord {
    VersionState state = VersionState::kLoading;
    std::string reason;
    std::string fingerprint;  // sizes and mtimes of the folder's files
    std::shared_ptr<const ModelVersion> loaded;  // the one serving, if any
  };
  struct ModelRecord {
    std::map<int64_t, VersionRecord> versions;
    bool unloaded = false;  // by UnloadModel: ignored until LoadModel
    bool has_policy = false;   // a serving.yaml exists
    ServingPolicy policy;      // in force
    VersionState policy_state = VersionState::kReady;
    std::string policy_reason;
  };

  Registry(RegistryOptions options, VersionPreparer* preparer)
      : options_(std::move(options)), preparer_(preparer) {}
  // REQUIRES: mu_ held. Syncs one model with its folder; returns the failures.
  Status SyncModel(const std::string& name, ModelRecord* record);
  // REQUIRES: mu_ held, versions synced. Reads the model's serving.yaml.
  Status SyncPolicy(const std::string& name, ModelRecord* record);
  // REQUIRES: mu_ held. Bytes of every loaded version but `except`.
  size_t LoadedBytes(const ModelVersion* except) const;
  Result<std::shared_ptr<const ModelVersion>> LoadVersion(const std::string& dir,
                                                          const std::string& name,
                                                          int64_t version);
  // REQUIRES: mu_ held. Publishes a snapshot of what is READY.
  Status Publish();
  // REQUIRES: mu_ held. Copies the states for Index().
  void PublishIndex();
  void CountLoad(const std::string& model, bool ok);
  // The poller's and reaper's thread: rescans every poll_s (when set) and
  // frees retired snapshots nobody holds, every 200 ms.
  void BackgroundLoop();
  void Reap();

  const RegistryOptions options_;
  VersionPreparer* preparer_;
  mutable std::mutex mu_;  // serializes changes; guards models_
  std::map<std::string, ModelRecord> models_;
  mutable std::mutex index_mu_;  // guards index_ (held for a copy)
  std::vector<VersionStatus> index_;
  std::vector<PolicyStatus> policies_;
  std::map<std::pair<std::string, bool>, observability::Counter*> load_counters_;  // mu_
  mutable std::mutex current_mu_;  // guards current_ and retired_
  std::shared_ptr<const ModelRepository> current_;
  std::vector<std::shared_ptr<const ModelRepository>> retired_;  // replaced, maybe still held
  std::atomic<uint64_t> generation_{0};
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;  // GUARDED_BY(poll_mu_)
  std::thread background_;
};


}  // namespace rtml::model
