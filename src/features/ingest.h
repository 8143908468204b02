// Ingestion: turning rows from a push request, an offline file or a stream
// into typed, validated records for one feature view, and writing them.
//
// Rows arrive as RawValue cells aligned with named columns (the view's join
// keys, its timestamp field, its features; other columns are ignored). A row
// with a bad value (wrong type, entity key of the wrong type, missing or
// unparseable timestamp) is rejected with its row number and reason; the
// other rows of the batch still go in. Writes are last-writer-wins.
// Thread-safety: a ViewIngestor is used by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "common/status.h"
#include "features/definitions.h"
#include "features/online_store.h"

namespace rtml::features {

// A value as read from JSON (typed) or from CSV (text, typed by the column's
// dtype when encoded).
struct RawValue {
  enum class Kind { kNull, kNumber, kBool, kString, kText, kOther };
  Kind kind = Kind::kNull;
  double number = 0;
  bool boolean = false;
  std::string text;  // kString (JSON string) or kText (CSV field)
};

struct Rejection {
  size_t row = 0;  // 0-based row number in the batch or file (data rows, header excluded)
  std::string column;
  std::string reason;
};

struct IngestResult {
  size_t rows = 0;
  size_t written = 0;
  size_t stale = 0;           // older than the stored value: skipped
  size_t outside_window = 0;  // event time outside [start, end): skipped
  size_t rejected = 0;
  std::vector<Rejection> rejections;  // the first kMaxRejections
  static constexpr size_t kMaxRejections = 100;
  void Reject(Rejection r);
};

// A JSON value as a RawValue (arrays and objects become kOther).
RawValue RawFromJson(simdjson::dom::element e);

Result<EncodedValue> EncodeValue(ValueType t, const RawValue& v);
Result<std::string> EncodeJoinKey(ValueType t, const RawValue& v);
Result<int64_t> EventTime(const RawValue& v);

class ViewIngestor {
 public:
  // Maps `columns` to the view's roles; fails naming a missing join key,
  // timestamp or feature column.
  static Result<ViewIngestor> Create(const Definitions& defs, const FeatureView& view,
                                     std::vector<std::string> columns);

  // Only rows with start_us <= event time < end_us are kept.
  void SetWindow(int64_t start_us, int64_t end_us) {
    start_us_ = start_us;
    end_us_ = end_us;
  }
  const std::vector<std::string>& ignored_columns() const { return ignored_; }

  // Validates one row (cells aligned with the columns) and queues it.
  void Add(size_t row_number, std::span<const RawValue> cells, IngestResult* result);
  // Writes what is queued. Store errors fail the flush (nothing is lost
  // silently: the caller reports them).
  Status Flush(StoreSession& session, IngestResult* result);
  size_t pending() const { return pending_.size(); }
  // Hands over the queued records instead of writing them (offline use).
  std::vector<WriteRecord> TakePending() {
    std::vector<WriteRecord> out = std::move(pending_);
    pending_.clear();
    return out;
  }

 private:
  const FeatureView* view_ = nullptr;
  std::vector<std::string> columns_;
  std::vector<int> key_columns_;      // per view entity
  std::vector<ValueType> key_types_;
  std::vector<std::string> key_names_;
  int ts_column_ = -1;
  std::vector<int> feature_columns_;  // per view feature
  std::vector<std::string> ignored_;
  int64_t start_us_ = INT64_MIN;
  int64_t end_us_ = INT64_MAX;
  std::vector<WriteRecord> pending_;
};

// Reads an offline source file (CSV with a header row, or JSON Lines: one
// object per line), calling `row` for each data row with the column names and
// cells. `progress` (optional) gets bytes read so far and the file size.
Status ReadSourceFile(const std::string& path,
                      const std::function<Status(const std::vector<std::string>& columns,
                                                 size_t row_number,
                                                 std::span<const RawValue> cells)>& row,
                      const std::function<void(size_t, size_t)>& progress = {});

// Splits one CSV record (RFC 4180 quoting). Returns false on a broken quote.
bool SplitCsvLine(std::string_view line, std::vector<std::string>* fields);

}  // namespace rtml::features
