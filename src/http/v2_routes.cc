// The Open Inference Protocol's (KServe V2) metadata, health and error
// routes; inference is Routes::Predict with the V2 codec
// (protocol/v2_rest.h).
#include <charconv>

#include "common/json_writer.h"
#include "http/routes.h"
#include "protocol/v2_rest.h"

namespace rtml::http {

// GET /v2: the server's name, version and the protocol extensions it has.
void Routes::V2Server(Response& res) {
  JsonWriter w(&res.body());
  w.BeginObject().Key("name").String("rtml").Key("version").String(RTML_VERSION);
  w.Key("extensions").BeginArray().String("binary_tensor_data").EndArray().EndObject();
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
  std::optional<int64_t> number;
  if (!version.empty()) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
      return V2Error(NotFound("version '" + std::string(version) + "' is not a positive integer",
                              "unknown_version"),
                     res);
    }
    number = v;
  }
  const model::ModelVersion* v = e->Get(number);
  if (v == nullptr) {
    return V2Error(NotFound("model '" + e->name + "' has no version " + std::string(version) +
                                " loaded",
                            "unknown_version"),
                   res);
  }
  JsonWriter w(&res.body());
  if (ready_only) {
    // A version is served only once loaded, checked and warmed up.
    w.BeginObject().Key("name").String(e->name).Key("ready").Bool(true).EndObject();
  } else {
    protocol::WriteV2ModelMetadata(w, *e, *v, scorer_.EntityKeys(*v));
  }
  SetJson(res, bhttp::status::ok);
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
