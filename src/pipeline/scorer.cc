#include "pipeline/scorer.h"

#include "common/json_scan.h"
#include "common/json_writer.h"

namespace rtml::pipeline {
namespace od = simdjson::ondemand;
using model::ModelVersion;
using model::OutputKind;
using schema::Cell;

namespace {

Status Malformed(std::string_view body, simdjson::error_code e) {
  if (auto err = FindJsonSyntaxError(body)) {
    return InvalidArgument("malformed JSON at byte " + std::to_string(err->offset) + ": " +
                               err->message,
                           "malformed_json");
  }
  return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(e),
                         "malformed_json");
}

Status JsonFail(simdjson::error_code e) {
  return InvalidArgument(simdjson::error_message(e), "malformed_json");
}

Status BadStructure(std::string message, std::string field) {
  return InvalidArgument(std::move(message), "bad_request", std::move(field));
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' ||
                        s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

void WriteNames(JsonWriter& w, const schema::InputSchema& schema, const Cell* cells, Cell want) {
  w.BeginArray();
  for (int i = 0; i < schema.size(); ++i) {
    if (cells[i] == want) w.String(schema.feature(i).name);
  }
  w.EndArray();
}

}  // namespace

Scorer::Scorer(const model::ModelRepository& repo, ScoringOptions options,
               observability::Registry* metrics)
    : repo_(repo), options_(options) {
  for (const model::ModelEntry* entry : repo.models()) {
    for (const auto& [version, v] : entry->versions) {
      observability::Labels labels{{"model", entry->name}, {"version", std::to_string(version)}};
      metrics_[v.get()] = VersionMetrics{
          metrics->AddCounter("rtml_requests_total",
                              "Predict requests answered successfully, by model and version.",
                              labels),
          metrics->AddCounter("rtml_predictions_total", "Rows scored, by model and version.",
                              labels),
          metrics->AddHistogram("rtml_request_duration_seconds",
                                "Time to decode, score and encode a predict request.", labels,
                                observability::LatencyBucketsSeconds())};
    }
  }
}

schema::RowDecoder Scorer::DecoderFor(const ModelVersion& v) const {
  const bool ignore = v.spec.ignore_unknown_features.value_or(options_.ignore_unknown_features);
  return schema::RowDecoder(v.schema, ignore ? schema::UnknownFeatures::kIgnore
                                             : schema::UnknownFeatures::kReject);
}

Result<const ModelVersion*> Scorer::Resolve(const ScoreTarget& target) const {
  const model::ModelEntry* entry =
      target.model.empty() ? repo_.default_model() : repo_.Find(target.model);
  if (entry == nullptr) {
    if (target.model.empty()) {
      return NotFound("no default model: several models are loaded and models.default is not set",
                      "unknown_model");
    }
    return NotFound("unknown model '" + std::string(target.model) + "'", "unknown_model");
  }
  const ModelVersion* v = entry->Get(target.version);
  if (v == nullptr) {
    return NotFound("model '" + entry->name + "' has no version " +
                        std::to_string(target.version.value_or(0)),
                    "unknown_version");
  }
  return v;
}

Status Scorer::ScoreJson(const ScoreTarget& target, std::string_view body, ScoreScratch* scratch,
                         std::string* response) const {
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(const ModelVersion* v, Resolve(target));
  Decoded d;
  RETURN_IF_ERROR(Decode(*v, body, scratch, &d));
  const int n_out = v->model->num_outputs();
  scratch->outputs.resize(d.n_rows * n_out);
  RETURN_IF_ERROR(v->model->Predict(
      std::span<const float>(scratch->rows.data(), d.n_rows * v->schema.size()), d.n_rows,
      scratch->outputs));
  WriteResponse(*v, d, *scratch, response);
  const VersionMetrics& m = metrics_.at(v);
  m.requests->Inc();
  m.predictions->Inc(d.n_rows);
  m.latency->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return Status::Ok();
}

Status Scorer::Decode(const ModelVersion& v, std::string_view body, ScoreScratch* scratch,
                      Decoded* out) const {
  scratch->padded.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  scratch->padded.assign(body);
  simdjson::padded_string_view padded(scratch->padded.data(), scratch->padded.size(),
                                      scratch->padded.capacity());
  od::document doc;
  if (auto e = scratch->parser.iterate(padded).get(doc)) return Malformed(body, e);
  od::object top;
  od::json_type type;
  if (auto e = doc.type().get(type)) return Malformed(body, e);
  if (type != od::json_type::object) {
    if (FindJsonSyntaxError(body)) return Malformed(body, simdjson::TAPE_ERROR);
    return BadStructure("request body must be a JSON object with \"features\" or \"instances\"",
                        "");
  }
  if (auto e = doc.get_object().get(top)) return Malformed(body, e);
  Status s = DecodeTop(v, top, scratch, out);
  // Past the top-level object there must be nothing left.
  if (s.ok() && !doc.current_location().error()) {
    return Malformed(body, simdjson::TRAILING_CONTENT);
  }
  if (!s.ok() && (s.reason() == "malformed_json" || FindJsonSyntaxError(body))) {
    return Malformed(body, simdjson::TAPE_ERROR);  // the syntax error is the first problem
  }
  return s;
}

Status Scorer::DecodeTop(const ModelVersion& v, od::object top, ScoreScratch* scratch,
                         Decoded* out) const {
  const int n_features = v.schema.size();
  const schema::RowDecoder decoder = DecoderFor(v);
  bool have_rows = false;
  for (auto f : top) {
    od::field field;
    std::string_view key;
    if (auto e = std::move(f).get(field)) return JsonFail(e);
    if (auto e = field.unescaped_key().get(key)) {
      return JsonFail(e);
    }
    if (key == "features" || key == "instances") {
      if (have_rows) {
        return BadStructure("give either \"features\" or \"instances\", once", std::string(key));
      }
      have_rows = true;
    }
    od::value value = field.value();
    od::json_type type;
    if (auto e = value.type().get(type)) return JsonFail(e);
    if (key == "features") {
      scratch->rows.resize(n_features);
      scratch->cells.resize(n_features);
      out->n_rows = 1;
      if (type == od::json_type::object) {
        RETURN_IF_ERROR(decoder.DecodeObject(value.get_object(), -1, scratch->rows, scratch->cells));
      } else if (type == od::json_type::array) {
        RETURN_IF_ERROR(decoder.DecodeArray(value.get_array(), -1, scratch->rows, scratch->cells));
      } else {
        return InvalidArgument("\"features\" must be an object of name: value or an ordered array",
                               "wrong_type", "features");
      }
    } else if (key == "instances") {
      if (type != od::json_type::array) {
        return InvalidArgument("\"instances\" must be an array of rows", "wrong_type", "instances");
      }
      out->batch = true;
      RETURN_IF_ERROR(DecodeInstances(v, value.get_array(), scratch, out));
    } else if (key == "id") {
      if (type != od::json_type::string && type != od::json_type::number) {
        return InvalidArgument("\"id\" must be a string or a number", "wrong_type", "id");
      }
      std::string_view raw = value.raw_json_token();
      if (type == od::json_type::string) {
        std::string_view unused;
        if (auto e = value.get_string().get(unused)) return JsonFail(e);
      }
      out->id = TrimRight(raw);
    } else {
      return BadStructure("unknown field \"" + std::string(key) +
                              "\" (expected \"features\", \"instances\" or \"id\")",
                          std::string(key));
    }
  }
  if (!have_rows) {
    return BadStructure("request needs \"features\" (one row) or \"instances\" (a batch)", "");
  }
  return Status::Ok();
}

Status Scorer::DecodeInstances(const ModelVersion& v, od::array arr, ScoreScratch* scratch,
                               Decoded* out) const {
  const int n_features = v.schema.size();
  const schema::RowDecoder decoder = DecoderFor(v);
  size_t n = 0;
  for (auto element : arr) {
    od::value row;
    if (auto e = std::move(element).get(row)) return JsonFail(e);
    if (n >= static_cast<size_t>(options_.max_batch_size)) {
      return Status(StatusCode::kPayloadTooLarge,
                    "batch has more than the maximum of " +
                        std::to_string(options_.max_batch_size) + " instances",
                    "batch_too_large", "instances");
    }
    scratch->rows.resize((n + 1) * n_features);
    scratch->cells.resize((n + 1) * n_features);
    std::span<float> r(scratch->rows.data() + n * n_features, n_features);
    std::span<Cell> c(scratch->cells.data() + n * n_features, n_features);
    od::json_type type;
    if (auto e = row.type().get(type)) return JsonFail(e);
    if (type == od::json_type::object) {
      RETURN_IF_ERROR(decoder.DecodeObject(row.get_object(), static_cast<int>(n), r, c));
    } else if (type == od::json_type::array) {
      RETURN_IF_ERROR(decoder.DecodeArray(row.get_array(), static_cast<int>(n), r, c));
    } else {
      return InvalidArgument("each instance must be an object or an ordered array", "wrong_type",
                             "instances[" + std::to_string(n) + "]");
    }
    ++n;
  }
  if (n == 0) return InvalidArgument("\"instances\" is empty", "bad_request", "instances");
  out->n_rows = n;
  return Status::Ok();
}

void Scorer::WriteResponse(const ModelVersion& v, const Decoded& d, const ScoreScratch& scratch,
                           std::string* response) const {
  response->clear();
  JsonWriter w(response);
  const int n_out = v.model->num_outputs();
  const int n_features = v.schema.size();
  auto write_prediction = [&](size_t row) {
    const float* p = scratch.outputs.data() + row * n_out;
    if (v.spec.output != OutputKind::kClasses) {
      w.Float(p[0]);
      return;
    }
    w.BeginObject();
    for (int k = 0; k < n_out; ++k) w.Key(v.spec.labels[k]).Float(p[k]);
    w.EndObject();
  };
  w.BeginObject();
  if (!d.id.empty()) w.Key("id").Raw(d.id);
  w.Key("model").String(v.name).Key("version").Int(v.version);
  if (!d.batch) {
    w.Key("prediction");
    write_prediction(0);
    w.Key("defaulted");
    WriteNames(w, v.schema, scratch.cells.data(), Cell::kDefaulted);
    w.Key("missing");
    WriteNames(w, v.schema, scratch.cells.data(), Cell::kMissing);
  } else {
    w.Key("predictions").BeginArray();
    for (size_t r = 0; r < d.n_rows; ++r) write_prediction(r);
    w.EndArray();
    for (Cell which : {Cell::kDefaulted, Cell::kMissing}) {
      w.Key(which == Cell::kDefaulted ? "defaulted" : "missing").BeginArray();
      for (size_t r = 0; r < d.n_rows; ++r) {
        WriteNames(w, v.schema, scratch.cells.data() + r * n_features, which);
      }
      w.EndArray();
    }
  }
  w.EndObject();
}

}  // namespace rtml::pipeline
