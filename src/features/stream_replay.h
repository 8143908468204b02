// StreamReplay: stream feature views offline, for training sets and for
// checking served values. It reads a view's events file (source.path: the
// topic's events kept as JSON Lines or CSV, in topic order per entity) and
// replays it with the online code (StreamEventReader, AddEvent,
// EntityWindows::Read), so the values are the ones serving gives.
//
// A query asks for an entity's outputs at a time, after a prefix of the log:
//  - for the log's own rows (a training set built from the events), row i is
//    read before event i is added, as the stream worker scores an event
//    before adding it;
//  - for other rows (labels with timestamps), after every event that comes
//    before the first event at or after the row's time (for a log in time
//    order: the events before that time);
//  - for a served-values record, after the entity's first `seen` events.
// Bad rows of the events file are counted and left out, as the worker
// dead-letters them.
// Thread-safety: immutable after Load().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "features/definitions.h"
#include "features/online_reader.h"
#include "features/stream_view.h"

namespace rtml::features {

class StreamReplay {
 public:
  static Result<StreamReplay> Load(const Definitions& defs, const FeatureView& view);

  struct Query {
    std::string entity_key;
    int64_t at_us = 0;
    size_t position = 0;  // read after the entity's events in file rows [0, position)
    uint64_t seen = UINT64_MAX;  // or: after the entity's first `seen` events
  };
  struct Answer {
    bool found = false;  // the entity had events before the read
    uint64_t seen = 0;
    std::vector<double> outputs;  // layout order; NaN: none
  };
  // The position of a time: the file row of the first event at or after it
  // (SIZE_MAX: none, so the whole log is before it).
  size_t PositionAt(int64_t at_us) const;
  std::vector<Answer> Run(std::span<const Query> queries) const;

  const FeatureView& view() const { return *view_; }
  size_t events() const { return events_.size(); }
  size_t bad_rows() const { return bad_rows_; }
  const std::string& first_bad_row() const { return first_bad_; }

 private:
  const FeatureView* view_ = nullptr;
  std::vector<StreamEvent> events_;  // file order; invalid rows are absent
  std::vector<size_t> row_of_;       // the file row of each event
  std::unordered_map<std::string, std::vector<size_t>> by_entity_;  // event indexes
  std::vector<int64_t> prefix_max_us_;  // the latest event time up to each event
  size_t bad_rows_ = 0;
  std::string first_bad_;
};

// Compares a served-values log (features/served_log.h) with the replay of
// the views' events files: every record is replayed and its values compared
// exactly. Returns the records checked and, for each mismatch (first 20),
// the served and replayed records.
struct ReplayReport {
  size_t records = 0;
  size_t mismatches = 0;
  std::vector<std::string> examples;
};
Result<ReplayReport> ReplayServedLog(const Definitions& defs, const std::string& log_path);

}  // namespace rtml::features
