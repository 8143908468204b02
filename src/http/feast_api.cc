#include "http/feast_api.h"

#include <simdjson.h>

#include "common/json_scan.h"
#include "common/json_writer.h"
#include "common/time_format.h"
#include "http/routes.h"

namespace rtml::http::feast {
namespace dom = simdjson::dom;
namespace {

struct ErrorClass {
  const char* name;
  unsigned http_status;  // 0: rtml's own for the Status code
};

// Feast's exception class (feast/errors.py) for an rtml reason.
ErrorClass ClassFor(std::string_view reason) {
  if (reason == "unknown_feature_view") return {"FeatureViewNotFoundException", 404};
  if (reason == "unknown_feature_service") return {"FeatureServiceNotFoundException", 404};
  if (reason == "unknown_push_source") return {"PushSourceNotFoundException", 422};
  return {"FeastError", 0};
}

// A timestamp field of the body ("start_ts", "end_ts").
Result<int64_t> TimestampField(dom::object obj, const char* key) {
  std::string_view text;
  if (obj[key].get(text)) {
    return InvalidArgument(std::string("\"") + key +
                               "\" is required: an ISO 8601 timestamp string",
                           "bad_request", key);
  }
  auto ts = ParseTimestamp(text);
  if (!ts.ok()) {
    return Status(ts.status().code(), ts.status().message(), std::string(ts.status().reason()),
                  key);
  }
  return *ts;
}

// "feature_views": null, absent or a list of names.
Result<std::vector<std::string>> ViewNames(dom::object obj) {
  std::vector<std::string> names;
  dom::element e;
  if (obj["feature_views"].get(e) || e.is_null()) return names;
  dom::array list;
  if (e.get(list)) {
    return InvalidArgument("\"feature_views\" must be a list of feature view names",
                           "wrong_type", "feature_views");
  }
  for (dom::element v : list) {
    std::string_view name;
    if (v.get(name)) {
      return InvalidArgument("\"feature_views\" must hold strings", "wrong_type",
                             "feature_views");
    }
    names.emplace_back(name);
  }
  return names;
}

// Refuses Feast's ?async= and ?force= (rtml answers when the work is done).
Status CheckQuery(std::string_view query) {
  for (std::string_view flag : {"async=", "force="}) {
    const size_t at = query.find(flag);
    if (at == std::string_view::npos || (at > 0 && query[at - 1] != '&')) continue;
    std::string_view value = query.substr(at + flag.size());
    value = value.substr(0, value.find('&'));
    if (value == "true" || value == "True" || value == "1") {
      return InvalidArgument("?" + std::string(flag) + std::string(value) +
                                 ": rtml materializes synchronously and answers when done; "
                                 "leave out async and force",
                             "bad_request", std::string(flag.substr(0, flag.size() - 1)));
    }
  }
  return Status::Ok();
}

}  // namespace

void WriteError(const Status& status, Response& res) {
  const ErrorClass c = ClassFor(status.reason());
  std::string detail;
  JsonWriter d(&detail);
  d.BeginObject().Key("module").String("feast.errors").Key("class").String(c.name);
  d.Key("message").String(status.message()).Key("reason").String(status.reason());
  if (!status.field().empty()) d.Key("field").String(status.field());
  d.EndObject();
  res.body().clear();
  JsonWriter w(&res.body());
  w.String(detail);  // Feast's server sends the detail as a JSON string
  res.result(c.http_status != 0 ? static_cast<bhttp::status>(c.http_status)
                                : HttpStatusFor(status.code()));
  res.set(bhttp::field::content_type, "application/json");
}

Result<features::MaterializeRequest> ParseMaterialize(std::string_view body,
                                                      std::string_view query, bool incremental,
                                                      const Clock& clock) {
  RETURN_IF_ERROR(CheckQuery(query));
  dom::parser parser;
  dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc)) return MalformedJson(body);
  dom::object obj;
  if (doc.get(obj)) return InvalidArgument("request body must be a JSON object", "bad_request");
  std::string_view version;
  if (!obj["version"].get(version)) {
    return InvalidArgument("\"version\": rtml's feature views have no versions; leave it out",
                           "bad_request", "version");
  }
  features::MaterializeRequest r{.incremental = incremental};
  ASSIGN_OR_RETURN(r.views, ViewNames(obj));
  bool all = false;
  if (!incremental && !obj["disable_event_timestamp"].get(all) && all) {
    r.end_us = clock.NowMicros();  // everything up to now, as Feast does
    return r;
  }
  ASSIGN_OR_RETURN(r.end_us, TimestampField(obj, "end_ts"));
  if (incremental) return r;
  ASSIGN_OR_RETURN(int64_t start_us, TimestampField(obj, "start_ts"));
  if (start_us >= r.end_us) {
    return InvalidArgument("start_ts (" + FormatTimestamp(start_us) + ") must be before end_ts (" +
                               FormatTimestamp(r.end_us) + ")",
                           "bad_request", "start_ts");
  }
  r.start_us = start_us;
  return r;
}

}  // namespace rtml::http::feast
