// OnlineReader: Feast's get_online_features over an OnlineStore.
//
// Built once for a list of feature references (a feature service, or the
// features of a request): it groups them by view and works out which join
// keys the caller must supply. Read() then fetches every view for every row
// in one StoreSession::Read (one round trip), and Get() gives each (row,
// feature) its value and Feast status: PRESENT, NOT_FOUND (no record),
// NULL_VALUE (record without that value) or OUTSIDE_MAX_AGE (older than the
// view's TTL at `now`).
// A stream feature view's features are computed at `now` from the entity's
// stored aggregation state: count, sum and count_distinct are PRESENT (0
// for an entity with no events); the others are NULL_VALUE when no event
// falls in their window and NOT_FOUND for an entity never seen.
// Thread-safety: immutable after Create(); each thread passes its own Scratch.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "features/definitions.h"
#include "features/online_store.h"
#include "features/served_log.h"
#include "features/stream_view.h"

namespace rtml::features {

enum class FeatureStatus { kPresent, kNotFound, kNullValue, kOutsideMaxAge };
std::string_view FeatureStatusName(FeatureStatus s);

class OnlineReader {
 public:
  // A planned stream view's rows: each entity's state, and its outputs at
  // the time they were last asked for.
  struct AggregateRows {
    std::vector<std::optional<StreamState>> states;  // per row; nullopt: no events yet
    std::vector<int64_t> read_at_us;                 // per row; INT64_MIN: not computed
    std::vector<double> outputs;                     // per row, n outputs each
    std::vector<EncodedValue> text;                  // outputs encoded, as Cell::value
  };
  struct Scratch {
    std::vector<std::vector<std::string>> keys;       // per planned view: entity key per row
    std::vector<std::vector<StoredRecord>> records;   // per planned view: record per row
    std::vector<ReadRequest> requests;
    mutable std::vector<AggregateRows> aggregates;    // per planned view (stream views)
  };
  struct Cell {
    FeatureStatus status = FeatureStatus::kNotFound;
    int64_t event_ts_us = 0;
    const EncodedValue* value = nullptr;  // set when PRESENT; owned by the Scratch
  };

  // Fails if a reference is unknown or its view is not online.
  // With a served-values log, sampled reads of stream views are recorded.
  static Result<OnlineReader> Create(const Definitions& defs, std::vector<FeatureRef> refs,
                                     const ServedLog* served_log = nullptr);

  const Definitions& definitions() const { return *defs_; }
  const std::vector<FeatureRef>& refs() const { return refs_; }
  // Join keys the caller supplies per row, in this order.
  const std::vector<std::string>& join_keys() const { return join_keys_; }
  ValueType join_key_type(size_t i) const { return join_key_types_[i]; }

  // REQUIRES: join_values.size() == n_rows * join_keys().size() (canonical
  // text: decimal for int64 keys).
  Status Read(StoreSession& session, size_t n_rows, std::span<const std::string> join_values,
              Scratch* scratch) const;
  // Read() in two halves around the store read, for a caller that issues it
  // itself (AsyncReads): Plan() fills scratch->requests; once they are read,
  // Decode() makes the stream views' states from the records.
  void Plan(size_t n_rows, std::span<const std::string> join_values, Scratch* scratch) const;
  void Decode(size_t n_rows, Scratch* scratch) const;
  // The value and status of refs()[ref] for `row` after Read().
  Cell Get(const Scratch& scratch, size_t row, size_t ref, int64_t now_us) const;

 private:
  Cell GetAggregate(const Scratch& s, size_t plan, size_t row, int feature, int64_t now_us) const;

  struct ViewPlan {
    int view = 0;
    const StreamAggregation* aggregation = nullptr;  // a stream view
    std::vector<int> key_columns;  // positions in join_keys_, in the view's entity order
  };
  struct RefPlan {
    int plan = 0;     // index into plans_
    int feature = 0;  // index into the view's features
  };

  const Definitions* defs_ = nullptr;
  const ServedLog* served_log_ = nullptr;
  std::vector<FeatureRef> refs_;
  std::vector<std::string> join_keys_;
  std::vector<ValueType> join_key_types_;
  std::vector<ViewPlan> plans_;
  std::vector<RefPlan> ref_plans_;
};

// How one output of a stream view reads, online and offline alike:
// `outputs` is the entity's outputs (layout order) or null when it has no
// events; sets *text when PRESENT.
FeatureStatus AggregateOutput(const FeatureView& view, int feature, const double* outputs,
                              EncodedValue* text);

// Decodes a stored value of type `t` as a model input (bool 0/1; strings fail).
Result<double> DecodeNumeric(ValueType t, const std::string& encoded);

}  // namespace rtml::features
