// Stream feature views: windowed aggregations of a topic's events per entity
// (issue 11), declared in features.yaml beside feature views:
//
//   stream_feature_views:
//     - name: user_txn
//       entities: [user]
//       source: {kafka_topic: ml-features, timestamp_field: event_time,
//                path: data/transactions.jsonl}   # the events kept as a file, for training
//       allowed_lateness_s: 300
//       aggregations:
//         - {column: amount, function: count, windows: [1h, 24h]}   # amount_count_1h, ...
//         - {column: amount, function: max, windows: [1h], tile: 1m}
//         - {column: merchant, function: count_distinct, windows: [24h], as: merchants_24h}
//         - {column: amount, function: last_n, n: 3}                # amount_last_3_1 .. _3
//         - {column: event_time, function: last}                    # seconds_since_last
//
// Each becomes a FeatureView whose features are the aggregation outputs (in
// the layout's output order), so feature services name them like stored
// features ("user_txn:amount_count_1h"). An empty kafka_topic means the
// topic of the scored events.
//
// This header also holds what the online worker and the offline replay
// share, so both compute the same values by construction: pulling an
// event's entity key, time and columns out of JSON or a file row
// (StreamEventReader), and an entity's stored state (StreamState).
// Values: numbers (and booleans as 0/1); strings only for count and
// count_distinct (hashed); null or absent is not counted for that column.
// Thread-safety: StreamAggregation is immutable after parsing; a
// StreamEventReader is used by one thread at a time.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "features/definitions.h"
#include "config/yaml.h"
#include "features/ingest.h"
#include "features/online_store.h"
#include "features/window_aggregation.h"

namespace rtml::features {

struct StreamAggregation {
  std::vector<std::string> columns;      // event fields, by layout column
  std::vector<bool> strings_allowed;     // per column: only count / count_distinct read it
  int timestamp_column = -1;             // the column that is the event time, if aggregated
  std::shared_ptr<const WindowLayout> layout;
  int64_t allowed_lateness_us = 0;
  // Per output: count, sum and count_distinct read 0 for an entity without
  // events (the others have no value then).
  std::vector<bool> zero_when_empty;
  // How stores keep the state: one record per entity with the serialized
  // windows ("_state") and the number of events seen ("_seen", late included).
  FeatureView storage;
};

// Parses one entry of stream_feature_views (at `where`).
Result<FeatureView> ParseStreamView(const YAML::Node& node, const std::string& where,
                                    const std::vector<Entity>& entities,
                                    const std::string& base_dir);

// One event as the aggregations see it.
struct StreamEvent {
  std::string entity_key;   // EntityKeyOf(join values)
  int64_t ts_us = 0;
  std::vector<double> values;  // per layout column; NaN: absent
};

class StreamEventReader {
 public:
  StreamEventReader(const Definitions& defs, const FeatureView& view);
  // From a JSON event: fields at the top level or in its "features" object.
  // Errors name the field (reason "bad_aggregation_event").
  Status FromJson(simdjson::dom::element event, StreamEvent* out) const;
  // From a row of an events file (ReadSourceFile's columns and cells).
  Status FromRow(std::span<const std::string> columns, std::span<const RawValue> cells,
                 StreamEvent* out) const;
  const FeatureView& view() const { return *view_; }

 private:
  template <typename Lookup>
  Status Fill(const Lookup& find, StreamEvent* out) const;

  const FeatureView* view_;
  const StreamAggregation* agg_;
  std::vector<std::string> join_keys_;
  std::vector<ValueType> key_types_;
  mutable std::vector<std::string> parts_;
};

// An entity's aggregation state as stored: the windows and the count of
// events seen (the served-value replay uses it to know what a read saw).
struct StreamState {
  EntityWindows windows;
  uint64_t seen = 0;
};
// New, empty state for a view.
StreamState EmptyState(const StreamAggregation& agg);
// The stored record's values (storage view order) for a state.
std::vector<EncodedValue> EncodeState(const StreamState& s);
// REQUIRES: rec.found. Fails on a record of another layout.
Result<StreamState> DecodeState(const StreamAggregation& agg, const StoredRecord& rec);

// The meta key of a view's next offset for one partition of its topic.
std::string OffsetMetaKey(std::string_view view, std::string_view topic, int32_t partition);

}  // namespace rtml::features
