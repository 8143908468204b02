#include "features/ingest.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <fstream>

#include "common/time_format.h"

namespace rtml::features {
namespace {

std::string KindName(RawValue::Kind k) {
  switch (k) {
    case RawValue::Kind::kNull: return "null";
    case RawValue::Kind::kNumber: return "a number";
    case RawValue::Kind::kBool: return "a boolean";
    case RawValue::Kind::kString: return "a string";
    case RawValue::Kind::kText: return "text";
    case RawValue::Kind::kOther: return "an array or object";
  }
  return "?";
}

Status WrongType(ValueType t, const RawValue& v) {
  std::string got = KindName(v.kind);
  if (v.kind == RawValue::Kind::kText || v.kind == RawValue::Kind::kString) {
    got += " '" + v.text.substr(0, 40) + "'";
  }
  return InvalidArgument("expected " + std::string(ValueTypeName(t)) + ", got " + got,
                         "wrong_type");
}

std::optional<double> TextNumber(std::string_view s) {
  double d = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return d;
}

bool IsNullText(const RawValue& v) {
  return v.kind == RawValue::Kind::kNull || (v.kind == RawValue::Kind::kText && v.text.empty());
}

}  // namespace

void IngestResult::Reject(Rejection r) {
  ++rejected;
  if (rejections.size() < kMaxRejections) rejections.push_back(std::move(r));
}

Result<EncodedValue> EncodeValue(ValueType t, const RawValue& v) {
  if (IsNullText(v)) return EncodedValue();
  const bool text = v.kind == RawValue::Kind::kText;
  switch (t) {
    case ValueType::kFloat: {
      std::optional<double> d = v.kind == RawValue::Kind::kNumber ? std::optional(v.number)
                                : text                           ? TextNumber(v.text)
                                                                 : std::nullopt;
      if (!d || !std::isfinite(*d)) return WrongType(t, v);
      return EncodedValue(EncodeFloat(*d));
    }
    case ValueType::kInt: {
      std::optional<double> d = v.kind == RawValue::Kind::kNumber ? std::optional(v.number)
                                : text                           ? TextNumber(v.text)
                                                                 : std::nullopt;
      if (!d || *d != std::trunc(*d) || std::fabs(*d) > 9.007199254740992e15) {
        return WrongType(t, v);
      }
      return EncodedValue(EncodeInt(static_cast<int64_t>(*d)));
    }
    case ValueType::kBool:
      if (v.kind == RawValue::Kind::kBool) return EncodedValue(EncodeBool(v.boolean));
      if (text && (v.text == "true" || v.text == "True" || v.text == "1")) return EncodedValue("1");
      if (text && (v.text == "false" || v.text == "False" || v.text == "0")) {
        return EncodedValue("0");
      }
      return WrongType(t, v);
    case ValueType::kString:
      if (v.kind == RawValue::Kind::kString || text) return EncodedValue(v.text);
      return WrongType(t, v);
  }
  return WrongType(t, v);
}

Result<std::string> EncodeJoinKey(ValueType t, const RawValue& v) {
  if (IsNullText(v)) return InvalidArgument("entity key is missing", "missing_entity_key");
  auto e = EncodeValue(t, v);
  if (!e.ok()) {
    return InvalidArgument("entity key must be " + std::string(ValueTypeName(t)) + ": " +
                               e.status().message(),
                           "bad_entity_key");
  }
  return **e;
}

Result<int64_t> EventTime(const RawValue& v) {
  switch (v.kind) {
    case RawValue::Kind::kNumber: return EpochSecondsToMicros(v.number);
    case RawValue::Kind::kString:
    case RawValue::Kind::kText:
      if (v.text.empty()) break;
      return ParseTimestamp(v.text);
    default:
      break;
  }
  return InvalidArgument("event timestamp is missing", "missing_timestamp");
}

Result<ViewIngestor> ViewIngestor::Create(const Definitions& defs, const FeatureView& view,
                                          std::vector<std::string> columns) {
  ViewIngestor g;
  g.view_ = &view;
  auto find = [&](const std::string& name) {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == name) return static_cast<int>(i);
    }
    return -1;
  };
  for (int e : view.entities) {
    const Entity& entity = defs.entities()[e];
    const int c = find(entity.join_key);
    if (c < 0) {
      return InvalidArgument("no column '" + entity.join_key + "' (the join key of entity " +
                                 entity.name + ")",
                             "missing_column", entity.join_key);
    }
    g.key_columns_.push_back(c);
    g.key_types_.push_back(entity.dtype);
    g.key_names_.push_back(entity.join_key);
  }
  g.ts_column_ = find(view.source.timestamp_field);
  if (g.ts_column_ < 0) {
    return InvalidArgument("no column '" + view.source.timestamp_field +
                               "' (the view's event timestamp field)",
                           "missing_column", view.source.timestamp_field);
  }
  for (const Feature& f : view.features) {
    const int c = find(f.name);
    if (c < 0) {
      return InvalidArgument("no column '" + f.name + "' (a feature of view " + view.name + ")",
                             "missing_column", f.name);
    }
    g.feature_columns_.push_back(c);
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    const int c = static_cast<int>(i);
    const bool used = c == g.ts_column_ ||
                      std::count(g.key_columns_.begin(), g.key_columns_.end(), c) ||
                      std::count(g.feature_columns_.begin(), g.feature_columns_.end(), c);
    if (!used) g.ignored_.push_back(columns[i]);
  }
  g.columns_ = std::move(columns);
  return g;
}

void ViewIngestor::Add(size_t row_number, std::span<const RawValue> cells, IngestResult* result) {
  ++result->rows;
  if (cells.size() != columns_.size()) {
    result->Reject({row_number, "", "row has " + std::to_string(cells.size()) + " values for " +
                                        std::to_string(columns_.size()) + " columns"});
    return;
  }
  WriteRecord rec;
  std::vector<std::string> keys;
  for (size_t k = 0; k < key_columns_.size(); ++k) {
    auto key = EncodeJoinKey(key_types_[k], cells[key_columns_[k]]);
    if (!key.ok()) return result->Reject({row_number, key_names_[k], key.status().message()});
    keys.push_back(std::move(key).value());
  }
  rec.entity_key = EntityKeyOf(keys);
  auto ts = EventTime(cells[ts_column_]);
  if (!ts.ok()) {
    return result->Reject({row_number, view_->source.timestamp_field, ts.status().message()});
  }
  rec.event_ts_us = *ts;
  if (rec.event_ts_us < start_us_ || rec.event_ts_us >= end_us_) {
    ++result->outside_window;
    return;
  }
  for (size_t f = 0; f < feature_columns_.size(); ++f) {
    auto v = EncodeValue(view_->features[f].dtype, cells[feature_columns_[f]]);
    if (!v.ok()) {
      return result->Reject({row_number, view_->features[f].name, v.status().message()});
    }
    rec.values.push_back(std::move(v).value());
  }
  pending_.push_back(std::move(rec));
}

Status ViewIngestor::Flush(StoreSession& session, IngestResult* result) {
  if (pending_.empty()) return Status::Ok();
  WriteCounts counts;
  Status s = session.Write(*view_, pending_, &counts);
  result->written += counts.written;
  result->stale += counts.stale;
  pending_.clear();
  return s;
}

bool SplitCsvLine(std::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur.push_back(c);
      }
    } else if (c == '"' && cur.empty()) {
      quoted = true;
    } else if (c == ',') {
      fields->push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (quoted) return false;
  fields->push_back(std::move(cur));
  return true;
}

RawValue RawFromJson(simdjson::dom::element e) {
  RawValue v;
  switch (e.type()) {
    case simdjson::dom::element_type::NULL_VALUE: break;
    case simdjson::dom::element_type::BOOL:
      v.kind = RawValue::Kind::kBool;
      v.boolean = bool(e);
      break;
    case simdjson::dom::element_type::STRING:
      v.kind = RawValue::Kind::kString;
      v.text = std::string(std::string_view(e));
      break;
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
      v.kind = RawValue::Kind::kNumber;
      v.number = e.get_double().value_unsafe();
      break;
    default:
      v.kind = RawValue::Kind::kOther;
  }
  return v;
}

Status ReadSourceFile(
    const std::string& path,
    const std::function<Status(const std::vector<std::string>&, size_t,
                               std::span<const RawValue>)>& row,
    const std::function<void(size_t, size_t)>& progress) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return FailedPrecondition("cannot read source file '" + path + "'");
  const size_t size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  const bool jsonl = path.ends_with(".jsonl") || path.ends_with(".ndjson") ||
                     path.ends_with(".json");
  std::string line;
  std::vector<std::string> columns, fields;
  std::vector<RawValue> cells;
  size_t data_row = 0, line_no = 0, bytes = 0;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    ++line_no;
    bytes += line.size() + 1;
    if (progress && line_no % 4096 == 0) progress(bytes, size);
    if (line.empty() || line == "\r") continue;
    if (!jsonl) {
      if (!SplitCsvLine(line, &fields)) {
        return FailedPrecondition(path + ":" + std::to_string(line_no) + ": unterminated quote");
      }
      if (columns.empty()) {
        columns = fields;
        continue;
      }
      cells.assign(fields.size(), RawValue{});
      for (size_t i = 0; i < fields.size(); ++i) {
        cells[i].kind = RawValue::Kind::kText;
        cells[i].text = std::move(fields[i]);
      }
    } else {
      simdjson::dom::object obj;
      if (parser.parse(line).get(obj)) {
        // A malformed line is a rejected row, reported by the caller.
        cells.clear();
        RETURN_IF_ERROR(row(columns, data_row++, cells));
        continue;
      }
      if (columns.empty()) {
        for (auto [k, v] : obj) columns.emplace_back(k);
      }
      cells.assign(columns.size(), RawValue{});
      for (auto [k, v] : obj) {
        auto it = std::find(columns.begin(), columns.end(), k);
        if (it != columns.end()) cells[it - columns.begin()] = RawFromJson(v);
      }
    }
    RETURN_IF_ERROR(row(columns, data_row++, cells));
  }
  if (progress) progress(size, size);
  return Status::Ok();
}

}  // namespace rtml::features
