// FeatureStore: the feature definitions plus their online store, and Feast's
// HTTP contract over them, shared by the HTTP routes, the CLI and the Scorer.
//
//   push                  {"push_source_name" | "feature_view": name,
//                          "df": {"column": [values...], ...}, "to": "online"}
//                         -> {"written", "skipped_stale", "rejected": [{row, column, reason}]}
//   write_to_online_store {"feature_view_name": name, "df": {...}} -> as push, all or nothing
//   get_online_features   {"features": ["view:feature", ...] | "feature_service": name,
//                          "entities": {"join_key": [values...]}, "full_feature_names": bool}
//                         -> {"metadata": {"feature_names": [...]},
//                             "results": [{"values", "statuses", "event_timestamps"}, ...]}
//
// Feast's response is column-major: results[i] belongs to feature_names[i]
// (the join keys first), with one entry per entity row.
// Thread-safety: FeatureStore is immutable after Open(); callers pass their
// own StoreSession per thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "features/definitions.h"
#include "features/ingest.h"
#include "features/online_reader.h"
#include "features/online_store.h"
#include "features/served_log.h"

namespace rtml::features {

class FeatureStore {
 public:
  // Loads the definitions and opens the configured online store.
  static Result<std::unique_ptr<FeatureStore>> Open(const config::FeaturesConfig& config,
                                                    const Clock& clock = SystemClock::Get());
  // For tests: definitions and a store built by the caller.
  FeatureStore(Definitions defs, std::unique_ptr<OnlineStore> online, const Clock& clock);

  const Definitions& definitions() const { return defs_; }
  OnlineStore& online() const { return *online_; }
  const Clock& clock() const { return clock_; }
  // The sampled log of served stream feature values (null: none). Set
  // before readers are created.
  void set_served_log(std::unique_ptr<ServedLog> log) { served_log_ = std::move(log); }
  const ServedLog* served_log() const { return served_log_.get(); }

  // Feast push. Structural errors (unknown view, missing column, ragged
  // columns) fail the call; bad rows are rejected one by one in the result,
  // or, with all_or_nothing (Feast's own semantics), fail it naming them all.
  Status PushJson(std::string_view body, StoreSession& session, std::string* response,
                  bool all_or_nothing = false) const;
  // Feast's write-to-online-store ({"feature_view_name", "df"}, what the SDK's
  // remote online store sends for push and write_to_online_store): all rows
  // or none; a rejected row fails the call naming every rejection.
  Status WriteToOnlineStoreJson(std::string_view body, StoreSession& session,
                                std::string* response) const;
  // Feast get-online-features.
  Status GetOnlineFeaturesJson(std::string_view body, StoreSession& session,
                               std::string* response) const;

  // Records the definitions and their hash in the store's registry.
  Status Apply(StoreSession& session) const;
  // The registry entry as JSON, or nullopt if never applied.
  Result<std::optional<std::string>> Registry(StoreSession& session) const;

 private:
  Definitions defs_;
  std::unique_ptr<OnlineStore> online_;
  const Clock& clock_;
  std::unique_ptr<ServedLog> served_log_;
};

// Writes an ingestion summary as JSON (push responses, CLI output).
std::string IngestResultJson(const IngestResult& r, const std::vector<std::string>& ignored);

}  // namespace rtml::features
