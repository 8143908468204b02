// The Open Inference Protocol's (KServe V2) metadata, health and error
// routes; inference is Routes::Predict with the V2 codec
// (protocol/v2_rest.h).
#include <simdjson.h>

#include "common/json_writer.h"
#include "http/routes.h"
#include "protocol/v2_rest.h"
#include "protocol/v2_tensor.h"

namespace rtml::http {

// GET /v2: the server's name, version and the protocol extensions it has.
void Routes::V2Server(Response& res) {
  JsonWriter w(&res.body());
  w.BeginObject().Key("name").String("rtml").Key("version").String(RTML_VERSION);
  w.Key("extensions").BeginArray().String("binary_tensor_data").String("model_repository");
  w.String("parameters").String("statistics").EndArray().EndObject();
  SetJson(res, bhttp::status::ok);
}

// GET /v2/health/ready: as /readyz (503 with the reason while not ready).
void Routes::V2Ready(Response& res) {
  const std::string why = NotReadyReason();
  JsonWriter w(&res.body());
  w.BeginObject().Key("ready").Bool(why.empty());
  if (!why.empty()) w.Key("reason").String(why);
  w.EndObject();
  SetJson(res, why.empty() ? bhttp::status::ok : bhttp::status::service_unavailable);
}

// GET /v2/models/{m}[/versions/{v}] (metadata) and .../ready.
void Routes::V2ModelMetadata(std::string_view model, std::string_view version, bool ready_only,
                             Response& res) {
  const auto repo = scorer_.repository();
  const model::ModelEntry* e = repo->Find(model);
  if (e == nullptr) {
    return V2Error(NotFound("unknown model '" + std::string(model) + "'", "unknown_model"), res);
  }
  auto number = protocol::v2::VersionNumber(version);
  if (!number.ok()) return V2Error(number.status(), res);
  const model::ModelVersion* v = e->Get(*number);
  if (v == nullptr) return V2Error(e->NoSuchVersion(version), res);
  JsonWriter w(&res.body());
  if (ready_only) {
    // A version is served only once loaded, checked and warmed up.
    w.BeginObject().Key("name").String(e->name).Key("ready").Bool(true).EndObject();
  } else {
    protocol::WriteV2ModelMetadata(w, *e, *v, scorer_.EntityKeys(*v));
  }
  SetJson(res, bhttp::status::ok);
}

// GET /v2/models[/{m}[/versions/{v}]]/stats: the statistics extension.
void Routes::V2Statistics(std::string_view model, std::string_view version, Response& res) {
  auto number = protocol::v2::VersionNumber(version);
  if (!number.ok()) return V2Error(number.status(), res);
  auto totals = scorer_.Totals(model, *number);
  if (!totals.ok()) return V2Error(totals.status(), res);
  JsonWriter w(&res.body());
  protocol::WriteV2ModelStatistics(w, *totals);
  SetJson(res, bhttp::status::ok);
}

namespace {

// Triton's names for a version's state: READY, LOADING, UNAVAILABLE.
std::string_view V2State(model::VersionState s) {
  switch (s) {
    case model::VersionState::kReady: return "READY";
    case model::VersionState::kLoading: return "LOADING";
    default: return "UNAVAILABLE";
  }
}

// The optional JSON object a repository request may carry (an empty body
// is none); `ready` in it, if asked for.
Status ReadRepositoryBody(std::string_view body, bool* ready_only) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return Status::Ok();
  simdjson::dom::parser parser;
  simdjson::dom::object o;
  if (parser.parse(body.data(), body.size()).get(o)) {
    return InvalidArgument("a repository request's body is empty or a JSON object",
                           "bad_request");
  }
  simdjson::dom::element ready;
  if (ready_only != nullptr && !o["ready"].get(ready)) {
    if (ready.get(*ready_only)) {
      return InvalidArgument("\"ready\" must be true or false", "wrong_type", "ready");
    }
  }
  return Status::Ok();
}

}  // namespace

// POST /v2/repository/index (admin): every version on disk and its state,
// {"ready": true}: only those that serve.
void Routes::V2RepositoryIndex(Call& c) {
  bool ready_only = false;
  if (Status s = CheckAdmin(c.req, c.res); !s.ok()) return V2Error(s, c.res);
  if (Status s = ReadRepositoryBody(c.req.body(), &ready_only); !s.ok()) return V2Error(s, c.res);
  JsonWriter w(&c.res.body());
  w.BeginArray();
  for (const model::VersionStatus& v : scorer_.registry().Index()) {
    if (ready_only && v.state != model::VersionState::kReady) continue;
    w.BeginObject().Key("name").String(v.model).Key("version").String(std::to_string(v.version));
    w.Key("state").String(V2State(v.state)).Key("reason").String(v.reason).EndObject();
  }
  w.EndArray();
  SetJson(c.res, bhttp::status::ok);
}

// POST /v2/repository/models/{m}/load|unload (admin): as /v1/repository's,
// off the event loops; 200 {} once done, else 400 (404 unknown) naming why.
Deferred Routes::V2RepositoryChange(Call& c, bool load) {
  if (Status s = CheckAdmin(c.req, c.res); !s.ok()) return V2Error(s, c.res), Deferred();
  if (Status s = ReadRepositoryBody(c.req.body(), nullptr); !s.ok()) {
    return V2Error(s, c.res), Deferred();
  }
  return [this, &req = c.req, model = std::string(c.args[0]), load](Response& res) {
    model::Registry& registry = scorer_.registry();
    Status s = load ? registry.LoadModel(model) : registry.UnloadModel(model);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      s = InvalidArgument((load ? "loading " : "unloading ") + model + ": " + s.message(),
                          "model_load_failed");
    }
    if (!s.ok()) return V2Error(s, res), Finish(req, res);
    res.body() = "{}";
    SetJson(res, bhttp::status::ok);
    Finish(req, res);
  };
}

// {"error": "<message>"} as the spec has it, plus rtml's reason and field.
void Routes::V2Error(const Status& status, Response& res) {
  const bhttp::status code = HttpStatusFor(status.code());
  res.body().clear();
  JsonWriter w(&res.body());
  w.BeginObject().Key("error").String(status.message()).Key("reason").String(status.reason());
  if (!status.field().empty()) w.Key("field").String(status.field());
  w.EndObject();
  SetJson(res, code);
  CountError(status);
}

}  // namespace rtml::http
