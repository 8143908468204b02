#include "features/stream_replay.h"

#include <algorithm>
#include <fstream>
#include <limits>

#include "features/ingest.h"
#include "features/served_log.h"
#include "features/stream_aggregator.h"

namespace rtml::features {

Result<StreamReplay> StreamReplay::Load(const Definitions& defs, const FeatureView& view) {
  if (view.aggregation == nullptr) {
    return InvalidArgument("feature view '" + view.name + "' is not a stream feature view");
  }
  if (view.source.path.empty()) {
    return FailedPrecondition("stream feature view '" + view.name +
                              "' has no source.path: keep its topic's events in a file (JSON "
                              "Lines or CSV) and name it there");
  }
  StreamReplay r;
  r.view_ = &view;
  StreamEventReader reader(defs, view);
  StreamEvent e;
  Status s = ReadSourceFile(view.source.path, [&](const std::vector<std::string>& columns,
                                                  size_t row, std::span<const RawValue> cells) {
    Status ok = reader.FromRow(columns, cells, &e);
    if (!ok.ok()) {
      if (r.bad_rows_++ == 0) r.first_bad_ = "row " + std::to_string(row) + ": " + ok.message();
      return Status::Ok();
    }
    r.by_entity_[e.entity_key].push_back(r.events_.size());
    r.prefix_max_us_.push_back(
        r.events_.empty() ? e.ts_us : std::max(r.prefix_max_us_.back(), e.ts_us));
    r.row_of_.push_back(row);
    r.events_.push_back(std::move(e));
    return Status::Ok();
  });
  if (!s.ok()) return s.Annotate("stream feature view " + view.name);
  return r;
}

size_t StreamReplay::PositionAt(int64_t at_us) const {
  auto it = std::lower_bound(prefix_max_us_.begin(), prefix_max_us_.end(), at_us);
  if (it == prefix_max_us_.end()) return std::numeric_limits<size_t>::max();
  return row_of_[static_cast<size_t>(it - prefix_max_us_.begin())];
}

std::vector<StreamReplay::Answer> StreamReplay::Run(std::span<const Query> queries) const {
  const StreamAggregation& agg = *view_->aggregation;
  const size_t n_out = agg.layout->n_outputs();
  std::vector<Answer> answers(queries.size());
  // Per entity, queries in order of how many of its events they see.
  std::unordered_map<std::string, std::vector<std::pair<size_t, size_t>>> by_entity;  // (n, query)
  static const std::vector<size_t> kNone;
  for (size_t q = 0; q < queries.size(); ++q) {
    auto it = by_entity_.find(queries[q].entity_key);
    const std::vector<size_t>& idx = it == by_entity_.end() ? kNone : it->second;
    size_t n;
    if (queries[q].seen != UINT64_MAX) {
      n = std::min<size_t>(queries[q].seen, idx.size());
    } else {
      n = static_cast<size_t>(
          std::lower_bound(idx.begin(), idx.end(), queries[q].position,
                           [&](size_t event, size_t pos) { return row_of_[event] < pos; }) -
          idx.begin());
    }
    by_entity[queries[q].entity_key].emplace_back(n, q);
  }
  for (auto& [key, qs] : by_entity) {
    std::stable_sort(qs.begin(), qs.end());
    auto it = by_entity_.find(key);
    StreamState state = EmptyState(agg);
    size_t added = 0;
    for (auto [n, q] : qs) {
      for (; added < n; ++added) AddEvent(&state, events_[it->second[added]]);
      Answer& a = answers[q];
      a.found = added > 0;
      a.seen = state.seen;
      a.outputs.assign(n_out, std::numeric_limits<double>::quiet_NaN());
      if (a.found) state.windows.Read(queries[q].at_us, a.outputs);
    }
  }
  return answers;
}

Result<ReplayReport> ReplayServedLog(const Definitions& defs, const std::string& log_path) {
  std::ifstream in(log_path);
  if (!in) return FailedPrecondition("cannot read the served-values log '" + log_path + "'");
  struct Record {
    std::string view, line;
    StreamReplay::Query query;
    std::vector<double> values;
  };
  std::vector<Record> records;
  simdjson::dom::parser parser;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    auto bad = [&](const std::string& why) {
      return InvalidArgument(log_path + ":" + std::to_string(line_no) + ": " + why);
    };
    simdjson::dom::object o;
    if (parser.parse(line).get(o)) return bad("not a JSON object");
    Record r;
    std::string_view view, entity;
    int64_t at = 0;
    uint64_t seen = 0;
    simdjson::dom::object values;
    if (o["view"].get(view) || o["entity"].get(entity) || o["at_us"].get(at) ||
        o["seen"].get(seen) || o["values"].get(values)) {
      return bad("needs view, entity, at_us, seen and values (a served-values record)");
    }
    const FeatureView* v = defs.FindView(view);
    if (v == nullptr || v->aggregation == nullptr) {
      return bad("'" + std::string(view) + "' is not a stream feature view of these definitions");
    }
    r.view = view;
    r.line = line;
    r.query = {std::string(entity), at, 0, seen};
    for (const Feature& f : v->features) {
      simdjson::dom::element e;
      double d = std::numeric_limits<double>::quiet_NaN();
      if (values[f.name].get(e) == simdjson::SUCCESS && !e.is_null()) {
        if (e.get_double().get(d)) return bad("values." + f.name + " is not a number");
      }
      r.values.push_back(d);
    }
    records.push_back(std::move(r));
  }
  ReplayReport report;
  report.records = records.size();
  for (const FeatureView& v : defs.views()) {
    std::vector<size_t> mine;
    std::vector<StreamReplay::Query> queries;
    for (size_t i = 0; i < records.size(); ++i) {
      if (records[i].view != v.name) continue;
      mine.push_back(i);
      queries.push_back(records[i].query);
    }
    if (mine.empty()) continue;
    ASSIGN_OR_RETURN(StreamReplay replay, StreamReplay::Load(defs, v));
    const std::vector<StreamReplay::Answer> answers = replay.Run(queries);
    for (size_t j = 0; j < mine.size(); ++j) {
      const Record& r = records[mine[j]];
      const StreamReplay::Answer& a = answers[j];
      bool same = a.seen == r.query.seen;
      for (size_t f = 0; same && f < r.values.size(); ++f) {
        const double online = r.values[f];
        double offline = a.outputs[f];
        // An entity without events reads as count 0 online (and no state).
        if (!a.found && v.aggregation->zero_when_empty[f]) offline = 0;
        same = (std::isnan(online) && std::isnan(offline)) || online == offline;
      }
      if (same) continue;
      if (report.mismatches++ < 20) {
        report.examples.push_back("served:   " + r.line + "\nreplayed: " +
                                  ServedRecordJson(v, r.query.entity_key, r.query.at_us, a.seen,
                                                   a.outputs));
      }
    }
  }
  return report;
}

}  // namespace rtml::features
