// `rtml features ...`: apply, list, push, get, materialize,
// materialize-incremental, historical. Each opens the configured feature
// store (for RocksDB: exclusively, so not while `rtml serve` holds it).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "common/json_writer.h"
#include "common/time_format.h"
#include "config/config.h"
#include "features/feature_store.h"
#include "features/historical.h"
#include "features/stream_replay.h"
#include "features/materialize.h"

namespace rtml::cli {
namespace {

int Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "rtml features %s: %s\n", what.c_str(), s.message().c_str());
  return s.code() == StatusCode::kFailedPrecondition ? 2 : 1;
}

Result<std::unique_ptr<features::FeatureStore>> OpenStore(const std::string& config_path) {
  ASSIGN_OR_RETURN(config::Config c, config::LoadConfig(config_path));
  return features::FeatureStore::Open(c.features);
}

Result<std::string> ReadInput(const std::string& path) {
  std::stringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(path);
    if (!in) return FailedPrecondition("cannot read '" + path + "'");
    ss << in.rdbuf();
  }
  return ss.str();
}

// A one-line progress bar on stderr, redrawn in place on a terminal and
// printed every 10% otherwise.
class Progress {
 public:
  explicit Progress(std::string label) : label_(std::move(label)), tty_(isatty(2)) {}
  void Update(size_t done, size_t total, size_t rows) {
    const int pct = total ? static_cast<int>(100.0 * done / total) : 100;
    if (pct == last_ || (!tty_ && last_ >= 0 && pct / 10 == last_ / 10 && pct != 100)) return;
    last_ = pct;
    const int width = 30, filled = pct * width / 100;
    std::fprintf(stderr, "%s%-20s [%s%s] %3d%%  %zu rows%s", tty_ ? "\r" : "", label_.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), pct,
                 rows, tty_ ? "" : "\n");
    if (tty_ && pct == 100) std::fprintf(stderr, "\n");
  }

 private:
  std::string label_;
  bool tty_;
  int last_ = -1;
};

void PrintSummary(const std::string& view, const features::IngestResult& r) {
  std::printf("%s: %zu rows read, %zu written, %zu skipped as stale, %zu outside the window, "
              "%zu rejected\n",
              view.c_str(), r.rows, r.written, r.stale, r.outside_window, r.rejected);
  for (size_t i = 0; i < r.rejections.size() && i < 10; ++i) {
    const auto& x = r.rejections[i];
    std::printf("  rejected row %zu%s%s: %s\n", x.row, x.column.empty() ? "" : ", column ",
                x.column.c_str(), x.reason.c_str());
  }
  if (r.rejected > 10) std::printf("  ... and %zu more rejected rows\n", r.rejected - 10);
}

}  // namespace

int RunFeaturesApply(const std::string& config_path) {
  auto store = OpenStore(config_path);
  if (!store.ok()) return Fail("apply", store.status());
  const auto& d = (*store)->definitions();
  auto session = (*store)->online().NewSession();
  if (Status s = (*store)->Apply(*session); !s.ok()) return Fail("apply", s);
  std::printf("applied project %s, version %s: %zu entities, %zu feature views, %zu services "
              "(%s store)\n",
              d.project().c_str(), d.version_hash().c_str(), d.entities().size(),
              d.views().size(), d.services().size(),
              std::string((*store)->online().backend()).c_str());
  return 0;
}

int RunFeaturesList(const std::string& config_path, bool json) {
  auto store = OpenStore(config_path);
  if (!store.ok()) return Fail("list", store.status());
  const auto& d = (*store)->definitions();
  if (json) {
    std::printf("%s\n", d.ToJson().c_str());
    return 0;
  }
  std::printf("project %s (definitions version %s)\n", d.project().c_str(),
              d.version_hash().c_str());
  auto session = (*store)->online().NewSession();
  auto registry = (*store)->Registry(*session);
  if (!registry.ok()) {
    std::printf("registry: unavailable (%s)\n", registry.status().message().c_str());
  } else if (!registry->has_value()) {
    std::printf("registry: never applied (run `rtml features apply`)\n");
  } else {
    const bool same = (*registry)->find(d.version_hash()) != std::string::npos;
    std::printf("registry: %s\n", same ? "applied, up to date"
                                       : "applied version differs: run `rtml features apply`");
  }
  std::printf("entities:\n");
  for (const auto& e : d.entities()) {
    std::printf("  %-16s join key %s (%s)\n", e.name.c_str(), e.join_key.c_str(),
                std::string(features::ValueTypeName(e.dtype)).c_str());
  }
  std::printf("feature views:\n");
  for (const auto& v : d.views()) {
    std::printf("  %-16s ttl %llds, %s, source %s\n", v.name.c_str(),
                static_cast<long long>(v.ttl_seconds), v.online ? "online" : "offline only",
                v.source.path.empty() ? "(push only)" : v.source.path.c_str());
    for (const auto& f : v.features) {
      std::printf("    %-24s %s\n", f.name.c_str(),
                  std::string(features::ValueTypeName(f.dtype)).c_str());
    }
  }
  std::printf("feature services:\n");
  for (const auto& s : d.services()) {
    std::printf("  %-16s", s.name.c_str());
    for (const auto& r : s.features) std::printf(" %s", d.RefName(r).c_str());
    std::printf("\n");
  }
  return 0;
}

int RunFeaturesPush(const std::string& config_path, const std::string& file) {
  auto store = OpenStore(config_path);
  if (!store.ok()) return Fail("push", store.status());
  auto body = ReadInput(file);
  if (!body.ok()) return Fail("push", body.status());
  auto session = (*store)->online().NewSession();
  std::string out;
  if (Status s = (*store)->PushJson(*body, *session, &out); !s.ok()) return Fail("push", s);
  std::printf("%s\n", out.c_str());
  return 0;
}

int RunFeaturesGet(const std::string& config_path, const std::vector<std::string>& refs,
                   const std::string& service, const std::vector<std::string>& entities) {
  auto store = OpenStore(config_path);
  if (!store.ok()) return Fail("get", store.status());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  if (!service.empty()) {
    w.Key("feature_service").String(service);
  } else {
    w.Key("features").BeginArray();
    for (const auto& r : refs) w.String(r);
    w.EndArray();
  }
  w.Key("entities").BeginObject();
  for (const std::string& e : entities) {  // join_key=v1,v2,...
    const size_t eq = e.find('=');
    if (eq == std::string::npos) {
      return Fail("get", InvalidArgument("--entity takes join_key=value[,value...], not '" + e +
                                         "'"));
    }
    w.Key(e.substr(0, eq)).BeginArray();
    std::stringstream values(e.substr(eq + 1));
    for (std::string v; std::getline(values, v, ',');) {
      const bool numeric = !v.empty() && v.find_first_not_of("-0123456789") == std::string::npos;
      numeric ? w.Raw(v) : w.String(v);
    }
    w.EndArray();
  }
  w.EndObject().EndObject();
  auto session = (*store)->online().NewSession();
  std::string out;
  if (Status s = (*store)->GetOnlineFeaturesJson(body, *session, &out); !s.ok()) {
    return Fail("get", s);
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

int RunFeaturesMaterialize(const std::string& config_path, const std::string& start,
                           const std::string& end, bool incremental,
                           const std::vector<std::string>& only_views) {
  const std::string what = incremental ? "materialize-incremental" : "materialize";
  auto store = OpenStore(config_path);
  if (!store.ok()) return Fail(what, store.status());
  features::MaterializeRequest request{.incremental = incremental, .views = only_views};
  auto end_us = end.empty() ? Result<int64_t>((*store)->clock().NowMicros()) : ParseTimestamp(end);
  if (!end_us.ok()) return Fail(what, end_us.status().Annotate("--end"));
  request.end_us = *end_us;
  if (!incremental && !start.empty()) {
    auto s = ParseTimestamp(start);
    if (!s.ok()) return Fail(what, s.status().Annotate("--start"));
    request.start_us = *s;
  }
  auto session = (*store)->online().NewSession();
  std::optional<Progress> bar;
  auto listener = [&](const features::ViewMaterialization& m, bool done) {
    if (!done) {
      std::fprintf(stderr, "%s: %s -> %s from %s\n", m.view.c_str(),
                   m.start_us ? FormatTimestamp(*m.start_us).c_str() : "(beginning)",
                   FormatTimestamp(m.end_us).c_str(),
                   (*store)->definitions().FindView(m.view)->source.path.c_str());
      bar.emplace(m.view);
      return;
    }
    bar->Update(1, 1, m.result.rows);
    if (!m.status.ok()) {
      std::fprintf(stderr, "rtml features %s: %s\n", what.c_str(), m.status.message().c_str());
    } else {
      PrintSummary(m.view, m.result);
    }
  };
  auto progress = [&](const features::FeatureView&, size_t done, size_t total, size_t rows) {
    bar->Update(done, total, rows);
  };
  auto views = features::Materialize(**store, *session, request, listener, progress);
  if (!views.ok()) return Fail(what, views.status());
  const bool failed = std::any_of(views->begin(), views->end(),
                                  [](const auto& m) { return !m.status.ok(); });
  return failed ? 1 : 0;
}

int RunFeaturesHistorical(const std::string& config_path, const std::string& entities,
                          const std::string& out, const std::vector<std::string>& refs,
                          const std::string& service, const std::string& timestamp_field) {
  auto c = config::LoadConfig(config_path);
  if (!c.ok()) return Fail("historical", c.status());
  auto defs = features::Definitions::Load(c->features.definitions);
  if (!defs.ok()) return Fail("historical", defs.status());
  std::vector<features::FeatureRef> resolved;
  if (!service.empty()) {
    const features::FeatureService* s = defs->FindService(service);
    if (s == nullptr) return Fail("historical", NotFound("unknown feature service " + service));
    resolved = s->features;
  }
  for (const std::string& r : refs) {
    auto ref = defs->ResolveRef(r);
    if (!ref.ok()) return Fail("historical", ref.status());
    resolved.push_back(*ref);
  }
  if (resolved.empty()) {
    return Fail("historical", InvalidArgument("name --service or --features"));
  }
  auto result = features::GetHistoricalFeatures(
      *defs, resolved,
      {.entities_path = entities, .timestamp_field = timestamp_field, .out_path = out});
  if (!result.ok()) return Fail("historical", result.status());
  std::printf("%zu entity rows -> %s: %zu values, %zu not found, %zu older than the TTL\n",
              result->rows, out.c_str(), result->values, result->not_found, result->too_old);
  return 0;
}

int RunFeaturesReplay(const std::string& config_path, const std::string& log_path) {
  auto c = config::LoadConfig(config_path);
  if (!c.ok()) return Fail("historical --replay", c.status());
  auto defs = features::Definitions::Load(c->features.definitions);
  if (!defs.ok()) return Fail("historical --replay", defs.status());
  auto report = features::ReplayServedLog(*defs, log_path);
  if (!report.ok()) return Fail("historical --replay", report.status());
  for (const std::string& e : report->examples) std::printf("mismatch\n%s\n", e.c_str());
  std::printf("%zu served record(s) replayed from %s: %zu mismatch(es)\n", report->records,
              log_path.c_str(), report->mismatches);
  return report->mismatches == 0 ? 0 : 1;
}

}  // namespace rtml::cli
