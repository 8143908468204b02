#include "features/historical.h"

#include <algorithm>
#include <fstream>

#include "features/ingest.h"

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

Result<HistoricalResult> GetHistoricalFeatures(const Definitions& defs,
                                               const std::vector<FeatureRef>& refs,
                                               const HistoricalOptions& o) {
  ASSIGN_OR_RETURN(PointInTimeIndex index, PointInTimeIndex::Build(defs, refs));
  ASSIGN_OR_RETURN(OnlineReader reader, OnlineReader::Create(defs, refs));
  std::ofstream out(o.out_path);
  if (!out) return FailedPrecondition("cannot write '" + o.out_path + "'");
  HistoricalResult result;
  std::vector<int> key_columns;
  int ts_column = -1;
  std::vector<std::string> parts;
  Status s = ReadSourceFile(o.entities_path, [&](const std::vector<std::string>& columns,
                                                 size_t row, std::span<const RawValue> cells) {
    if (ts_column < 0) {  // header: locate columns, write ours
      for (const std::string& k : reader.join_keys()) {
        auto it = std::find(columns.begin(), columns.end(), k);
        if (it == columns.end()) {
          return FailedPrecondition(o.entities_path + ": no column '" + k + "' (a join key)");
        }
        key_columns.push_back(static_cast<int>(it - columns.begin()));
      }
      auto it = std::find(columns.begin(), columns.end(), o.timestamp_field);
      if (it == columns.end()) {
        return FailedPrecondition(o.entities_path + ": no column '" + o.timestamp_field + "'");
      }
      ts_column = static_cast<int>(it - columns.begin());
      for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << CsvField(columns[i]);
      for (FeatureRef r : refs) out << "," << CsvField(defs.views()[r.view].features[r.feature].name);
      out << "\n";
    }
    if (cells.size() != columns.size()) {
      return FailedPrecondition(o.entities_path + ": row " + std::to_string(row) +
                                " does not match the header");
    }
    ASSIGN_OR_RETURN(int64_t ts, EventTime(cells[ts_column]));
    for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << CsvField(CellText(cells[i]));
    for (size_t f = 0; f < refs.size(); ++f) {
      parts.clear();
      const FeatureView& view = defs.views()[refs[f].view];
      for (int e : view.entities) {
        const std::string& jk = defs.entities()[e].join_key;
        const size_t k = std::find(reader.join_keys().begin(), reader.join_keys().end(), jk) -
                         reader.join_keys().begin();
        ASSIGN_OR_RETURN(std::string key,
                         EncodeJoinKey(reader.join_key_type(k), cells[key_columns[k]]));
        parts.push_back(std::move(key));
      }
      const OnlineReader::Cell c = index.Lookup(f, EntityKeyOf(parts), ts);
      const bool is_float = view.features[refs[f].feature].dtype == ValueType::kFloat;
      out << ",";
      if (c.value) out << CsvField(**c.value) << (is_float ? FloatSuffix(**c.value) : "");
      ++(c.status == FeatureStatus::kPresent        ? result.values
         : c.status == FeatureStatus::kOutsideMaxAge ? result.too_old
                                                     : result.not_found);
    }
    out << "\n";
    ++result.rows;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return result;
}

}  // namespace rtml::features
