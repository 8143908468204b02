// Offline retrieval for training: a point-in-time correct join of entity rows
// (join keys + an event timestamp each) with feature views' offline sources.
// For each entity row and feature, the value is the latest source record at
// or before the row's timestamp, and null when there is none or it is older
// than the view's TTL, exactly what the online store would have answered at
// that moment (the historical test checks the two agree).
// Thread-safety: one call at a time per object; no shared state.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "features/definitions.h"
#include "features/online_reader.h"
#include "features/online_store.h"

namespace rtml::features {

struct HistoricalOptions {
  std::string entities_path;  // CSV or JSON Lines with the join keys and a timestamp
  std::string timestamp_field = "event_timestamp";
  std::string out_path;  // CSV: the entity columns, then one column per feature
};

struct HistoricalResult {
  size_t rows = 0;
  size_t values = 0;      // PRESENT
  size_t not_found = 0;   // NOT_FOUND or NULL_VALUE
  size_t too_old = 0;     // OUTSIDE_MAX_AGE
};

// Joins `refs` onto the entity rows and writes out_path.
Result<HistoricalResult> GetHistoricalFeatures(const Definitions& defs,
                                               const std::vector<FeatureRef>& refs,
                                               const HistoricalOptions& options);

// The point-in-time lookup itself, for tests and callers with rows in memory:
// per view, records sorted by entity and time.
class PointInTimeIndex {
 public:
  // Loads every view's offline source file that `refs` need.
  static Result<PointInTimeIndex> Build(const Definitions& defs,
                                        const std::vector<FeatureRef>& refs);
  // The value of refs[ref] for the entity at time `ts_us` (as Get() would
  // answer online at that time after materializing everything up to it).
  OnlineReader::Cell Lookup(size_t ref, const std::string& entity_key, int64_t ts_us) const;

 private:
  struct Row {
    int64_t ts_us;
    std::vector<EncodedValue> values;
  };
  const Definitions* defs_ = nullptr;
  std::vector<FeatureRef> refs_;
  // view index -> entity key -> rows sorted by time (last write wins on ties)
  std::vector<std::unordered_map<std::string, std::vector<Row>>> by_view_;
};

}  // namespace rtml::features
