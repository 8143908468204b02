#include "features/materialize.h"

#include <algorithm>
#include <charconv>

#include "common/json_writer.h"
#include "common/time_format.h"

namespace rtml::features {
namespace {

constexpr size_t kFlushRows = 1000;

std::string WatermarkKey(const FeatureView& view) { return "materialized:" + view.name; }

// The views a request names (all materializable ones when it names none).
Result<std::vector<const FeatureView*>> SelectViews(const Definitions& defs,
                                                    const std::vector<std::string>& names) {
  std::vector<const FeatureView*> out;
  if (names.empty()) {
    for (const FeatureView& v : defs.views()) {
      if (v.online && !v.source.path.empty() && v.aggregation == nullptr) out.push_back(&v);
    }
    return out;
  }
  for (const std::string& name : names) {
    const FeatureView* v = defs.FindView(name);
    if (v == nullptr) {
      return NotFound("unknown feature view '" + name + "'", "unknown_feature_view");
    }
    if (v->aggregation != nullptr) {
      return InvalidArgument("feature view '" + name +
                                 "' is a stream feature view: rtml computes it from its topic "
                                 "(its source.path is for `rtml features historical`)",
                             "bad_request", "feature_views");
    }
    if (!v->online || v->source.path.empty()) {
      return InvalidArgument("feature view '" + name + "' has " +
                                 (v->online ? "no source file to materialize from"
                                            : "online: false"),
                             "bad_request", "feature_views");
    }
    out.push_back(v);
  }
  return out;
}

Result<std::optional<int64_t>> Watermark(StoreSession& session, const FeatureView& view) {
  ASSIGN_OR_RETURN(std::optional<std::string> mark, session.GetMeta(WatermarkKey(view)));
  if (!mark) return std::optional<int64_t>();
  int64_t us = 0;
  auto [end, ec] = std::from_chars(mark->data(), mark->data() + mark->size(), us);
  if (ec != std::errc() || end != mark->data() + mark->size()) {
    return Internal("the watermark of view '" + view.name + "' is corrupt: '" + *mark + "'");
  }
  return std::optional<int64_t>(us);
}

// Loads one view's source rows in [start, end) into the store.
Status LoadView(const FeatureStore& store, StoreSession& session, const FeatureView& view,
                ViewMaterialization* out, const MaterializeProgress& progress) {
  IngestResult& result = out->result;
  std::optional<ViewIngestor> ingestor;
  Status s = ReadSourceFile(
      view.source.path,
      [&](const std::vector<std::string>& columns, size_t row,
          std::span<const RawValue> cells) -> Status {
        if (!ingestor) {
          ASSIGN_OR_RETURN(ViewIngestor created,
                           ViewIngestor::Create(store.definitions(), view, columns));
          ingestor.emplace(std::move(created));
          ingestor->SetWindow(out->start_us.value_or(INT64_MIN), out->end_us);
        }
        if (cells.empty()) {
          result.rows++;
          result.Reject({row, "", "malformed JSON line"});
          return Status::Ok();
        }
        ingestor->Add(row, cells, &result);
        if (ingestor->pending() >= kFlushRows) RETURN_IF_ERROR(ingestor->Flush(session, &result));
        return Status::Ok();
      },
      [&](size_t done, size_t total) {
        if (progress) progress(view, done, total, result.rows);
      });
  if (s.ok() && ingestor) s = ingestor->Flush(session, &result);
  if (!s.ok()) return s.Annotate("materializing " + view.name);
  return session.PutMeta(WatermarkKey(view), std::to_string(out->end_us));
}

}  // namespace

Result<std::vector<ViewMaterialization>> Materialize(const FeatureStore& store,
                                                     StoreSession& session,
                                                     const MaterializeRequest& request,
                                                     const MaterializeListener& listener,
                                                     const MaterializeProgress& progress) {
  ASSIGN_OR_RETURN(std::vector<const FeatureView*> views,
                   SelectViews(store.definitions(), request.views));
  std::vector<ViewMaterialization> out;
  for (const FeatureView* view : views) {
    ViewMaterialization& m = out.emplace_back();
    m.view = view->name;
    m.end_us = request.end_us;
    if (request.incremental) {
      ASSIGN_OR_RETURN(m.start_us, Watermark(session, *view));
    } else {
      m.start_us = request.start_us;
    }
    if (listener) listener(m, false);
    m.status = LoadView(store, session, *view, &m, progress);
    if (listener) listener(m, true);
  }
  return out;
}

std::string MaterializeResultJson(const std::vector<ViewMaterialization>& views) {
  std::string out;
  JsonWriter w(&out);
  size_t failed = 0;
  w.BeginObject().Key("views").BeginArray();
  for (const ViewMaterialization& m : views) {
    const IngestResult& r = m.result;
    w.BeginObject().Key("feature_view").String(m.view).Key("start");
    m.start_us ? (void)w.String(FormatTimestamp(*m.start_us)) : (void)w.Null();
    w.Key("end").String(FormatTimestamp(m.end_us));
    w.Key("rows").Uint(r.rows).Key("written").Uint(r.written);
    w.Key("skipped_stale").Uint(r.stale).Key("outside_window").Uint(r.outside_window);
    w.Key("rejected").Uint(r.rejected).Key("rejections").BeginArray();
    for (const Rejection& x : r.rejections) {
      w.BeginObject().Key("row").Uint(x.row).Key("column").String(x.column);
      w.Key("reason").String(x.reason).EndObject();
    }
    w.EndArray();
    if (!m.status.ok()) {
      ++failed;
      w.Key("error").String(m.status.message());
    }
    w.EndObject();
  }
  w.EndArray().Key("failed").Uint(failed).EndObject();
  return out;
}

}  // namespace rtml::features
