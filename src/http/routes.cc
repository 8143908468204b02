#include "http/routes.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <random>

#include "common/json_writer.h"
#include "common/time_format.h"
#include "http/dashboard_page.h"
#include "http/feast_api.h"
#include "features/materialize.h"
#include "model/repository.h"
#include "observability/log.h"
#include "pipeline/error_reasons.h"
#include "protocol/rtml_json.h"
#include "protocol/v2_rest.h"

namespace rtml::http {

struct Scratch;

// A predict in flight on a loop: its own scoring scratch (the loop decodes
// others while its stored features are read) and what answers it.
struct PendingPredict final : features::ReadDone {
  PendingPredict(Routes& routes, Scratch& owner) : routes(routes), owner(owner) {}
  void OnRead(Status read) override;

  Routes& routes;
  Scratch& owner;
  pipeline::ScoreScratch score;
  std::shared_ptr<LaterAnswer> answer;  // set while a read is in flight
  Status read;                          // its outcome, once in
  const Request* req = nullptr;
  Response* res = nullptr;
  std::string request_id, model;  // for its log lines
  bool v2 = false;                 // its errors take V2's shape
};

// Predicts in flight per loop, past which its queue waits (Busy()).
constexpr size_t kMaxInFlight = 256;
// Predicts whose features came are scored in turns of this long at most (as
// the server's queue scores new ones), the loop's other work between two.
constexpr auto kResumeTurn = std::chrono::microseconds(250);
// Past this, an idle scratch's buffers are let go (but for the last one):
// 256 in flight must not each keep a big request's buffers for ever.
constexpr size_t kKeepBytes = 256 * 1024;

struct Scratch : ThreadState {
  explicit Scratch(boost::asio::io_context& io) : io(io) {}
  boost::asio::io_context& io;
  pipeline::ScoreScratch score;  // includes this loop's feature-store session
  std::unique_ptr<features::AsyncReads> reads;  // null: the store's reads are local
  std::vector<PendingPredict*> ready;  // read, waiting for their turn to be scored
  size_t ready_head = 0;
  bool resume_posted = false;
  std::vector<std::unique_ptr<PendingPredict>> all;  // made as needed, then reused
  std::vector<PendingPredict*> idle;                 // last in first out
  size_t in_flight = 0;  // predicts waiting for their stored features
  PendingPredict& Take(Routes& routes) {
    if (idle.empty()) idle.push_back(all.emplace_back(new PendingPredict(routes, *this)).get());
    PendingPredict* p = idle.back();
    idle.pop_back();
    return *p;
  }
  // Back to the pool; a scratch holding models older than `generation` (a
  // swap happened) lets go of them, so idle scratches keep no unloaded
  // model alive.
  void GiveBack(PendingPredict& p, uint64_t generation) {
    if (p.score.snapshot.generation != generation) p.score.snapshot = {};
    if (!idle.empty() || in_flight > 0) Trim(p.score);
    idle.push_back(&p);
  }
  static void Trim(pipeline::ScoreScratch& s) {
    if (s.padded.capacity() > kKeepBytes) {
      std::string().swap(s.padded);
      s.parser = simdjson::ondemand::parser();
    }
    if (s.rows.capacity() * sizeof(float) > kKeepBytes) {
      std::vector<float>().swap(s.rows);
      std::vector<schema::Cell>().swap(s.cells);
      std::vector<std::string>().swap(s.keys);
      std::vector<float>().swap(s.outputs);
    }
  }
  // After a swap: every idle scratch lets go of the models it held.
  void ForgetSnapshots() {
    for (PendingPredict* q : idle) q->score.snapshot = {};
  }
  uint64_t id_prefix = std::random_device{}();  // request ids: <prefix>-<counter>
  uint64_t id_counter = 0;
  std::string request_id;
  std::vector<std::string_view> segments;  // of the current request's path
  std::string log_model;  // the default model's name, for /predict's log lines
};

namespace {

spdlog::logger& Log() {
  static spdlog::logger& log = observability::ComponentLogger("http");
  return log;
}

constexpr unsigned kCodes[] = {200, 400, 401, 403, 404, 405, 413, 415, 422, 500, 503, 504};

// The client's X-Request-Id when it is sane, else a new one.
void TakeRequestId(const Request& req, Scratch& s) {
  auto it = req.find("X-Request-Id");
  if (it != req.end() && !it->value().empty() && it->value().size() <= 128 &&
      std::all_of(it->value().begin(), it->value().end(),
                  [](char c) { return c > 32 && c < 127; })) {
    s.request_id.assign(it->value());
    return;
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08llx-%llx",
                static_cast<unsigned long long>(s.id_prefix & 0xffffffff),
                static_cast<unsigned long long>(++s.id_counter));
  s.request_id = buf;
}

bool IsJsonContentType(std::string_view ct) {
  if (ct.empty()) return true;  // absent: assume JSON
  const size_t semi = ct.find(';');
  std::string_view type = ct.substr(0, semi);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  constexpr std::string_view kJson = "application/json";
  if (type.size() != kJson.size()) return false;
  for (size_t i = 0; i < type.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(type[i])) != kJson[i]) return false;
  }
  return true;
}

// JSON bodies only: a missing Content-Type is taken as JSON.
Status CheckContentType(const Request& req) {
  auto it = req.find(bhttp::field::content_type);
  if (it == req.end() || IsJsonContentType(it->value())) return Status::Ok();
  return Status(StatusCode::kUnsupportedMedia,
                "Content-Type must be application/json, not '" + std::string(it->value()) + "'",
                "unsupported_media_type", "Content-Type");
}


void WriteInputs(JsonWriter& w, const model::ModelVersion& v) {
  w.Key("inputs").BeginArray();
  for (const schema::FeatureSpec& f : v.schema.features()) {
    w.BeginObject().Key("name").String(f.name).Key("dtype").String(schema::DTypeName(f.dtype));
    if (f.default_value && f.dtype == schema::DType::kBool) {
      w.Key("default").Bool(*f.default_value != 0.0);
    } else if (f.default_value) {
      w.Key("default").Double(*f.default_value);
    }
    if (f.min) w.Key("min").Double(*f.min);
    if (f.max) w.Key("max").Double(*f.max);
    w.Key("required").Bool(f.required);
    w.EndObject();
  }
  w.EndArray();
}

void WritePolicy(JsonWriter& w, const model::ServingPolicy& p);

void WriteModel(JsonWriter& w, const model::ModelEntry& e) {
  const model::ModelVersion& def = *e.Get(std::nullopt);
  w.BeginObject().Key("name").String(e.name).Key("default_version").Int(e.default_version);
  w.Key("versions").BeginArray();
  for (const auto& [number, v] : e.versions) {
    w.BeginObject().Key("version").Int(number).Key("backend").String(v->model->backend());
    w.Key("objective").String(v->model->objective());
    w.Key("output").String(model::OutputKindName(v->spec.output));
    if (!v->spec.labels.empty()) {
      w.Key("labels").BeginArray();
      for (const auto& l : v->spec.labels) w.String(l);
      w.EndArray();
    }
    if (!v->spec.description.empty()) w.Key("description").String(v->spec.description);
    WriteInputs(w, *v);
    w.EndObject();
  }
  w.EndArray();
  w.Key("serving_policy");
  WritePolicy(w, e.policy);
  WriteInputs(w, def);  // the default version's inputs, at top level
  w.EndObject();
}

}  // namespace

void SetJson(Response& res, bhttp::status status) {
  res.result(status);
  res.set(bhttp::field::content_type, "application/json");
}

bhttp::status HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return bhttp::status::ok;
    case StatusCode::kInvalidArgument: return bhttp::status::bad_request;
    case StatusCode::kNotFound: return bhttp::status::not_found;
    case StatusCode::kPayloadTooLarge: return bhttp::status::payload_too_large;
    case StatusCode::kUnsupportedMedia: return bhttp::status::unsupported_media_type;
    case StatusCode::kMethodNotAllowed: return bhttp::status::method_not_allowed;
    case StatusCode::kUnauthenticated: return bhttp::status::unauthorized;
    case StatusCode::kPermissionDenied: return bhttp::status::forbidden;
    case StatusCode::kUnavailable: return bhttp::status::service_unavailable;
    case StatusCode::kDeadlineExceeded: return bhttp::status::gateway_timeout;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kInternal: return bhttp::status::internal_server_error;
  }
  return bhttp::status::internal_server_error;
}

Routes::Routes(const pipeline::Scorer& scorer, const features::FeatureStore* store,
               observability::Registry* metrics)
    : scorer_(scorer), store_(store), metrics_(metrics) {
  for (const char* reason : pipeline::kErrorReasons) {
    errors_.push_back({reason, metrics->AddCounter("rtml_request_errors_total",
                                                   "Requests refused, by reason.",
                                                   {{"reason", reason}})});
  }
  queue_wait_ = metrics->AddHistogram(
      "rtml_http_queue_wait_seconds",
      "How long predicts waited in their event loop's queue before scoring started.", {},
      observability::LatencyBucketsSeconds());
  for (unsigned code : kCodes) {
    responses_.emplace_back(code, metrics->AddCounter("rtml_http_responses_total",
                                                      "HTTP responses, by status code.",
                                                      {{"code", std::to_string(code)}}));
  }
}

std::unique_ptr<ThreadState> Routes::NewThreadState(boost::asio::io_context& io) {
  auto state = std::make_unique<Scratch>(io);
  if (store_ != nullptr) state->reads = store_->online().NewAsyncReads(io);
  return state;
}

bool Routes::Busy(const ThreadState& state) const {
  return static_cast<const Scratch&>(state).in_flight >= kMaxInFlight;
}

// The model a predict path names (the default model's for /predict), for log
// lines about the request; empty for other paths.
std::string_view Routes::ModelForLog(const std::vector<std::string_view>& p,
                                    ThreadState& state) const {
  if (p.size() == 1 && p[0] == "predict") {
    Scratch& scratch = static_cast<Scratch&>(state);
    const model::ModelEntry* def = scorer_.Models(&scratch.score).default_model();
    // A copy: the snapshot may be replaced before the request's last log line.
    scratch.log_model.assign(def != nullptr ? std::string_view(def->name) : std::string_view());
    return scratch.log_model;
  }
  if (p.size() >= 4 && p[0] == "v1" && p[1] == "models" && p.back() == "predict") return p[2];
  if (p.size() >= 4 && p[0] == "v2" && p[1] == "models" && p.back() == "infer") return p[2];
  return {};
}

// The routes the table says queue (predict and infer), as Route() reads the
// path: empty segments skipped, so "//predict" is one too. No allocation.
bool Routes::Queued(const Request& req) const {
  if (req.method() != bhttp::verb::post) return false;
  std::array<std::string_view, 8> seg;
  const size_t n = PathSegments(req.target(), seg);
  if (n > seg.size()) return false;
  const Table::Match m = table_.Find(std::span(seg.data(), n), kPost);
  return m.method_ok && m.route->queued;
}

Deferred Routes::Handle(const Request& req, Response& res, ThreadState& state,
                        RequestContext& context) {
  Scratch& scratch = static_cast<Scratch&>(state);
  TakeRequestId(req, scratch);
  res.set("X-Request-Id", scratch.request_id);
  PathSegments(req.target(), &scratch.segments);
  const std::vector<std::string_view>& p = scratch.segments;
  const observability::LogScope log_scope(
      {.model = ModelForLog(p, state), .request_id = scratch.request_id});
  if (metrics_on_ && context.queue_wait.count() > 0) {
    queue_wait_->Observe(std::chrono::duration<double>(context.queue_wait).count());
  }
  const bool offered = context.later != nullptr;
  Deferred later = Route(req, res, state, context);
  const bool answered_later = offered && context.later == nullptr;  // by ResumePredict
  if (!later && !answered_later) Finish(req, res);
  return later;
}

void Routes::HandleRefused(const Request& req, const Status& why, Response& res,
                           ThreadState& state) {
  Scratch& scratch = static_cast<Scratch&>(state);
  TakeRequestId(req, scratch);
  res.set("X-Request-Id", scratch.request_id);
  Error(why, res);
  Finish(req, res);
}

// Counts and logs an answered request.
void Routes::Finish(const Request& req, const Response& res) {
  CountResponse(res.result_int());
  // No line per request at INFO: refusals (and 503s while a dependency is
  // down, which its own metrics and logs report) at DEBUG; internal errors,
  // which no client can fix, at WARN with the request id to find them.
  const auto level = res.result_int() == 500   ? spdlog::level::warn
                     : res.result_int() >= 400 ? spdlog::level::debug
                                               : spdlog::level::trace;
  if (Log().should_log(level)) {
    Log().log(level, "{} {} -> {}: {}", std::string(req.method_string()),
              std::string(req.target()), res.result_int(), res.body());
  }
}

namespace {
uint8_t MethodOf(bhttp::verb v) {
  return v == bhttp::verb::get || v == bhttp::verb::head ? kGet
         : v == bhttp::verb::post                        ? kPost
                                                         : 0;
}
}  // namespace

Deferred Routes::Route(const Request& req, Response& res, ThreadState& state,
                       RequestContext& context) {
  const std::vector<std::string_view>& p = static_cast<Scratch&>(state).segments;
  const Table::Match m = table_.Find(p, MethodOf(req.method()));
  if (m.route == nullptr) {
    const bool v2 = ShapeFor(p) == Shape::kV2;
    ErrorIn(ShapeFor(p),
            NotFound("no route for " + std::string(req.method_string()) + " " +
                         std::string(req.target()) +
                         (v2 ? " (see GET /v2/models/{name}; infer with POST "
                               "/v2/models/{name}/infer)"
                             : " (see GET /v1/models; predict with POST /predict)"),
                     "not_found"),
            res);
    return {};
  }
  if (!m.method_ok) {
    WrongMethod(req, m.allowed, m.route->handle.shape, res);
    return {};
  }
  Call call{req, res, state, context, m.args};
  return m.route->handle.fn(*this, call);
}

// The shape of a path's errors: its routes', else V2's under /v2.
Routes::Shape Routes::ShapeFor(std::span<const std::string_view> path) const {
  const Table::Match m = table_.Find(path, kGet | kPost);
  if (m.route != nullptr) return m.route->handle.shape;
  return !path.empty() && path[0] == "v2" ? Shape::kV2 : Shape::kRtml;
}

Routes::Table Routes::MakeTable() {
  using pipeline::ScoreTarget;
  constexpr Shape kFeast = Shape::kFeast, kV2 = Shape::kV2;
#define RTML_NOW(body) [](Routes& r, Call& c) -> Deferred { body; return {}; }
  return Table({
      // Predicts first: the hot path matches in one comparison.
      {"/predict", kPost, true, {RTML_NOW(r.Predict(c, {}, "", Shape::kRtml))}},
      {"/v1/models/{}/predict", kPost, true,
       {RTML_NOW(r.Predict(c, {.model = c.args[0]}, "", Shape::kRtml))}},
      {"/v1/models/{}/versions/{}/predict", kPost, true,
       {RTML_NOW(r.Predict(c, {.model = c.args[0]}, c.args[1], Shape::kRtml))}},
      {"/v1/models/{}/labels/{}/predict", kPost, true,
       {RTML_NOW(r.Predict(c, {.model = c.args[0], .label = c.args[1]}, "", Shape::kRtml))}},
      {"/v2/models/{}/infer", kPost, true,
       {RTML_NOW(r.Predict(c, {.model = c.args[0]}, "", kV2)), kV2}},
      {"/v2/models/{}/versions/{}/infer", kPost, true,
       {RTML_NOW(r.Predict(c, {.model = c.args[0]}, c.args[1], kV2)), kV2}},
      {"/healthz", kGet, false, {RTML_NOW(r.Health(c.res))}},
      {"/readyz", kGet, false, {RTML_NOW(r.Ready(c.res))}},
      {"/metrics", kGet, false, {RTML_NOW(r.Metrics(c.res))}},
      {"/v1/stats", kGet, false, {RTML_NOW(r.Stats(c.res))}},
      {"/v1/models", kGet, false, {RTML_NOW(r.ListModels("", c.res))}},
      {"/v1/models/{}", kGet, false, {RTML_NOW(r.ListModels(c.args[0], c.res))}},
      {"/v1/repository/index", kGet, false,
       {RTML_NOW(Status s = r.CheckAdmin(c.req, c.res);
                 s.ok() ? r.RepositoryIndex(c.res) : r.Error(s, c.res))}},
      {"/v1/repository/models/{}/load", kPost, false,
       {[](Routes& r, Call& c) { return r.RepositoryChangeRoute(c, true); }}},
      {"/v1/repository/models/{}/unload", kPost, false,
       {[](Routes& r, Call& c) { return r.RepositoryChangeRoute(c, false); }}},
      {"/v1/features/push", kPost, false,
       {RTML_NOW(Status s = r.CheckAdmin(c.req, c.res);
                 s.ok() ? r.FeatureApi(c.req, "push", c.res, c.state) : r.Error(s, c.res))}},
      {"/v1/features/get-online-features", kPost, false,
       {RTML_NOW(r.FeatureApi(c.req, "get-online-features", c.res, c.state))}},
      {"/v1/features", kGet, false, {RTML_NOW(r.ListFeatures(c.res))}},
      {"/get-online-features", kPost, false, {&FeastAt<feast::Op::kGetOnlineFeatures>, kFeast}},
      {"/push", kPost, false, {&FeastAt<feast::Op::kPush>, kFeast}},
      {"/write-to-online-store", kPost, false, {&FeastAt<feast::Op::kWriteToOnlineStore>, kFeast}},
      {"/materialize", kPost, false, {&FeastAt<feast::Op::kMaterialize>, kFeast}},
      {"/materialize-incremental", kPost, false,
       {&FeastAt<feast::Op::kMaterializeIncremental>, kFeast}},
      {"/health", kGet, false, {&FeastAt<feast::Op::kHealth>, kFeast}},
      {"/retrieve-online-documents", kPost, false, {&FeastAt<feast::Op::kVectorSearch>, kFeast}},
      {"/search", kPost, false, {&FeastAt<feast::Op::kVectorSearch>, kFeast}},
      {"/v2", kGet, false, {RTML_NOW(r.V2Server(c.res)), kV2}},
      {"/v2/health/live", kGet, false,
       {RTML_NOW(c.res.body() = R"({"live":true})"; SetJson(c.res, bhttp::status::ok)), kV2}},
      {"/v2/health/ready", kGet, false, {RTML_NOW(r.V2Ready(c.res)), kV2}},
      {"/v2/repository/index", kPost, false, {RTML_NOW(r.V2RepositoryIndex(c)), kV2}},
      {"/v2/repository/models/{}/load", kPost, false,
       {[](Routes& r, Call& c) { return r.V2RepositoryChange(c, true); }, kV2}},
      {"/v2/repository/models/{}/unload", kPost, false,
       {[](Routes& r, Call& c) { return r.V2RepositoryChange(c, false); }, kV2}},
      {"/v2/models/stats", kGet, false, {RTML_NOW(r.V2Statistics("", "", c.res)), kV2}},
      {"/v2/models/{}/stats", kGet, false, {RTML_NOW(r.V2Statistics(c.args[0], "", c.res)), kV2}},
      {"/v2/models/{}/versions/{}/stats", kGet, false,
       {RTML_NOW(r.V2Statistics(c.args[0], c.args[1], c.res)), kV2}},
      {"/v2/models/{}", kGet, false, {RTML_NOW(r.V2ModelMetadata(c.args[0], "", false, c.res)), kV2}},
      {"/v2/models/{}/versions/{}", kGet, false,
       {RTML_NOW(r.V2ModelMetadata(c.args[0], c.args[1], false, c.res)), kV2}},
      {"/v2/models/{}/ready", kGet, false,
       {RTML_NOW(r.V2ModelMetadata(c.args[0], "", true, c.res)), kV2}},
      {"/v2/models/{}/versions/{}/ready", kGet, false,
       {RTML_NOW(r.V2ModelMetadata(c.args[0], c.args[1], true, c.res)), kV2}},
      {"/favicon.ico", kGet, false,
       {RTML_NOW(c.res.result(bhttp::status::no_content))}},  // browsers ask; there is none
      {"/", kGet, false, {RTML_NOW(r.Dashboard(c.res))}},
      {"/index.html", kGet, false, {RTML_NOW(r.Dashboard(c.res))}},
  });
#undef RTML_NOW
}

namespace {

// 200 with the answer: JSON, or (binary_header > 0) a JSON header of that
// many bytes and binary tensors after it (V2's binary extension).
void SetAnswer(Response& res, uint64_t binary_header) {
  if (binary_header == 0) return SetJson(res, bhttp::status::ok);
  res.result(bhttp::status::ok);
  res.set(bhttp::field::content_type, "application/octet-stream");
  res.set("Inference-Header-Content-Length", std::to_string(binary_header));
}

// V2 bodies: JSON, or JSON and binary tensors (application/octet-stream, as
// the binary extension's examples send); tritonclient sends none.
Status CheckV2ContentType(const Request& req) {
  auto it = req.find(bhttp::field::content_type);
  if (it == req.end() || IsJsonContentType(it->value())) return Status::Ok();
  std::string_view type = it->value().substr(0, it->value().find(';'));
  if (type == "application/octet-stream") return Status::Ok();
  return Status(StatusCode::kUnsupportedMedia,
                "Content-Type must be application/json (or application/octet-stream with "
                "binary tensors), not '" + std::string(it->value()) + "'",
                "unsupported_media_type", "Content-Type");
}

// The request as its codec takes it: V2 with the binary extension's header.
Result<pipeline::Payload> PayloadOf(const Request& req, bool v2) {
  if (!v2) return protocol::Json(req.body());
  pipeline::Payload p = protocol::V2Json(req.body());
  auto it = req.find("Inference-Header-Content-Length");
  if (it == req.end()) return p;
  const std::string_view value = it->value();
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size() || n == 0) {
    return InvalidArgument("Inference-Header-Content-Length must be the JSON header's size in "
                           "bytes, not '" + std::string(value) + "'",
                           "bad_binary_data", "Inference-Header-Content-Length");
  }
  p.header_size = n;
  return p;
}

}  // namespace

void Routes::Predict(Call& c, const pipeline::ScoreTarget& base, std::string_view version,
                     Shape shape) {
  const Request& req = c.req;
  Response& res = c.res;
  const bool v2 = shape == Shape::kV2;
  if (Status s = v2 ? CheckV2ContentType(req) : CheckContentType(req); !s.ok()) {
    return ErrorIn(shape, s, res);
  }
  pipeline::ScoreTarget target = base;
  target.deadline = c.context.deadline;
  target.received = c.context.received;
  if (v2) target.path = pipeline::Path::kV2Rest;
  if (!version.empty()) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
      return ErrorIn(shape,
                     NotFound("version '" + std::string(version) + "' is not a positive integer",
                              "unknown_version"),
                     res);
    }
    target.version = v;
  }
  auto payload = PayloadOf(req, v2);
  if (!payload.ok()) return ErrorIn(shape, payload.status(), res);
  auto& scratch = static_cast<Scratch&>(c.state);
  PendingPredict& p = scratch.Take(*this);
  const uint64_t generation = scorer_.registry().generation();
  if (p.score.snapshot.repo != nullptr && p.score.snapshot.generation != generation) {
    scratch.ForgetSnapshots();
  }
  // Queued predicts read the store without blocking the loop, where it has a
  // network trip; the loop goes on with other work meanwhile.
  features::AsyncReads* reads = c.context.later != nullptr ? scratch.reads.get() : nullptr;
  Status s;
  const bool pending = scorer_.Start(target, *payload, &p.score, &res.body(), reads, &p, &s);
  c.context.rows = static_cast<int64_t>(p.score.rows_scored);
  if (pending) {
    p.answer = std::move(c.context.later);
    p.req = &req;
    p.res = &res;
    p.v2 = v2;
    p.request_id = scratch.request_id;
    p.model.assign(target.model.empty() ? std::string_view(scratch.log_model) : target.model);
    ++scratch.in_flight;
    return;
  }
  const uint64_t binary_header = p.score.pending.d.answer_header_size;
  scratch.GiveBack(p, generation);
  if (!s.ok()) return ErrorIn(shape, s, res);
  SetAnswer(res, binary_header);
}

// Its features are in: it waits for a turn of the loop to be scored (a
// burst of replies must not score hundreds of predicts in one go).
void PendingPredict::OnRead(Status status) {
  read = std::move(status);
  owner.ready.push_back(this);
  if (owner.resume_posted) return;
  owner.resume_posted = true;
  boost::asio::post(owner.io, [&routes = routes, &owner = owner] { routes.ResumeTurn(owner); });
}

// One turn: the predicts whose features came, in order, for up to
// kResumeTurn; the next turn is posted behind the loop's other work.
void Routes::ResumeTurn(Scratch& scratch) {
  scratch.resume_posted = false;
  const auto start = std::chrono::steady_clock::now();
  while (scratch.ready_head < scratch.ready.size()) {
    ResumePredict(*scratch.ready[scratch.ready_head++]);
    if (std::chrono::steady_clock::now() - start >= kResumeTurn) break;
  }
  if (scratch.ready_head == scratch.ready.size()) {
    scratch.ready.clear();
    scratch.ready_head = 0;
    return;
  }
  scratch.resume_posted = true;
  boost::asio::post(scratch.io, [this, &scratch] { ResumeTurn(scratch); });
}

// A predict's stored features are read: it is scored and answered.
void Routes::ResumePredict(PendingPredict& p) {
  const auto start = std::chrono::steady_clock::now();
  const observability::LogScope log_scope({.model = p.model, .request_id = p.request_id});
  Status s = scorer_.Resume(&p.score, std::move(p.read));
  s.ok() ? SetAnswer(*p.res, p.score.pending.d.answer_header_size)
         : ErrorIn(p.v2 ? Shape::kV2 : Shape::kRtml, s, *p.res);
  Finish(*p.req, *p.res);
  std::shared_ptr<LaterAnswer> answer = std::move(p.answer);
  const auto rows = static_cast<int64_t>(p.score.rows_scored);
  --p.owner.in_flight;
  p.owner.GiveBack(p, scorer_.registry().generation());
  answer->Send(rows, std::chrono::steady_clock::now() - start);
}

// 405 with the Allow header, in the route's error shape.
void Routes::WrongMethod(const Request& req, uint8_t allowed, Shape shape, Response& res) {
  const std::string allow = AllowHeader(allowed);
  res.set(bhttp::field::allow, allow);
  ErrorIn(shape,
          Status(StatusCode::kMethodNotAllowed,
                 std::string(req.method_string()) + " is not allowed on " +
                     std::string(req.target()) + " (use " + allow + ")",
                 "method_not_allowed"),
          res);
}

// POST /v1/repository/models/{name}/load|unload, admin only.
Deferred Routes::RepositoryChangeRoute(Call& c, bool load) {
  if (Status s = CheckAdmin(c.req, c.res); !s.ok()) {
    Error(s, c.res);
    return {};
  }
  return RepositoryChange(c.req, std::string(c.args[0]), load, c.res);
}

// Feast's routes: the admin token for writes.
Deferred Routes::FeastOp(feast::Op op, Call& c) {
  const bool writes = op != feast::Op::kHealth && op != feast::Op::kGetOnlineFeatures &&
                      op != feast::Op::kVectorSearch;
  if (Status s = writes ? CheckAdmin(c.req, c.res) : Status::Ok(); !s.ok()) {
    FeastError(s, c.res);
    return {};
  }
  return FeastRoute(op, c.req, c.res, c.state);
}

features::StoreSession& Routes::StoreSessionOf(ThreadState& state) const {
  auto& session = static_cast<Scratch&>(state).score.store;
  if (session == nullptr) session = store_->online().NewSession();
  return *session;
}

Status Routes::NoStore() {
  return NotFound("no feature store is configured (set features.definitions)", "not_found");
}

void Routes::FeatureApi(const Request& req, std::string_view op, Response& res,
                        ThreadState& state) {
  if (store_ == nullptr) return Error(NoStore(), res);
  if (Status s = CheckContentType(req); !s.ok()) return Error(s, res);
  features::StoreSession& session = StoreSessionOf(state);
  Status s = op == "push" ? store_->PushJson(req.body(), session, &res.body())
                          : store_->GetOnlineFeaturesJson(req.body(), session, &res.body());
  if (!s.ok()) return Error(s, res);
  SetJson(res, bhttp::status::ok);
}

Deferred Routes::FeastRoute(feast::Op op, const Request& req, Response& res,
                            ThreadState& state) {
  const bool materialize =
      op == feast::Op::kMaterialize || op == feast::Op::kMaterializeIncremental;
  if (materialize && store_ != nullptr && CheckContentType(req).ok()) {
    return MaterializeLater(op == feast::Op::kMaterializeIncremental, req,
                            static_cast<Scratch&>(state).request_id);
  }
  FeastNow(op, req, res, state);
  return {};
}

void Routes::FeastNow(feast::Op op, const Request& req, Response& res, ThreadState& state) {
  if (op == feast::Op::kHealth) {
    res.result(store_ != nullptr ? bhttp::status::ok : bhttp::status::service_unavailable);
    return;
  }
  if (store_ == nullptr) return FeastError(NoStore(), res);
  if (Status s = CheckContentType(req); !s.ok()) return FeastError(s, res);
  if (op == feast::Op::kVectorSearch) {
    return FeastError(NotFound("rtml's online store has no vector search (" +
                                   std::string(req.target()) + " of Feast's server)",
                               "not_found"),
                      res);
  }
  features::StoreSession& session = StoreSessionOf(state);
  Status s = op == feast::Op::kPush
                 ? store_->PushJson(req.body(), session, &res.body(), /*all_or_nothing=*/true)
             : op == feast::Op::kWriteToOnlineStore
                 ? store_->WriteToOnlineStoreJson(req.body(), session, &res.body())
                 : store_->GetOnlineFeaturesJson(req.body(), session, &res.body());
  if (!s.ok()) return FeastError(s, res);
  SetJson(res, bhttp::status::ok);
}

// Materializing reads files and writes the store for as long as it takes:
// it runs on the server's background worker, with its own store session.
Deferred Routes::MaterializeLater(bool incremental, const Request& req,
                                  std::string request_id) {
  return [this, incremental, &req, request_id = std::move(request_id)](Response& res) {
    const observability::LogScope log_scope({.request_id = request_id});
    const std::string_view target = req.target();
    const size_t q = target.find('?');
    auto request = feast::ParseMaterialize(
        req.body(), q == std::string_view::npos ? "" : target.substr(q + 1), incremental,
        store_->clock());
    if (!request.ok()) return FeastError(request.status(), res), Finish(req, res);
    auto session = store_->online().NewSession();
    auto listener = [](const features::ViewMaterialization& m, bool done) {
      if (!done) return Log().info("materialize {}: from {} to {}", m.view,
                                   m.start_us ? FormatTimestamp(*m.start_us) : "the beginning",
                                   FormatTimestamp(m.end_us));
      if (!m.status.ok()) return Log().warn("materialize {}: {}", m.view, m.status.message());
      Log().info("materialize {}: {} rows read, {} written, {} stale, {} outside the window, "
                 "{} rejected", m.view, m.result.rows, m.result.written, m.result.stale,
                 m.result.outside_window, m.result.rejected);
    };
    auto views = features::Materialize(*store_, *session, *request, listener);
    if (!views.ok()) return FeastError(views.status(), res), Finish(req, res);
    res.body() = features::MaterializeResultJson(*views);
    const bool failed = std::any_of(views->begin(), views->end(),
                                    [](const auto& m) { return !m.status.ok(); });
    SetJson(res, failed ? bhttp::status::internal_server_error : bhttp::status::ok);
    Finish(req, res);
  };
}

void Routes::ListFeatures(Response& res) {
  if (store_ == nullptr) return Error(NoStore(), res);
  res.body() = store_->definitions().ToJson();
  SetJson(res, bhttp::status::ok);
}

void Routes::ListModels(std::string_view name, Response& res) {
  JsonWriter w(&res.body());
  const auto repo = scorer_.repository();
  if (!name.empty()) {
    const model::ModelEntry* e = repo->Find(name);
    if (e == nullptr) {
      return Error(NotFound("unknown model '" + std::string(name) + "'", "unknown_model"), res);
    }
    WriteModel(w, *e);
  } else {
    const model::ModelEntry* def = repo->default_model();
    w.BeginObject();
    if (def != nullptr) w.Key("default_model").String(def->name);
    w.Key("models").BeginArray();
    for (const model::ModelEntry* e : repo->models()) WriteModel(w, *e);
    w.EndArray().EndObject();
  }
  SetJson(res, bhttp::status::ok);
}

Status Routes::CheckAdmin(const Request& req, Response& res) const {
  if (admin_token_.empty()) return Status::Ok();
  auto it = req.find(bhttp::field::authorization);
  constexpr std::string_view kBearer = "Bearer ";
  if (it == req.end() || !it->value().starts_with(kBearer)) {
    res.set(bhttp::field::www_authenticate, "Bearer");
    return Status(StatusCode::kUnauthenticated,
                  std::string(req.target()) +
                      " needs the admin token: send \"Authorization: Bearer <token>\" "
                      "(http.admin_token or RTML_ADMIN_TOKEN)",
                  "unauthorized", "Authorization");
  }
  const std::string_view given = it->value().substr(kBearer.size());
  unsigned char diff = given.size() == admin_token_.size() ? 0 : 1;  // constant time
  for (size_t i = 0; i < admin_token_.size(); ++i) {
    diff |= static_cast<unsigned char>(admin_token_[i] ^ (i < given.size() ? given[i] : 0));
  }
  if (diff != 0) {
    return Status(StatusCode::kPermissionDenied, "the bearer token is not the admin token",
                  "forbidden", "Authorization");
  }
  return Status::Ok();
}

namespace {

void WriteIndex(JsonWriter& w, const std::vector<model::VersionStatus>& index,
                std::string_view only_model, const model::ModelRepository& serving) {
  w.BeginArray();
  for (const model::VersionStatus& v : index) {
    if (!only_model.empty() && v.model != only_model) continue;
    const model::ModelEntry* e = serving.Find(v.model);
    const bool serves = e != nullptr && e->versions.count(v.version) > 0;
    w.BeginObject().Key("name").String(v.model).Key("version").Int(v.version);
    w.Key("state").String(model::VersionStateName(v.state)).Key("serving").Bool(serves);
    w.Key("size_bytes").Uint(v.size_bytes);
    if (!v.reason.empty()) w.Key("reason").String(v.reason);
    w.EndObject();
  }
  w.EndArray();
}

void WritePolicy(JsonWriter& w, const model::ServingPolicy& p) {
  w.BeginObject();
  if (p.default_version) w.Key("default").Int(*p.default_version);
  w.Key("labels").BeginObject();
  for (const auto& [label, v] : p.labels) w.Key(label).Int(v);
  w.EndObject().Key("traffic").BeginObject();
  for (const auto& [v, weight] : p.traffic) w.Key(std::to_string(v)).Uint(weight);
  w.EndObject();
  if (!p.sticky_key.empty()) w.Key("sticky_key").String(p.sticky_key);
  w.Key("shadow").BeginArray();
  for (int64_t v : p.shadow) w.Int(v);
  w.EndArray().EndObject();
}

void WritePolicies(JsonWriter& w, const std::vector<model::PolicyStatus>& policies,
                   std::string_view only_model) {
  w.BeginArray();
  for (const model::PolicyStatus& p : policies) {
    if (!only_model.empty() && p.model != only_model) continue;
    w.BeginObject().Key("name").String(p.model);
    w.Key("state").String(model::VersionStateName(p.state));
    if (!p.reason.empty()) w.Key("reason").String(p.reason);
    w.Key("in_force");
    WritePolicy(w, p.policy);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

void Routes::RepositoryIndex(Response& res) {
  JsonWriter w(&res.body());
  w.BeginObject().Key("models");
  WriteIndex(w, scorer_.registry().Index(), "", *scorer_.repository());
  w.Key("serving_policies");
  WritePolicies(w, scorer_.registry().Policies(), "");
  w.EndObject();
  SetJson(res, bhttp::status::ok);
}

// Loading reads and checks files, and waits for any load the poller runs:
// off the event loops, on the server's background worker.
Deferred Routes::RepositoryChange(const Request& req, std::string model, bool load,
                                  Response&) {
  return [this, &req, model = std::move(model), load](Response& res) {
    model::Registry& registry = scorer_.registry();
    Status s = load ? registry.LoadModel(model) : registry.UnloadModel(model);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      s = InvalidArgument((load ? "loading " : "unloading ") + model + ": " + s.message() +
                              " (versions that loaded serve; see GET /v1/repository/index)",
                          "model_load_failed");
    }
    if (!s.ok()) return Error(s, res), Finish(req, res);
    JsonWriter w(&res.body());
    w.BeginObject().Key("model").String(model).Key(load ? "loaded" : "unloaded").Bool(true);
    w.Key("versions");
    WriteIndex(w, registry.Index(), model, *scorer_.repository());
    w.Key("serving_policies");
    WritePolicies(w, registry.Policies(), model);
    w.EndObject();
    SetJson(res, bhttp::status::ok);
    Finish(req, res);
  };
}

void Routes::Health(Response& res) {
  res.body() = R"({"status":"ok"})";
  SetJson(res, bhttp::status::ok);
}

std::string Routes::NotReadyReason() const {
  if (draining_.load()) return "draining: the server is stopping";
  if (not_ready_) return not_ready_();
  return ready_.load() ? "" : "starting: the models are not serving yet";
}

void Routes::Ready(Response& res) {
  const std::string why = NotReadyReason();
  const bool ready = why.empty();
  JsonWriter w(&res.body());
  w.BeginObject().Key("ready").Bool(ready).Key("models").Uint(scorer_.repository()->models().size());
  if (!why.empty()) w.Key("reason").String(why);
  w.EndObject();
  SetJson(res, ready ? bhttp::status::ok : bhttp::status::service_unavailable);
}

void Routes::Metrics(Response& res) {
  res.body() = metrics_->Render();
  res.result(bhttp::status::ok);
  res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
}

void Routes::Dashboard(Response& res) {
  res.body() = kDashboardPage;
  res.result(bhttp::status::ok);
  res.set(bhttp::field::content_type, "text/html; charset=utf-8");
  res.set(bhttp::field::cache_control, "no-cache");
}

void Routes::Stats(Response& res) {
  JsonWriter w(&res.body());
  w.BeginObject().Key("uptime_s").Double(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  w.Key("series");
  scorer_.WriteStats(w);
  w.Key("drift");
  scorer_.WriteDrift(w);
  w.Key("shadow");
  scorer_.WriteShadow(w);
  const observability::DriftOptions& drift = scorer_.options().drift_options;
  w.Key("drift_thresholds").BeginObject().Key("warn").Double(drift.warn);
  w.Key("alert").Double(drift.alert).EndObject();
  w.Key("http_errors").BeginObject();
  for (const auto& [name, seconds] : {std::pair{"10s", 10}, {"1m", 60}, {"5m", 300}}) {
    const observability::WindowSummary e = errors_window_.Summarize(seconds);
    w.Key(name).BeginObject().Key("count").Uint(e.count).Key("rate_per_s").Double(e.rate_per_s);
    w.EndObject();
  }
  w.EndObject();
  if (extra_stats_) extra_stats_(w);
  w.EndObject();
  SetJson(res, bhttp::status::ok);
}

void Routes::HandleUnreadable(bhttp::status status, std::string_view why,
                              std::string_view target, Response& res) {
  const Status s = status == bhttp::status::payload_too_large
                       ? Status(StatusCode::kPayloadTooLarge,
                                "request body is larger than http.max_body_bytes",
                                "body_too_large")
                       : InvalidArgument("unreadable HTTP request: " + std::string(why),
                                         "bad_request");
  std::vector<std::string_view> path;  // Feast's and V2's routes answer in their shape
  PathSegments(target, &path);
  ErrorIn(ShapeFor(path), s, res);
  CountResponse(res.result_int());
}

void Routes::Error(const Status& status, Response& res) {
  const bhttp::status code = HttpStatusFor(status.code());
  res.body().clear();
  JsonWriter w(&res.body());
  w.BeginObject().Key("error").BeginObject();
  w.Key("code").Uint(static_cast<unsigned>(code));
  w.Key("reason").String(status.reason());
  if (!status.field().empty()) w.Key("field").String(status.field());
  w.Key("message").String(status.message());
  w.EndObject().EndObject();
  SetJson(res, code);
  CountError(status);
}

void Routes::ErrorIn(Shape shape, const Status& status, Response& res) {
  switch (shape) {
    case Shape::kRtml: return Error(status, res);
    case Shape::kFeast: return FeastError(status, res);
    case Shape::kV2: return V2Error(status, res);
  }
}

void Routes::FeastError(const Status& status, Response& res) {
  feast::WriteError(status, res);
  CountError(status);
}

void Routes::CountError(const Status& status) {
  errors_window_.Record(0);
  for (ErrorCounter& e : errors_) {
    if (e.reason == status.reason() || e.reason == "other") {
      e.counter->Inc();
      break;
    }
  }
}

void Routes::CountResponse(unsigned code) {
  if (!metrics_on_) return;
  for (auto& [c, counter] : responses_) {
    if (c == code) return counter->Inc();
  }
}

}  // namespace rtml::http
