#include "features/historical.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "features/ingest.h"
#include "features/stream_replay.h"

namespace rtml::features {
namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CellText(const RawValue& v) {
  switch (v.kind) {
    case RawValue::Kind::kNull: return "";
    case RawValue::Kind::kNumber: return EncodeFloat(v.number);
    case RawValue::Kind::kBool: return v.boolean ? "true" : "false";
    default: return v.text;
  }
}

}  // namespace

Result<PointInTimeIndex> PointInTimeIndex::Build(const Definitions& defs,
                                                 const std::vector<FeatureRef>& refs) {
  PointInTimeIndex idx;
  idx.defs_ = &defs;
  idx.refs_ = refs;
  idx.by_view_.resize(defs.views().size());
  std::vector<bool> loaded(defs.views().size(), false);
  for (FeatureRef ref : refs) {
    if (loaded[ref.view]) continue;
    loaded[ref.view] = true;
    const FeatureView& view = defs.views()[ref.view];
    if (view.aggregation != nullptr) continue;  // replayed (StreamReplay)
    if (view.source.path.empty()) {
      return FailedPrecondition("feature view '" + view.name + "' has no offline source.path");
    }
    std::optional<ViewIngestor> ingestor;
    IngestResult result;
    auto& index = idx.by_view_[ref.view];
    // Reuse the ingestion rules (types, keys, timestamps) through a capturing store.
    Status s = ReadSourceFile(view.source.path, [&](const std::vector<std::string>& columns,
                                                    size_t row, std::span<const RawValue> cells) {
      if (!ingestor) {
        ASSIGN_OR_RETURN(ViewIngestor g, ViewIngestor::Create(defs, view, columns));
        ingestor.emplace(std::move(g));
      }
      ingestor->Add(row, cells, &result);
      return Status::Ok();
    });
    if (!s.ok()) return s.Annotate("feature view " + view.name);
    if (ingestor) {
      for (WriteRecord& r : ingestor->TakePending()) {
        index[r.entity_key].push_back({r.event_ts_us, std::move(r.values)});
      }
    }
    for (auto& [key, rows] : index) {
      std::stable_sort(rows.begin(), rows.end(),
                       [](const Row& a, const Row& b) { return a.ts_us < b.ts_us; });
    }
  }
  return idx;
}

OnlineReader::Cell PointInTimeIndex::Lookup(size_t ref, const std::string& entity_key,
                                            int64_t ts_us) const {
  OnlineReader::Cell c;
  const FeatureRef r = refs_[ref];
  const auto& index = by_view_[r.view];
  auto it = index.find(entity_key);
  if (it == index.end()) return c;
  const auto& rows = it->second;
  // The last row with ts <= ts_us (later duplicates of a timestamp win, as online).
  auto after = std::upper_bound(rows.begin(), rows.end(), ts_us,
                                [](int64_t t, const Row& row) { return t < row.ts_us; });
  if (after == rows.begin()) return c;
  const Row& row = *(after - 1);
  c.event_ts_us = row.ts_us;
  const FeatureView& view = defs_->views()[r.view];
  if (view.ttl_seconds > 0 && ts_us - row.ts_us > view.ttl_seconds * 1000000) {
    c.status = FeatureStatus::kOutsideMaxAge;
    return c;
  }
  if (!row.values[r.feature]) {
    c.status = FeatureStatus::kNullValue;
    return c;
  }
  c.status = FeatureStatus::kPresent;
  c.value = &row.values[r.feature];
  return c;
}

namespace {

// The join-key columns and timestamp column of an entity file's header.
struct EntityColumns {
  std::vector<int> keys;  // per reader join key
  int ts = -1;
};

Result<EntityColumns> LocateColumns(const OnlineReader& reader, const std::vector<std::string>& columns,
                                    const HistoricalOptions& o) {
  EntityColumns c;
  for (const std::string& k : reader.join_keys()) {
    auto it = std::find(columns.begin(), columns.end(), k);
    if (it == columns.end()) {
      return FailedPrecondition(o.entities_path + ": no column '" + k + "' (a join key)");
    }
    c.keys.push_back(static_cast<int>(it - columns.begin()));
  }
  auto it = std::find(columns.begin(), columns.end(), o.timestamp_field);
  if (it == columns.end()) {
    return FailedPrecondition(o.entities_path + ": no column '" + o.timestamp_field +
                              "' (set --timestamp-field)");
  }
  c.ts = static_cast<int>(it - columns.begin());
  return c;
}

Result<std::string> EntityKeyFor(const Definitions& defs, const OnlineReader& reader,
                                 const FeatureView& view, const EntityColumns& cols,
                                 std::span<const RawValue> cells) {
  std::vector<std::string> parts;
  for (int e : view.entities) {
    const std::string& jk = defs.entities()[e].join_key;
    const size_t k = std::find(reader.join_keys().begin(), reader.join_keys().end(), jk) -
                     reader.join_keys().begin();
    ASSIGN_OR_RETURN(std::string key, EncodeJoinKey(reader.join_key_type(k), cells[cols.keys[k]]));
    parts.push_back(std::move(key));
  }
  return EntityKeyOf(parts);
}

// The key of rows whose join key is missing or unusable: matches nothing.
const std::string kNoEntity("\x1f\x1f(none)");

bool SameFile(const std::string& a, const std::string& b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) && !ec;
}

// Every stream view the refs name, replayed for every entity row: per view
// index, the answers by row.
Result<std::unordered_map<int, std::vector<StreamReplay::Answer>>> ReplayStreams(
    const Definitions& defs, const std::vector<FeatureRef>& refs, const OnlineReader& reader,
    const HistoricalOptions& o) {
  std::unordered_map<int, std::vector<StreamReplay::Answer>> out;
  for (FeatureRef ref : refs) {
    const FeatureView& view = defs.views()[ref.view];
    if (view.aggregation == nullptr || out.count(ref.view) > 0) continue;
    ASSIGN_OR_RETURN(StreamReplay replay, StreamReplay::Load(defs, view));
    if (replay.bad_rows() > 0) {
      std::fprintf(stderr, "%s: %zu bad event row(s) left out, as the stream worker would (%s)\n",
                   view.name.c_str(), replay.bad_rows(), replay.first_bad_row().c_str());
    }
    // The events file itself as the entity rows: each row is read before it
    // is added, as the worker scores an event before adding it.
    const bool own_rows = SameFile(o.entities_path, view.source.path);
    std::vector<StreamReplay::Query> queries;
    EntityColumns cols;
    Status s = ReadSourceFile(o.entities_path, [&](const std::vector<std::string>& columns,
                                                   size_t row, std::span<const RawValue> cells) {
      if (cols.ts < 0) {
        ASSIGN_OR_RETURN(cols, LocateColumns(reader, columns, o));
      }
      if (cells.size() != columns.size()) return Status::Ok();  // the writing pass says so
      // A row without a usable key has no values (NOT_FOUND), as online.
      std::string key = EntityKeyFor(defs, reader, view, cols, cells).value_or(kNoEntity);
      ASSIGN_OR_RETURN(int64_t ts, EventTime(cells[cols.ts]));
      queries.push_back({std::move(key), ts, own_rows ? row : replay.PositionAt(ts)});
      return Status::Ok();
    });
    if (!s.ok()) return s;
    out[ref.view] = replay.Run(queries);
  }
  return out;
}

}  // namespace

Result<HistoricalResult> GetHistoricalFeatures(const Definitions& defs,
                                               const std::vector<FeatureRef>& refs,
                                               const HistoricalOptions& o) {
  ASSIGN_OR_RETURN(PointInTimeIndex index, PointInTimeIndex::Build(defs, refs));
  ASSIGN_OR_RETURN(OnlineReader reader, OnlineReader::Create(defs, refs));
  std::ofstream out(o.out_path);
  if (!out) return FailedPrecondition("cannot write '" + o.out_path + "'");
  ASSIGN_OR_RETURN(auto streams, ReplayStreams(defs, refs, reader, o));
  HistoricalResult result;
  EntityColumns cols;
  size_t n = 0;  // entity rows written
  EncodedValue text;
  Status s = ReadSourceFile(o.entities_path, [&](const std::vector<std::string>& columns,
                                                 size_t row, std::span<const RawValue> cells) {
    if (cols.ts < 0) {  // header: locate columns, write ours
      ASSIGN_OR_RETURN(cols, LocateColumns(reader, columns, o));
      for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << CsvField(columns[i]);
      for (FeatureRef r : refs) out << "," << CsvField(defs.views()[r.view].features[r.feature].name);
      out << "\n";
    }
    if (cells.size() != columns.size()) {
      return FailedPrecondition(o.entities_path + ": row " + std::to_string(row) +
                                " does not match the header");
    }
    ASSIGN_OR_RETURN(int64_t ts, EventTime(cells[cols.ts]));
    for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << CsvField(CellText(cells[i]));
    for (size_t f = 0; f < refs.size(); ++f) {
      const FeatureView& view = defs.views()[refs[f].view];
      const bool is_float = view.features[refs[f].feature].dtype == ValueType::kFloat;
      FeatureStatus status;
      const EncodedValue* value = nullptr;
      if (view.aggregation != nullptr) {
        const StreamReplay::Answer& a = streams[refs[f].view][n];
        status = AggregateOutput(view, refs[f].feature, a.found ? a.outputs.data() : nullptr,
                                 &text);
        if (status == FeatureStatus::kPresent) value = &text;
      } else {
        const std::string key = EntityKeyFor(defs, reader, view, cols, cells).value_or(kNoEntity);
        const OnlineReader::Cell c = index.Lookup(f, key, ts);
        status = c.status;
        value = c.value;
      }
      out << ",";
      if (value) out << CsvField(**value) << (is_float ? FloatSuffix(**value) : "");
      ++(status == FeatureStatus::kPresent        ? result.values
         : status == FeatureStatus::kOutsideMaxAge ? result.too_old
                                                   : result.not_found);
    }
    out << "\n";
    ++result.rows;
    ++n;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return result;
}

}  // namespace rtml::features
