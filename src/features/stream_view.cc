#include "features/stream_view.h"

#include <cmath>
#include <limits>
#include <set>

#include "common/hash.h"
#include "common/time_format.h"

namespace rtml::features {
using config::CheckKeys;
using config::Read;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Status Bad(std::string what, const std::string& field) {
  return InvalidArgument(std::move(what), "bad_aggregation_event", field);
}

// A string as a number count_distinct can hash: exact for distinct strings
// up to 64-bit hash collisions, never NaN.
double StringToken(std::string_view s) { return static_cast<double>(Fnv1a64(s) >> 11); }

bool CountsOnly(AggFunction f) {
  return f == AggFunction::kCount || f == AggFunction::kCountDistinct;
}

ValueType OutputType(AggFunction f) {
  return CountsOnly(f) ? ValueType::kInt : ValueType::kFloat;
}

// One entry of `aggregations`, expanded to a spec per window.
Status ParseAggregation(const YAML::Node& n, const std::string& w, const std::string& ts_field,
                        StreamAggregation* agg, std::vector<AggregationSpec>* specs,
                        std::vector<Feature>* outputs) {
  RETURN_IF_ERROR(CheckKeys(n, w, {"column", "function", "windows", "tile", "as", "n",
                                   "description"}));
  std::string column, function, tile_text, as;
  std::vector<std::string> windows;
  int n_last = 0;
  RETURN_IF_ERROR(Read(n, w, "column", &column));
  RETURN_IF_ERROR(Read(n, w, "function", &function));
  RETURN_IF_ERROR(Read(n, w, "windows", &windows));
  RETURN_IF_ERROR(Read(n, w, "tile", &tile_text));
  RETURN_IF_ERROR(Read(n, w, "as", &as));
  RETURN_IF_ERROR(Read(n, w, "n", &n_last));
  if (column.empty()) return FailedPrecondition(w + ".column is required");
  auto f = ParseAggFunction(function);
  if (!f.ok()) return FailedPrecondition(w + ".function: " + f.status().message());
  AggFunction fn = *f;
  const bool on_time = column == ts_field;
  if (fn == AggFunction::kLast && on_time) fn = AggFunction::kSecondsSince;
  if (fn == AggFunction::kSecondsSince && !on_time) {
    return FailedPrecondition(w + ": seconds_since reads the timestamp field '" + ts_field + "'");
  }
  const bool windowed = fn != AggFunction::kLast && fn != AggFunction::kLastN &&
                        fn != AggFunction::kSecondsSince;
  if (windowed && windows.empty()) {
    return FailedPrecondition(w + ".windows: " + function + " needs at least one window (1h, 24h, ...)");
  }
  if (!windowed && !windows.empty()) {
    return FailedPrecondition(w + ".windows: " + function + " is over all time; drop windows");
  }
  if (fn == AggFunction::kLastN && (n_last < 1 || n_last > 100)) {
    return FailedPrecondition(w + ".n: last_n needs n from 1 to 100");
  }
  if (!as.empty() && windows.size() > 1) {
    return FailedPrecondition(w + ".as names one output: give one window per entry");
  }
  int64_t tile_us = 0;
  if (!tile_text.empty()) {
    auto t = ParseDuration(tile_text);
    if (!t.ok()) return FailedPrecondition(w + ".tile: " + t.status().message());
    tile_us = *t;
  }
  int col = -1;
  for (size_t c = 0; c < agg->columns.size(); ++c) {
    if (agg->columns[c] == column) col = static_cast<int>(c);
  }
  if (col < 0) {
    col = static_cast<int>(agg->columns.size());
    agg->columns.push_back(column);
    agg->strings_allowed.push_back(true);
    if (on_time) agg->timestamp_column = col;
  }
  if (!CountsOnly(fn) && fn != AggFunction::kSecondsSince) agg->strings_allowed[col] = false;
  auto add = [&](int64_t window_us, const std::string& window_text) {
    AggregationSpec s;
    s.column = col;
    s.function = fn;
    s.window_us = window_us;
    s.tile_us = tile_us;
    s.n = n_last;
    specs->push_back(s);
    std::string name = as;
    if (name.empty()) {
      name = fn == AggFunction::kSecondsSince ? "seconds_since_last"
             : fn == AggFunction::kLastN      ? column + "_last_" + std::to_string(n_last)
                                              : column + "_" + function;
      if (!window_text.empty()) name += "_" + window_text;
    }
    if (fn == AggFunction::kLastN) {
      for (int j = 1; j <= n_last; ++j) {
        outputs->push_back({name + "_" + std::to_string(j), ValueType::kFloat});
      }
    } else {
      outputs->push_back({name, OutputType(fn)});
    }
  };
  if (!windowed) {
    add(0, "");
    return Status::Ok();
  }
  for (const std::string& text : windows) {
    auto d = ParseDuration(text);
    if (!d.ok()) return FailedPrecondition(w + ".windows: " + d.status().message());
    add(*d, text);
  }
  return Status::Ok();
}

}  // namespace

Result<FeatureView> ParseStreamView(const YAML::Node& n, const std::string& w,
                                    const std::vector<Entity>& entities,
                                    const std::string& base_dir) {
  RETURN_IF_ERROR(CheckKeys(n, w, {"name", "entities", "source", "allowed_lateness_s",
                                   "aggregations", "online", "description", "tags"}));
  FeatureView v;
  RETURN_IF_ERROR(Read(n, w, "name", &v.name));
  if (v.name.empty()) return FailedPrecondition(w + ".name is required");
  RETURN_IF_ERROR(Read(n, w, "online", &v.online));
  RETURN_IF_ERROR(ReadEntityRefs(n, w, entities, &v.entities));
  v.source.timestamp_field = "event_time";
  RETURN_IF_ERROR(ReadSource(n, w, base_dir, &v.source));

  auto agg = std::make_shared<StreamAggregation>();
  int64_t lateness_s = 0;
  RETURN_IF_ERROR(Read(n, w, "allowed_lateness_s", &lateness_s));
  if (lateness_s < 0) return FailedPrecondition(w + ".allowed_lateness_s must be >= 0");
  agg->allowed_lateness_us = lateness_s * 1'000'000;
  const YAML::Node list = n["aggregations"];
  if (!list || !list.IsSequence() || list.size() == 0) {
    return FailedPrecondition(w + ".aggregations: a non-empty list is required");
  }
  std::vector<AggregationSpec> specs;
  for (size_t i = 0; i < list.size(); ++i) {
    RETURN_IF_ERROR(ParseAggregation(list[i], w + ".aggregations[" + std::to_string(i) + "]",
                                     v.source.timestamp_field, agg.get(), &specs, &v.features));
  }
  std::set<std::string> names;
  for (const Feature& f : v.features) {
    if (!names.insert(f.name).second) {
      return FailedPrecondition(w + ": two aggregations are named '" + f.name + "' (use as:)");
    }
    for (int e : v.entities) {
      if (entities[e].join_key == f.name) {
        return FailedPrecondition(w + ": '" + f.name + "' is the entity's join key");
      }
    }
  }
  for (const std::string& c : agg->columns) {
    for (int e : v.entities) {
      if (entities[e].join_key == c) {
        return FailedPrecondition(w + ": aggregating the join key '" + c + "' is not supported");
      }
    }
  }
  for (const AggregationSpec& s : specs) {
    const bool zero = CountsOnly(s.function) || s.function == AggFunction::kSum;
    agg->zero_when_empty.insert(agg->zero_when_empty.end(),
                                s.function == AggFunction::kLastN ? s.n : 1, zero);
  }
  auto layout = WindowLayout::Create(static_cast<int>(agg->columns.size()), std::move(specs),
                                     agg->allowed_lateness_us);
  if (!layout.ok()) return FailedPrecondition(w + ": " + layout.status().message());
  agg->layout = *layout;
  agg->storage.name = v.name;
  agg->storage.entities = v.entities;
  agg->storage.features = {{"_state", ValueType::kString}, {"_seen", ValueType::kInt}};
  v.aggregation = std::move(agg);
  return v;
}

StreamEventReader::StreamEventReader(const Definitions& defs, const FeatureView& view)
    : view_(&view), agg_(view.aggregation.get()) {
  for (int e : view.entities) {
    join_keys_.push_back(defs.entities()[e].join_key);
    key_types_.push_back(defs.entities()[e].dtype);
  }
}

template <typename Lookup>
Status StreamEventReader::Fill(const Lookup& find, StreamEvent* out) const {
  parts_.resize(join_keys_.size());
  for (size_t k = 0; k < join_keys_.size(); ++k) {
    const RawValue* v = find(join_keys_[k]);
    if (v == nullptr || v->kind == RawValue::Kind::kNull) {
      return Bad("the event has no entity key '" + join_keys_[k] + "' (stream feature view '" +
                     view_->name + "')",
                 join_keys_[k]);
    }
    auto key = EncodeJoinKey(key_types_[k], *v);
    if (!key.ok()) return Bad(key.status().message(), join_keys_[k]);
    parts_[k] = std::move(key).value();
  }
  out->entity_key = parts_.size() == 1 ? parts_[0] : EntityKeyOf(parts_);
  const std::string& ts_field = view_->source.timestamp_field;
  const RawValue* ts = find(ts_field);
  if (ts == nullptr || ts->kind == RawValue::Kind::kNull) {
    return Bad("the event has no timestamp '" + ts_field + "' (stream feature view '" +
                   view_->name + "')",
               ts_field);
  }
  auto t = EventTime(*ts);
  if (!t.ok()) return Bad(ts_field + ": " + t.status().message(), ts_field);
  out->ts_us = *t;
  out->values.assign(agg_->columns.size(), kNaN);
  for (size_t c = 0; c < agg_->columns.size(); ++c) {
    if (static_cast<int>(c) == agg_->timestamp_column) {
      out->values[c] = static_cast<double>(out->ts_us) / 1e6;
      continue;
    }
    const RawValue* v = find(agg_->columns[c]);
    if (v == nullptr) continue;
    switch (v->kind) {
      case RawValue::Kind::kNull: break;
      case RawValue::Kind::kNumber: out->values[c] = v->number; break;
      case RawValue::Kind::kBool: out->values[c] = v->boolean ? 1 : 0; break;
      case RawValue::Kind::kText: {  // a CSV field: a number if it reads as one
        if (v->text.empty()) break;
        char* end = nullptr;
        const double d = std::strtod(v->text.c_str(), &end);
        if (end == v->text.c_str() + v->text.size() && std::isfinite(d)) {
          out->values[c] = d;
          break;
        }
        [[fallthrough]];
      }
      case RawValue::Kind::kString:
        if (!agg_->strings_allowed[c]) {
          return Bad("'" + agg_->columns[c] + "' must be a number (it is aggregated by '" +
                         view_->name + "')",
                     agg_->columns[c]);
        }
        out->values[c] = StringToken(v->text);
        break;
      case RawValue::Kind::kOther:
        return Bad("'" + agg_->columns[c] + "' must be a number or a string, not an array or object",
                   agg_->columns[c]);
    }
    if (!std::isnan(out->values[c]) && !std::isfinite(out->values[c])) {
      return Bad("'" + agg_->columns[c] + "' is not finite", agg_->columns[c]);
    }
  }
  return Status::Ok();
}

Status StreamEventReader::FromJson(simdjson::dom::element event, StreamEvent* out) const {
  simdjson::dom::object top;
  if (event.get_object().get(top) != simdjson::SUCCESS) {
    return Bad("an event must be a JSON object", "");
  }
  simdjson::dom::object nested;
  const bool has_nested = top["features"].get_object().get(nested) == simdjson::SUCCESS;
  // Few fields per view: look each one up where it can be.
  std::vector<RawValue> found;
  found.reserve(join_keys_.size() + agg_->columns.size() + 1);
  auto find = [&](const std::string& name) -> const RawValue* {
    simdjson::dom::element e;
    if (top[name].get(e) != simdjson::SUCCESS &&
        (!has_nested || nested[name].get(e) != simdjson::SUCCESS)) {
      return nullptr;
    }
    found.push_back(RawFromJson(e));
    return &found.back();
  };
  return Fill(find, out);
}

Status StreamEventReader::FromRow(std::span<const std::string> columns,
                                  std::span<const RawValue> cells, StreamEvent* out) const {
  auto find = [&](const std::string& name) -> const RawValue* {
    for (size_t c = 0; c < columns.size(); ++c) {
      if (columns[c] == name) return &cells[c];
    }
    return nullptr;
  };
  return Fill(find, out);
}

StreamState EmptyState(const StreamAggregation& agg) { return {EntityWindows(agg.layout), 0}; }

std::vector<EncodedValue> EncodeState(const StreamState& s) {
  return {s.windows.Serialize(), std::to_string(s.seen)};
}

Result<StreamState> DecodeState(const StreamAggregation& agg, const StoredRecord& rec) {
  if (rec.values.size() != 2 || !rec.values[0] || !rec.values[1]) {
    return Internal("stored aggregation state of '" + agg.storage.name + "' is incomplete");
  }
  auto w = EntityWindows::Parse(agg.layout, *rec.values[0]);
  if (!w.ok()) {
    return Internal("stored aggregation state of '" + agg.storage.name + "': " +
                    w.status().message() +
                    " (the view's aggregations changed: rebuild its state from the topic)");
  }
  return StreamState{std::move(w).value(), std::strtoull(rec.values[1]->c_str(), nullptr, 10)};
}

std::string OffsetMetaKey(std::string_view view, std::string_view topic, int32_t partition) {
  return "agg_offset/" + std::string(view) + "/" + std::string(topic) + "/" +
         std::to_string(partition);
}

}  // namespace rtml::features
