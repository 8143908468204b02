#include "features/online_reader.h"

#include <charconv>
#include <cmath>

namespace rtml::features {

std::string_view FeatureStatusName(FeatureStatus s) {
  switch (s) {
    case FeatureStatus::kPresent: return "PRESENT";
    case FeatureStatus::kNotFound: return "NOT_FOUND";
    case FeatureStatus::kNullValue: return "NULL_VALUE";
    case FeatureStatus::kOutsideMaxAge: return "OUTSIDE_MAX_AGE";
  }
  return "NOT_FOUND";
}

Result<OnlineReader> OnlineReader::Create(const Definitions& defs, std::vector<FeatureRef> refs,
                                          const ServedLog* served_log) {
  OnlineReader r;
  r.defs_ = &defs;
  r.served_log_ = served_log;
  for (FeatureRef ref : refs) {
    const FeatureView& view = defs.views()[ref.view];
    if (!view.online) {
      return InvalidArgument("feature view '" + view.name + "' is not online", "offline_view");
    }
    int plan = -1;
    for (size_t p = 0; p < r.plans_.size(); ++p) {
      if (r.plans_[p].view == ref.view) plan = static_cast<int>(p);
    }
    if (plan < 0) {
      ViewPlan vp{ref.view, view.aggregation.get(), {}};
      for (int e : view.entities) {
        const Entity& entity = defs.entities()[e];
        auto it = std::find(r.join_keys_.begin(), r.join_keys_.end(), entity.join_key);
        if (it == r.join_keys_.end()) {
          r.join_keys_.push_back(entity.join_key);
          r.join_key_types_.push_back(entity.dtype);
          it = r.join_keys_.end() - 1;
        }
        vp.key_columns.push_back(static_cast<int>(it - r.join_keys_.begin()));
      }
      plan = static_cast<int>(r.plans_.size());
      r.plans_.push_back(std::move(vp));
    }
    r.ref_plans_.push_back({plan, ref.feature});
  }
  r.refs_ = std::move(refs);
  return r;
}

Status OnlineReader::Read(StoreSession& session, size_t n_rows,
                          std::span<const std::string> join_values, Scratch* s) const {
  Plan(n_rows, join_values, s);
  RETURN_IF_ERROR(session.Read(s->requests));
  Decode(n_rows, s);
  return Status::Ok();
}

void OnlineReader::Plan(size_t n_rows, std::span<const std::string> join_values,
                        Scratch* s) const {
  const size_t nk = join_keys_.size();
  s->keys.resize(plans_.size());
  s->records.resize(plans_.size());
  s->requests.clear();
  std::vector<std::string> parts;
  for (size_t p = 0; p < plans_.size(); ++p) {
    s->keys[p].resize(n_rows);
    for (size_t row = 0; row < n_rows; ++row) {
      if (plans_[p].key_columns.size() == 1) {
        s->keys[p][row] = join_values[row * nk + plans_[p].key_columns[0]];
        continue;
      }
      parts.clear();
      for (int c : plans_[p].key_columns) parts.push_back(join_values[row * nk + c]);
      s->keys[p][row] = EntityKeyOf(parts);
    }
    const FeatureView& view = defs_->views()[plans_[p].view];
    s->requests.push_back({plans_[p].aggregation != nullptr ? &plans_[p].aggregation->storage
                                                             : &view,
                           s->keys[p], &s->records[p]});
  }
}

void OnlineReader::Decode(size_t n_rows, Scratch* s) const {
  s->aggregates.resize(plans_.size());
  for (size_t p = 0; p < plans_.size(); ++p) {
    const StreamAggregation* agg = plans_[p].aggregation;
    if (agg == nullptr) continue;
    AggregateRows& a = s->aggregates[p];
    const size_t n_out = agg->layout->n_outputs();
    a.states.resize(n_rows);
    a.read_at_us.assign(n_rows, INT64_MIN);
    a.outputs.resize(n_rows * n_out);
    a.text.resize(n_rows * n_out);
    for (size_t row = 0; row < n_rows; ++row) {
      a.states[row].reset();
      if (!s->records[p][row].found) continue;
      // A state written for other aggregations reads as none; the worker
      // starts it over (and says so) when the entity's next event comes.
      auto state = DecodeState(*agg, s->records[p][row]);
      if (state.ok()) a.states[row].emplace(std::move(state).value());
    }
  }
}

FeatureStatus AggregateOutput(const FeatureView& view, int feature, const double* outputs,
                              EncodedValue* text) {
  const bool is_int = view.features[feature].dtype == ValueType::kInt;  // count-like
  if (outputs == nullptr) {
    if (!view.aggregation->zero_when_empty[feature]) return FeatureStatus::kNotFound;
    *text = "0";
    return FeatureStatus::kPresent;
  }
  const double v = outputs[feature];
  if (std::isnan(v)) return FeatureStatus::kNullValue;
  *text = is_int ? EncodeInt(static_cast<int64_t>(v)) : EncodeFloat(v);
  return FeatureStatus::kPresent;
}

OnlineReader::Cell OnlineReader::GetAggregate(const Scratch& s, size_t plan, size_t row,
                                              int feature, int64_t now_us) const {
  const FeatureView& view = defs_->views()[plans_[plan].view];
  const StreamAggregation& agg = *plans_[plan].aggregation;
  AggregateRows& a = s.aggregates[plan];
  const size_t n_out = agg.layout->n_outputs();
  EncodedValue& text = a.text[row * n_out + feature];
  double* out = nullptr;
  Cell c;
  if (a.states[row]) {
    const StreamState& state = *a.states[row];
    out = a.outputs.data() + row * n_out;
    if (a.read_at_us[row] != now_us) {
      state.windows.Read(now_us, std::span<double>(out, n_out));
      a.read_at_us[row] = now_us;
      if (served_log_ != nullptr && served_log_->ShouldSample()) {
        served_log_->Write(view, s.keys[plan][row], now_us, state.seen,
                           std::span<const double>(out, n_out));
      }
    }
    c.event_ts_us = state.windows.latest_us();
  }
  c.status = AggregateOutput(view, feature, out, &text);
  if (c.status == FeatureStatus::kPresent) c.value = &text;
  return c;
}

OnlineReader::Cell OnlineReader::Get(const Scratch& s, size_t row, size_t ref,
                                     int64_t now_us) const {
  const RefPlan& rp = ref_plans_[ref];
  if (plans_[rp.plan].aggregation != nullptr) {
    return GetAggregate(s, static_cast<size_t>(rp.plan), row, rp.feature, now_us);
  }
  const StoredRecord& rec = s.records[rp.plan][row];
  Cell c;
  if (!rec.found) return c;
  c.event_ts_us = rec.event_ts_us;
  const FeatureView& view = defs_->views()[plans_[rp.plan].view];
  if (view.ttl_seconds > 0 && now_us - rec.event_ts_us > view.ttl_seconds * 1000000) {
    c.status = FeatureStatus::kOutsideMaxAge;
    return c;
  }
  if (static_cast<size_t>(rp.feature) >= rec.values.size() || !rec.values[rp.feature]) {
    c.status = FeatureStatus::kNullValue;
    return c;
  }
  c.status = FeatureStatus::kPresent;
  c.value = &rec.values[rp.feature];
  return c;
}

Result<double> DecodeNumeric(ValueType t, const std::string& encoded) {
  if (t == ValueType::kString) {
    return InvalidArgument("string feature cannot be a model input", "wrong_type");
  }
  double v = 0;
  auto [end, ec] = std::from_chars(encoded.data(), encoded.data() + encoded.size(), v);
  if (ec != std::errc() || end != encoded.data() + encoded.size()) {
    return Internal("stored value '" + encoded + "' is not a number");
  }
  return v;
}

}  // namespace rtml::features
