#include "protocol/rtml_json.h"

#include <simdjson.h>

#include "common/json_scan.h"
#include "common/json_writer.h"
#include "pipeline/fallback.h"
#include "pipeline/scorer.h"
#include "protocol/json_body.h"

namespace rtml::protocol {
namespace od = simdjson::ondemand;
using model::ModelVersion;
using model::OutputKind;
using pipeline::DecodedBody;
using pipeline::Payload;
using pipeline::RowSink;
using pipeline::ScoreScratch;
using schema::Cell;

namespace {

Status Malformed(std::string_view body, simdjson::error_code e) {
  return MalformedJson(body, simdjson::error_message(e));
}

Status JsonFail(simdjson::error_code e) {
  return InvalidArgument(simdjson::error_message(e), "malformed_json");
}

Status BadStructure(std::string message, std::string field) {
  return InvalidArgument(std::move(message), "bad_request", std::move(field));
}



void WriteNames(JsonWriter& w, const schema::InputSchema& schema, const Cell* cells, Cell want) {
  w.BeginArray();
  for (int i = 0; i < schema.size(); ++i) {
    if (cells[i] == want) w.String(schema.feature(i).name);
  }
  w.EndArray();
}

// Opens the answer object: id, model, version, route.
void WriteHead(JsonWriter& w, const ModelVersion& v, const DecodedBody& d) {
  w.BeginObject();
  if (!d.id.empty()) w.Key("id").Raw(d.id);
  w.Key("model").String(v.name).Key("version").Int(v.version);
  if (!d.route.empty()) w.Key("route").String(d.route);
}

// One row's prediction: a number, or {label: probability} for classes.
void WritePrediction(JsonWriter& w, const ModelVersion& v, const float* p) {
  if (v.spec.output != OutputKind::kClasses) {
    w.Float(p[0]);
    return;
  }
  w.BeginObject();
  for (size_t k = 0; k < v.spec.labels.size(); ++k) w.Key(v.spec.labels[k]).Float(p[k]);
  w.EndObject();
}

class RtmlJsonCodec final : public pipeline::Codec {
 public:
  std::string_view name() const override { return "rtml_json"; }
  std::optional<uint64_t> StickyKey(const Payload& p, std::string_view key,
                                    ScoreScratch& scratch) const override;
  Status Decode(const Payload& p, RowSink& rows, DecodedBody* d) const override;
  void WriteAnswer(const ModelVersion& v, DecodedBody& d, const ScoreScratch& scratch,
                   const std::vector<int>* stored, int64_t fallback_from,
                   std::string* out) const override;
  void WriteConstant(const ModelVersion& v, DecodedBody& d, std::span<const float> values,
                     std::string* out) const override;

 private:
  Status DecodeTop(od::object top, RowSink& rows, DecodedBody* out) const;
  Status DecodeInstances(od::array arr, RowSink& rows, DecodedBody* out) const;
};

std::optional<uint64_t> RtmlJsonCodec::StickyKey(const Payload& p, std::string_view key,
                                                 ScoreScratch& scratch) const {
  od::document doc;
  od::object top;
  if (scratch.parser.iterate(PaddedCopy(p.bytes, scratch)).get(doc) ||
      doc.get_object().get(top)) {
    return std::nullopt;
  }
  auto find_in = [&](od::object obj) -> std::optional<uint64_t> {
    for (auto field : obj) {
      std::string_view k;
      if (field.unescaped_key().get(k)) return std::nullopt;
      if (k != key) continue;
      std::string_view token;
      if (field.value().raw_json_token().get(token)) return std::nullopt;
      return model::StickyHash(TrimRight(token));
    }
    return std::nullopt;
  };
  for (auto field : top) {
    std::string_view k;
    if (field.unescaped_key().get(k)) return std::nullopt;
    od::value value;
    if (field.value().get(value)) return std::nullopt;
    if (k == key) return model::StickyHash(TrimRight(value.raw_json_token()));
    od::object inner;
    if (k == "features" && !value.get_object().get(inner)) {
      if (auto h = find_in(inner)) return h;
    } else if (k == "instances") {
      od::array rows;
      if (value.get_array().get(rows)) return std::nullopt;
      for (auto row : rows) {
        if (!row.get_object().get(inner)) return find_in(inner);
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

Status RtmlJsonCodec::Decode(const Payload& p, RowSink& rows, DecodedBody* out) const {
  const std::string_view body = p.bytes;
  od::document doc;
  if (auto e = rows.scratch.parser.iterate(PaddedCopy(body, rows.scratch)).get(doc)) {
    return Malformed(body, e);
  }
  od::object top;
  od::json_type type;
  if (auto e = doc.type().get(type)) return Malformed(body, e);
  if (type != od::json_type::object) {
    if (FindJsonSyntaxError(body)) return Malformed(body, simdjson::TAPE_ERROR);
    return BadStructure("request body must be a JSON object with \"features\" or \"instances\"",
                        "");
  }
  if (auto e = doc.get_object().get(top)) return Malformed(body, e);
  Status s = DecodeTop(top, rows, out);
  // Past the top-level object there must be nothing left.
  if (s.ok() && !doc.current_location().error()) {
    return Malformed(body, simdjson::TRAILING_CONTENT);
  }
  if (!s.ok() && (s.reason() == "malformed_json" || FindJsonSyntaxError(body))) {
    return Malformed(body, simdjson::TAPE_ERROR);  // the syntax error is the first problem
  }
  return s;
}

// Top-level fields: "features" (one row), "instances" (a batch), "id", or, in
// the flat form, the row's own fields ({"user_id": 1, "amount": 9.5}).
Status RtmlJsonCodec::DecodeTop(od::object top, RowSink& rows, DecodedBody* out) const {
  const schema::RowDecoder& decoder = rows.decoder;
  enum class Form { kNone, kFeatures, kInstances, kFlat } form = Form::kNone;
  auto take_form = [&](Form f, std::string_view key) -> Status {
    if (form == Form::kNone) {
      form = f;
      return Status::Ok();
    }
    if (form == f && f == Form::kFlat) return Status::Ok();
    return BadStructure("give one of \"features\", \"instances\" or a flat row, once",
                        std::string(key));
  };
  for (auto f : top) {
    od::field field;
    std::string_view key;
    if (auto e = std::move(f).get(field)) return JsonFail(e);
    if (auto e = field.unescaped_key().get(key)) return JsonFail(e);
    od::value value = field.value();
    od::json_type type;
    if (auto e = value.type().get(type)) return JsonFail(e);
    if (key == "id") {
      if (type != od::json_type::string && type != od::json_type::number) {
        return InvalidArgument("\"id\" must be a string or a number", "wrong_type", "id");
      }
      std::string_view raw = value.raw_json_token();
      if (type == od::json_type::string) {
        std::string_view unused;
        if (auto e = value.get_string().get(unused)) return JsonFail(e);
      }
      out->id = std::string(TrimRight(raw));
    } else if (key == "model") {  // the stream's routing field; must agree with the target
      std::string_view name;
      if (type != od::json_type::string || value.get_string().get(name)) {
        return InvalidArgument("\"model\" must be a string", "wrong_type", "model");
      }
      if (name != rows.version.name) {
        return InvalidArgument("the body names model '" + std::string(name) + "' but '" +
                                   rows.version.name + "' is the target",
                               "bad_request", "model");
      }
    } else if (key == "event_time") {  // carried through by the stream worker
      if (type != od::json_type::string && type != od::json_type::number) {
        return InvalidArgument("\"event_time\" must be a string or a number", "wrong_type",
                               "event_time");
      }
      if (type == od::json_type::string) {
        std::string_view unused;
        if (auto e = value.get_string().get(unused)) return JsonFail(e);
      }
    } else if (key == "features") {
      RETURN_IF_ERROR(take_form(Form::kFeatures, key));
      out->n_rows = 1;
      rows.Resize(1);
      RowSink::Row row = rows.At(0);
      if (type == od::json_type::object) {
        RETURN_IF_ERROR(decoder.DecodeObject(value.get_object(), -1, row.values, row.cells,
                                             row.keys));
      } else if (type == od::json_type::array) {
        decoder.Begin(row.cells, row.keys);
        RETURN_IF_ERROR(decoder.DecodeArray(value.get_array(), -1, row.values, row.cells));
      } else {
        return InvalidArgument("\"features\" must be an object of name: value or an ordered array",
                               "wrong_type", "features");
      }
    } else if (key == "instances") {
      RETURN_IF_ERROR(take_form(Form::kInstances, key));
      if (type != od::json_type::array) {
        return InvalidArgument("\"instances\" must be an array of rows", "wrong_type",
                               "instances");
      }
      out->batch = true;
      RETURN_IF_ERROR(DecodeInstances(value.get_array(), rows, out));
    } else {
      if (form != Form::kFlat) {
        RETURN_IF_ERROR(take_form(Form::kFlat, key));
        rows.Resize(1);
        RowSink::Row row = rows.At(0);
        decoder.Begin(row.cells, row.keys);
        out->n_rows = 1;
        out->flat = true;
      }
      RowSink::Row row = rows.At(0);
      RETURN_IF_ERROR(decoder.DecodeField(key, value, schema::kFlatRow, row.values, row.cells,
                                          row.keys));
    }
  }
  if (form == Form::kNone) {
    return BadStructure("request needs \"features\" (one row), \"instances\" (a batch) or the "
                        "row's fields",
                        "");
  }
  return Status::Ok();
}

Status RtmlJsonCodec::DecodeInstances(od::array arr, RowSink& rows, DecodedBody* out) const {
  const schema::RowDecoder& decoder = rows.decoder;
  size_t n = 0;
  for (auto element : arr) {
    od::value value;
    if (auto err = std::move(element).get(value)) return JsonFail(err);
    if (n >= rows.max_rows) {
      return Status(StatusCode::kPayloadTooLarge,
                    "batch has more than the maximum of " + std::to_string(rows.max_rows) +
                        " instances",
                    "batch_too_large", "instances");
    }
    rows.Resize(n + 1);
    RowSink::Row row = rows.At(n);
    od::json_type type;
    if (auto err = value.type().get(type)) return JsonFail(err);
    if (type == od::json_type::object) {
      RETURN_IF_ERROR(decoder.DecodeObject(value.get_object(), static_cast<int>(n), row.values,
                                           row.cells, row.keys));
    } else if (type == od::json_type::array) {
      decoder.Begin(row.cells, row.keys);
      RETURN_IF_ERROR(decoder.DecodeArray(value.get_array(), static_cast<int>(n), row.values,
                                          row.cells));
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

void RtmlJsonCodec::WriteAnswer(const ModelVersion& v, DecodedBody& d,
                                const ScoreScratch& scratch, const std::vector<int>* stored,
                                int64_t fallback_from, std::string* response) const {
  response->clear();
  JsonWriter w(response);
  const int n_out = v.model->num_outputs();
  const int n_features = v.schema.size();
  auto write_prediction = [&](size_t i) {
    WritePrediction(w, v, scratch.outputs.data() + (d.first_row + i) * n_out);
  };
  // Stored features that could not be used, with their Feast status.
  auto write_statuses = [&](size_t i) {
    w.BeginObject();
    for (size_t ref = 0; ref < stored->size(); ++ref) {
      const auto st = scratch.statuses[(d.first_row + i) * stored->size() + ref];
      if (st == features::FeatureStatus::kPresent) continue;
      w.Key(v.schema.feature((*stored)[ref]).name).String(features::FeatureStatusName(st));
    }
    w.EndObject();
  };
  WriteHead(w, v, d);
  if (!d.batch) {
    w.Key("prediction");
    write_prediction(0);
    const Cell* cells = scratch.cells.data() + d.first_row * n_features;
    w.Key("defaulted");
    WriteNames(w, v.schema, cells, Cell::kDefaulted);
    w.Key("missing");
    WriteNames(w, v.schema, cells, Cell::kMissing);
    if (stored != nullptr) {
      w.Key("feature_statuses");
      write_statuses(0);
    }
  } else {
    w.Key("predictions").BeginArray();
    for (size_t r = 0; r < d.n_rows; ++r) write_prediction(r);
    w.EndArray();
    for (Cell which : {Cell::kDefaulted, Cell::kMissing}) {
      w.Key(which == Cell::kDefaulted ? "defaulted" : "missing").BeginArray();
      for (size_t r = 0; r < d.n_rows; ++r) {
        WriteNames(w, v.schema, scratch.cells.data() + (d.first_row + r) * n_features, which);
      }
      w.EndArray();
    }
    if (stored != nullptr) {
      w.Key("feature_statuses").BeginArray();
      for (size_t r = 0; r < d.n_rows; ++r) write_statuses(r);
      w.EndArray();
    }
  }
  if (stored != nullptr) w.Key("feature_store").String(d.degraded ? "degraded" : "ok");
  if (fallback_from != 0) {
    w.Key("fallback").Bool(true).Key("fallback_reason");
    w.String(pipeline::kFallbackReasons[d.fallback_reason]);
    w.Key("fallback_kind").String("version").Key("fallback_from").Int(fallback_from);
  }
  w.EndObject();
}

void RtmlJsonCodec::WriteConstant(const ModelVersion& v, DecodedBody& d,
                                  std::span<const float> values, std::string* response) const {
  response->clear();
  JsonWriter w(response);
  WriteHead(w, v, d);
  if (!d.batch) {
    w.Key("prediction");
    WritePrediction(w, v, values.data());
  } else {
    w.Key("predictions").BeginArray();
    for (size_t r = 0; r < d.n_rows; ++r) WritePrediction(w, v, values.data());
    w.EndArray();
  }
  w.Key("fallback").Bool(true).Key("fallback_reason");
  w.String(pipeline::kFallbackReasons[d.fallback_reason]);
  w.Key("fallback_kind").String("constant");
  w.EndObject();
}

}  // namespace

const pipeline::Codec& RtmlJson() {
  static const RtmlJsonCodec codec;
  return codec;
}

}  // namespace rtml::protocol
