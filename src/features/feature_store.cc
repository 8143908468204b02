#include "features/feature_store.h"

#include <simdjson.h>

#include <algorithm>

#include "common/json_scan.h"
#include "common/json_writer.h"
#include "common/time_format.h"
#include "features/redis_store.h"
#include "features/rocksdb_store.h"

namespace rtml::features {
namespace dom = simdjson::dom;

namespace {
// Stream feature views are rtml's to compute: nothing writes them directly.
Status RefuseStreamView(const FeatureView* view) {
  if (view == nullptr || view->aggregation == nullptr) return Status::Ok();
  return InvalidArgument("feature view '" + view->name +
                             "' is a stream feature view: rtml computes it from its topic's "
                             "events; send events there instead of writing values",
                         "stream_feature_view", "feature_view_name");
}
}  // namespace

namespace {

Result<dom::object> ParseObject(dom::parser& parser, std::string_view body) {
  dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc)) return MalformedJson(body);
  dom::object obj;
  if (doc.get(obj)) return InvalidArgument("request body must be a JSON object", "bad_request");
  return obj;
}

void WriteValue(JsonWriter& w, ValueType t, const std::string& encoded) {
  switch (t) {
    case ValueType::kString: w.String(encoded); return;
    case ValueType::kBool: w.Bool(encoded == "1"); return;
    case ValueType::kInt: w.Raw(encoded); return;
    case ValueType::kFloat: {  // "3000" reads back as an int: write "3000.0"
      const std::string_view suffix = FloatSuffix(encoded);
      char buf[64];
      if (suffix.empty() || encoded.size() + suffix.size() > sizeof(buf)) {
        w.Raw(encoded);
        return;
      }
      encoded.copy(buf, encoded.size());
      suffix.copy(buf + encoded.size(), suffix.size());
      w.Raw(std::string_view(buf, encoded.size() + suffix.size()));
      return;
    }
  }
}

}  // namespace

Result<std::unique_ptr<FeatureStore>> FeatureStore::Open(const config::FeaturesConfig& c,
                                                         const Clock& clock) {
  if (c.definitions.empty()) {
    return FailedPrecondition("no feature definitions: set features.definitions in the config");
  }
  ASSIGN_OR_RETURN(Definitions defs, Definitions::Load(c.definitions));
  std::unique_ptr<OnlineStore> online;
  if (c.store == "memory") {
    online = NewMemoryStore();
  } else if (c.store == "redis") {
    if (!c.redis_cluster_nodes.empty()) {
      for (const FeatureView& v : defs.views()) {
        if (v.aggregation) {
          return FailedPrecondition(
              "stream feature view '" + v.name + "' cannot keep its state on a Redis Cluster "
              "(features.redis.cluster_nodes): its entity states and partition offsets are "
              "written in one transaction, which a cluster allows within one hash slot only; "
              "use features.store: rocksdb or a single Redis (features.redis.host), or drop the "
              "view");
        }
      }
    }
    online = NewRedisStore({.host = c.redis_host, .port = c.redis_port, .db = c.redis_db,
                            .password = c.redis_password, .timeout_ms = c.redis_timeout_ms,
                            .retry_after_ms = c.redis_retry_after_ms,
                            .key_prefix = defs.project(),
                            .cluster_nodes = c.redis_cluster_nodes},
                           clock);
  } else {
    ASSIGN_OR_RETURN(online, OpenRocksDbStore({.path = c.rocksdb_path}));
  }
  return std::make_unique<FeatureStore>(std::move(defs), std::move(online), clock);
}

FeatureStore::FeatureStore(Definitions defs, std::unique_ptr<OnlineStore> online,
                           const Clock& clock)
    : defs_(std::move(defs)), online_(std::move(online)), clock_(clock) {}

std::string IngestResultJson(const IngestResult& r, const std::vector<std::string>& ignored) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("rows").Uint(r.rows).Key("written").Uint(r.written);
  w.Key("skipped_stale").Uint(r.stale).Key("outside_window").Uint(r.outside_window);
  w.Key("rejected").Uint(r.rejected).Key("rejections").BeginArray();
  for (const Rejection& x : r.rejections) {
    w.BeginObject().Key("row").Uint(x.row).Key("column").String(x.column);
    w.Key("reason").String(x.reason).EndObject();
  }
  w.EndArray().Key("ignored_columns").BeginArray();
  for (const auto& c : ignored) w.String(c);
  w.EndArray().EndObject();
  return out;
}

namespace {

// A Feast "df": {"column": [values...], ...}, columns of equal length.
struct Columns {
  std::vector<std::string> names;
  std::vector<dom::array> data;
  size_t rows = 0;
};

Result<Columns> ParseColumns(dom::object obj) {
  dom::object df;
  if (obj["df"].get(df)) {
    return InvalidArgument("\"df\" must be an object of column: [values]", "bad_request", "df");
  }
  Columns out;
  for (auto [name, values] : df) {
    dom::array arr;
    if (values.get(arr)) {
      return InvalidArgument("df column '" + std::string(name) + "' must be an array",
                             "wrong_type", "df." + std::string(name));
    }
    if (!out.names.empty() && arr.size() != out.rows) {
      return InvalidArgument("df column '" + std::string(name) + "' has " +
                                 std::to_string(arr.size()) + " values, others " +
                                 std::to_string(out.rows),
                             "ragged_columns", "df." + std::string(name));
    }
    out.rows = arr.size();
    out.names.emplace_back(name);
    out.data.push_back(arr);
  }
  return out;
}

// Validates every row of `cols` for `view`; writes the good ones unless
// `all_or_nothing` and some row was rejected.
Result<IngestResult> IngestColumns(const Definitions& defs, const FeatureView& view,
                                   const Columns& cols, bool all_or_nothing,
                                   StoreSession& session, std::vector<std::string>* ignored) {
  ASSIGN_OR_RETURN(ViewIngestor ingestor, ViewIngestor::Create(defs, view, cols.names));
  IngestResult result;
  std::vector<RawValue> cells(cols.names.size());
  std::vector<dom::array::iterator> its;
  for (const auto& a : cols.data) its.push_back(a.begin());
  for (size_t row = 0; row < cols.rows; ++row) {
    for (size_t c = 0; c < cells.size(); ++c) cells[c] = RawFromJson(*its[c]), ++its[c];
    ingestor.Add(row, cells, &result);
  }
  *ignored = ingestor.ignored_columns();
  if (all_or_nothing && result.rejected > 0) return result;
  RETURN_IF_ERROR(ingestor.Flush(session, &result));
  return result;
}

// "3 of 10 rows rejected, nothing written: row 2, column amount: ...; ..."
Status RejectedRows(const IngestResult& r) {
  std::string msg = std::to_string(r.rejected) + " of " + std::to_string(r.rows) +
                    " rows rejected, nothing written:";
  for (size_t i = 0; i < r.rejections.size() && i < 10; ++i) {
    const Rejection& x = r.rejections[i];
    msg += (i ? "; row " : " row ") + std::to_string(x.row) +
           (x.column.empty() ? "" : ", column " + x.column) + ": " + x.reason;
  }
  const Rejection& first = r.rejections.front();
  return InvalidArgument(msg, "rejected_rows",
                         "df." + first.column + "[" + std::to_string(first.row) + "]");
}

}  // namespace

Status FeatureStore::PushJson(std::string_view body, StoreSession& session,
                              std::string* response, bool all_or_nothing) const {
  dom::parser parser;
  ASSIGN_OR_RETURN(dom::object obj, ParseObject(parser, body));
  std::string_view target;
  if (obj["push_source_name"].get(target) && obj["feature_view"].get(target)) {
    return InvalidArgument("push needs \"push_source_name\" (or \"feature_view\")", "bad_request",
                           "push_source_name");
  }
  const FeatureView* view = defs_.FindPushTarget(target);
  RETURN_IF_ERROR(RefuseStreamView(defs_.FindView(target)));
  if (view == nullptr) {
    return NotFound("unknown push source or feature view '" + std::string(target) + "'",
                    "unknown_push_source");
  }
  std::string_view to = "online";
  if (obj["to"].error() != simdjson::NO_SUCH_FIELD && obj["to"].get(to)) {
    return InvalidArgument("\"to\" must be a string", "wrong_type", "to");
  }
  if (to != "online" && to != "online_and_offline") {
    return InvalidArgument("\"to\": only \"online\" pushes are supported, not '" +
                               std::string(to) + "'",
                           "bad_request", "to");
  }
  ASSIGN_OR_RETURN(Columns cols, ParseColumns(obj));
  std::vector<std::string> ignored;
  ASSIGN_OR_RETURN(IngestResult result,
                   IngestColumns(defs_, *view, cols, all_or_nothing, session, &ignored));
  if (all_or_nothing && result.rejected > 0) return RejectedRows(result);
  *response = IngestResultJson(result, ignored);
  return Status::Ok();
}

Status FeatureStore::WriteToOnlineStoreJson(std::string_view body, StoreSession& session,
                                            std::string* response) const {
  dom::parser parser;
  ASSIGN_OR_RETURN(dom::object obj, ParseObject(parser, body));
  std::string_view name;
  if (obj["feature_view_name"].get(name)) {
    return InvalidArgument("write-to-online-store needs \"feature_view_name\" (a string)",
                           "bad_request", "feature_view_name");
  }
  const FeatureView* view = defs_.FindView(name);
  if (view == nullptr) {
    return NotFound("unknown feature view '" + std::string(name) + "'", "unknown_feature_view");
  }
  RETURN_IF_ERROR(RefuseStreamView(view));
  ASSIGN_OR_RETURN(Columns cols, ParseColumns(obj));
  // Feast's SDK names the event time "event_timestamp" whatever the view's
  // timestamp field is.
  const std::string& ts = view->source.timestamp_field;
  if (std::find(cols.names.begin(), cols.names.end(), ts) == cols.names.end()) {
    auto it = std::find(cols.names.begin(), cols.names.end(), "event_timestamp");
    if (it != cols.names.end()) *it = ts;
  }
  std::vector<std::string> ignored;
  ASSIGN_OR_RETURN(IngestResult result,
                   IngestColumns(defs_, *view, cols, /*all_or_nothing=*/true, session, &ignored));
  if (result.rejected > 0) return RejectedRows(result);
  *response = IngestResultJson(result, ignored);
  return Status::Ok();
}

namespace {

// Reads "features" or "feature_service" into references.
Result<std::vector<FeatureRef>> RequestedRefs(const Definitions& defs, dom::object obj) {
  std::vector<FeatureRef> refs;
  std::string_view service;
  if (!obj["feature_service"].get(service)) {
    const FeatureService* s = defs.FindService(service);
    if (s == nullptr) {
      return NotFound("unknown feature service '" + std::string(service) + "'",
                      "unknown_feature_service");
    }
    return s->features;
  }
  dom::array list;
  if (obj["features"].get(list)) {
    return InvalidArgument("give \"features\": [\"view:feature\", ...] or \"feature_service\"",
                           "bad_request", "features");
  }
  for (dom::element e : list) {
    std::string_view ref;
    if (e.get(ref)) {
      return InvalidArgument("feature references must be strings", "wrong_type", "features");
    }
    auto r = defs.ResolveRef(ref);
    if (!r.ok()) {
      return Status(r.status().code(), r.status().message(), std::string(r.status().reason()),
                    "features");
    }
    refs.push_back(*r);
  }
  if (refs.empty()) return InvalidArgument("no features requested", "bad_request", "features");
  return refs;
}

}  // namespace

Status FeatureStore::GetOnlineFeaturesJson(std::string_view body, StoreSession& session,
                                           std::string* response) const {
  dom::parser parser;
  ASSIGN_OR_RETURN(dom::object obj, ParseObject(parser, body));
  ASSIGN_OR_RETURN(std::vector<FeatureRef> refs, RequestedRefs(defs_, obj));
  ASSIGN_OR_RETURN(OnlineReader reader, OnlineReader::Create(defs_, refs, served_log_.get()));
  bool full_names = false;
  if (obj["full_feature_names"].get(full_names)) full_names = false;
  dom::object entities;
  if (obj["entities"].get(entities)) {
    return InvalidArgument("\"entities\" must be an object of join_key: [values]", "bad_request",
                           "entities");
  }
  const auto& keys = reader.join_keys();
  std::vector<dom::array> columns(keys.size());
  size_t n_rows = 0;
  for (size_t k = 0; k < keys.size(); ++k) {
    if (entities[keys[k]].get(columns[k])) {
      return InvalidArgument("\"entities\" needs the join key '" + keys[k] + "' as an array",
                             "missing_entity_key", "entities." + keys[k]);
    }
    if (k > 0 && columns[k].size() != n_rows) {
      return InvalidArgument("entity columns differ in length", "ragged_columns", "entities");
    }
    n_rows = columns[k].size();
  }
  std::vector<std::string> join_values(n_rows * keys.size());
  for (size_t k = 0; k < keys.size(); ++k) {
    size_t row = 0;
    for (dom::element e : columns[k]) {
      auto v = EncodeJoinKey(reader.join_key_type(k), RawFromJson(e));
      if (!v.ok()) {
        return InvalidArgument("entities." + keys[k] + "[" + std::to_string(row) + "]: " +
                                   v.status().message(),
                               std::string(v.status().reason()),
                               "entities." + keys[k] + "[" + std::to_string(row) + "]");
      }
      join_values[row++ * keys.size() + k] = std::move(v).value();
    }
  }
  // rtml's extension: "at" reads stream feature views' windows at another
  // time than now (the state is the current one: what the windows hold now,
  // seen from that time).
  int64_t now = clock_.NowMicros();
  dom::element at;
  if (obj["at"].get(at) == simdjson::SUCCESS) {
    auto t = EventTime(RawFromJson(at));
    if (!t.ok()) {
      return InvalidArgument("\"at\": " + t.status().message(), "bad_timestamp", "at");
    }
    now = *t;
  }
  OnlineReader::Scratch scratch;
  RETURN_IF_ERROR(reader.Read(session, n_rows, join_values, &scratch));
  response->clear();
  JsonWriter w(response);
  w.BeginObject().Key("metadata").BeginObject().Key("feature_names").BeginArray();
  for (const auto& k : keys) w.String(k);
  for (FeatureRef r : refs) {
    const auto& v = defs_.views()[r.view];
    w.String(full_names ? v.name + "__" + v.features[r.feature].name : v.features[r.feature].name);
  }
  w.EndArray().EndObject().Key("results").BeginArray();
  for (size_t k = 0; k < keys.size(); ++k) {  // entity columns echo the request
    w.BeginObject().Key("values").BeginArray();
    for (dom::element e : columns[k]) w.Raw(simdjson::minify(e));
    w.EndArray().Key("statuses").BeginArray();
    for (size_t r = 0; r < n_rows; ++r) w.String("PRESENT");
    w.EndArray().Key("event_timestamps").BeginArray();
    for (size_t r = 0; r < n_rows; ++r) w.String(FormatTimestamp(0));
    w.EndArray().EndObject();
  }
  for (size_t f = 0; f < refs.size(); ++f) {
    const ValueType t = defs_.views()[refs[f].view].features[refs[f].feature].dtype;
    std::vector<OnlineReader::Cell> cells(n_rows);
    for (size_t r = 0; r < n_rows; ++r) cells[r] = reader.Get(scratch, r, f, now);
    w.BeginObject().Key("values").BeginArray();
    for (const auto& c : cells) c.value ? WriteValue(w, t, **c.value) : (void)w.Null();
    w.EndArray().Key("statuses").BeginArray();
    for (const auto& c : cells) w.String(FeatureStatusName(c.status));
    w.EndArray().Key("event_timestamps").BeginArray();
    for (const auto& c : cells) w.String(FormatTimestamp(c.event_ts_us));
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return Status::Ok();
}

Status FeatureStore::Apply(StoreSession& session) const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("project").String(defs_.project());
  w.Key("version_hash").String(defs_.version_hash());
  w.Key("applied_at").String(FormatTimestamp(clock_.NowMicros()));
  w.Key("definitions").String(defs_.source_text()).EndObject();
  return session.PutMeta("registry", out);
}

Result<std::optional<std::string>> FeatureStore::Registry(StoreSession& session) const {
  return session.GetMeta("registry");
}

}  // namespace rtml::features
