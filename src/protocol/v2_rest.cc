#include "protocol/v2_rest.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/json_scan.h"
#include "pipeline/fallback.h"
#include "pipeline/scorer.h"
#include "protocol/json_body.h"
#include "protocol/v2_tensor.h"

namespace rtml::protocol {
namespace od = simdjson::ondemand;
using model::ModelVersion;
using model::OutputKind;
using pipeline::DecodedBody;
using pipeline::Payload;
using pipeline::RowSink;
using pipeline::ScoreScratch;

namespace {
using v2::Bad;
using v2::Element;
using v2::Kind;
using v2::Quoted;
using v2::Tensor;
using v2::TensorSink;

Status JsonFail(simdjson::error_code e, std::string field) {
  return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(e),
                         "malformed_json", std::move(field));
}

// A field of `o` wherever it is. On Demand's own out-of-order lookup
// (find_field_unordered) rewinds the object on the assumption that its
// structure was already read through, and with malformed JSON that is
// undefined behaviour (v2_infer_fuzzer found it: a parameter without a
// value). This searches forward, then once more from the object's start,
// with every step's error checked.
simdjson::simdjson_result<od::value> FindField(od::object& o, std::string_view key) {
  auto ahead = o.find_field(key);
  if (ahead.error() != simdjson::NO_SUCH_FIELD) return ahead;
  bool not_empty = false;
  if (auto e = o.reset().get(not_empty)) return e;
  return o.find_field(key);
}

class V2RestCodec final : public pipeline::Codec {
 public:
  std::string_view name() const override { return "v2_rest"; }
  std::optional<uint64_t> StickyKey(const Payload& p, std::string_view key,
                                    ScoreScratch& scratch) const override;
  Status Decode(const Payload& p, RowSink& rows, DecodedBody* d) const override;
  void WriteAnswer(const ModelVersion& v, DecodedBody& d, const ScoreScratch& scratch,
                   const std::vector<int>* stored, int64_t fallback_from,
                   std::string* out) const override;
  void WriteConstant(const ModelVersion& v, DecodedBody& d, std::span<const float> values,
                     std::string* out) const override;
  std::string_view LogText(const Payload& p) const override {
    return p.header_size > 0 ? p.bytes.substr(0, p.header_size) : p.bytes;
  }

 private:
  Status DecodeInput(od::object tensor, size_t index, RowSink& rows, DecodedBody* d,
                     std::string_view* binary) const;
  // Which outputs the request asks for; of them, which it says are (not)
  // binary (`said`: it said so; `binary`: what it said).
  Status DecodeOutputs(od::array outputs, const ModelVersion& v, DecodedBody* d, uint32_t* said,
                       uint32_t* binary) const;
  void Write(const ModelVersion& v, DecodedBody& d, const float* outputs, bool constant,
             const std::vector<int>* stored, int64_t fallback_from, std::string_view kind,
             std::string* out) const;
};

// A boolean parameter: absent, true or false, or an error naming it.
Result<std::optional<bool>> BoolParam(od::object params, std::string_view name,
                                      const std::string& field) {
  auto v = FindField(params, name);
  if (v.error() == simdjson::NO_SUCH_FIELD) return std::optional<bool>();
  bool b = false;
  if (v.get_bool().get(b)) {
    return Bad("parameter " + Quoted(name) + " must be true or false", "wrong_type",
               field + "." + std::string(name));
  }
  return std::optional<bool>(b);
}

// parameters.timeout_ms (rtml's), or timeout (Triton's, in microseconds, as
// tritonclient's infer(timeout=) sends it): the answer is not wanted later
// than that from now. A positive number, at most a day.
Status ReadTimeout(od::object params, DecodedBody* d) {
  for (std::string_view name : {"timeout_ms", "timeout"}) {
    auto v = FindField(params, name);
    if (v.error() == simdjson::NO_SUCH_FIELD) continue;
    double x = 0;
    RETURN_IF_ERROR(v2::ApplyTimeout(name, v.get_double().get(x) ? std::nullopt
                                                                  : std::optional<double>(x),
                                     "parameters." + std::string(name), d));
  }
  return Status::Ok();
}

// The JSON part of a payload (all of it, but with binary tensors).
Result<std::string_view> JsonPart(const Payload& p) {
  if (p.header_size == 0) return p.bytes;
  if (p.header_size > p.bytes.size()) {
    return Bad("Inference-Header-Content-Length is " + std::to_string(p.header_size) +
                   " but the body has only " + std::to_string(p.bytes.size()) + " bytes",
               "bad_binary_data", "Inference-Header-Content-Length");
  }
  return p.bytes.substr(0, p.header_size);
}

// The sticky key's first element, as the JSON path hashes it (a number's
// or a string's raw token), so one entity routes alike on every path.
std::optional<uint64_t> V2RestCodec::StickyKey(const Payload& p, std::string_view key,
                                               ScoreScratch& scratch) const {
  auto json = JsonPart(p);
  if (!json.ok()) return std::nullopt;
  od::document doc;
  od::array inputs;
  if (scratch.parser.iterate(PaddedCopy(*json, scratch)).get(doc) ||
      doc.find_field("inputs").get_array().get(inputs)) {
    return std::nullopt;
  }
  for (auto t : inputs) {
    od::object tensor;
    std::string_view name;
    if (t.get_object().get(tensor) || FindField(tensor, "name").get_string().get(name)) {
      return std::nullopt;
    }
    if (name != key) continue;
    od::value data;
    if (FindField(tensor, "data").get(data)) return std::nullopt;  // binary: no key
    // The first scalar of a possibly nested array.
    for (int depth = 0; depth < 8; ++depth) {
      od::json_type type;
      if (data.type().get(type)) return std::nullopt;
      if (type != od::json_type::array) {
        return model::StickyHash(TrimRight(data.raw_json_token()));
      }
      od::array arr;
      if (data.get_array().get(arr)) return std::nullopt;
      auto first = arr.begin();
      if (first == arr.end() || (*first).get(data)) return std::nullopt;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

Status V2RestCodec::Decode(const Payload& p, RowSink& rows, DecodedBody* d) const {
  ASSIGN_OR_RETURN(std::string_view json, JsonPart(p));
  std::string_view binary = p.bytes.substr(json.size());  // the raw tensors, in order
  od::document doc;
  if (auto e = rows.scratch.parser.iterate(PaddedCopy(json, rows.scratch)).get(doc)) {
    return MalformedJson(json, simdjson::error_message(e));
  }
  od::object top;
  od::json_type type;
  if (auto e = doc.type().get(type)) return MalformedJson(json, simdjson::error_message(e));
  if (type != od::json_type::object) {
    if (FindJsonSyntaxError(json)) return MalformedJson(json, "not JSON");
    return Bad("an inference request is a JSON object with \"inputs\"", "bad_request", "");
  }
  if (auto e = doc.get_object().get(top)) return MalformedJson(json, simdjson::error_message(e));
  bool saw_inputs = false;
  size_t n_inputs = 0;
  std::optional<bool> all_binary;  // parameters.binary_data_output
  uint32_t said_binary = 0, binary_outputs = 0;
  Status s = [&]() -> Status {
    for (auto f : top) {
      od::field field;
      std::string_view key;
      if (auto e = std::move(f).get(field)) return JsonFail(e, "");
      if (auto e = field.unescaped_key().get(key)) return JsonFail(e, "");
      od::value value = field.value();
      if (key == "id") {
        std::string_view id;
        if (value.get_string().get(id)) {
          return Bad("\"id\" must be a string", "wrong_type", "id");
        }
        d->id = std::string(TrimRight(value.raw_json_token()));
      } else if (key == "inputs") {
        saw_inputs = true;
        od::array inputs;
        if (value.get_array().get(inputs)) {
          return Bad("\"inputs\" must be an array of tensors", "wrong_type", "inputs");
        }
        for (auto t : inputs) {
          od::object tensor;
          if (t.get_object().get(tensor)) {
            return Bad("each input must be a tensor object {name, datatype, shape, data}",
                       "wrong_type", "inputs[" + std::to_string(n_inputs) + "]");
          }
          RETURN_IF_ERROR(DecodeInput(tensor, n_inputs++, rows, d, &binary));
        }
      } else if (key == "outputs") {
        od::array outputs;
        if (value.get_array().get(outputs)) {
          return Bad("\"outputs\" must be an array of {\"name\"}", "wrong_type", "outputs");
        }
        RETURN_IF_ERROR(DecodeOutputs(outputs, rows.version, d, &said_binary, &binary_outputs));
      } else if (key == "parameters") {
        od::object params;
        if (value.get_object().get(params)) {
          return Bad("\"parameters\" must be an object", "wrong_type", "parameters");
        }
        ASSIGN_OR_RETURN(all_binary, BoolParam(params, "binary_data_output", "parameters"));
        RETURN_IF_ERROR(ReadTimeout(params, d));
      }
      // Other fields (e.g. "model_name") are not the request's inputs: ignored.
    }
    return Status::Ok();
  }();
  if (!s.ok()) {
    if (s.reason() == "malformed_json" || FindJsonSyntaxError(json)) {
      return MalformedJson(json, "not JSON");  // the syntax error is the first problem
    }
    return s;
  }
  if (!doc.current_location().error()) return MalformedJson(json, "trailing content");
  if (!saw_inputs || n_inputs == 0) {
    return Bad("the request has no \"inputs\" (tensors named as the model's inputs: see GET "
               "/v2/models/" + rows.version.name + ")",
               "bad_request", "inputs");
  }
  if (!binary.empty()) {
    return Bad(std::to_string(binary.size()) +
                   " bytes of binary data follow the JSON header that no input's "
                   "binary_data_size accounts for",
               "bad_binary_data", "inputs");
  }
  d->batch = true;
  d->binary_outputs = binary_outputs | (all_binary.value_or(false) ? d->outputs & ~said_binary : 0);
  return Status::Ok();
}

Status V2RestCodec::DecodeOutputs(od::array outputs, const ModelVersion& v, DecodedBody* d,
                                  uint32_t* said, uint32_t* binary) const {
  d->outputs = 0;
  size_t i = 0;
  for (auto o : outputs) {
    const std::string field = "outputs[" + std::to_string(i++) + "]";
    od::object out;
    std::string_view name;
    if (o.get_object().get(out) || FindField(out, "name").get_string().get(name)) {
      return Bad("each requested output must be {\"name\": ...}", "wrong_type", field);
    }
    ASSIGN_OR_RETURN(const uint32_t bit, v2::OutputBit(v, name, field));
    d->outputs |= bit;
    auto params_field = FindField(out, "parameters");
    if (params_field.error() != simdjson::NO_SUCH_FIELD) {
      od::object params;
      if (params_field.get_object().get(params)) {
        return Bad("an output's \"parameters\" must be an object", "wrong_type", field);
      }
      ASSIGN_OR_RETURN(std::optional<bool> b, BoolParam(params, "binary_data", field));
      if (b) *said |= bit;
      if (b.value_or(false)) *binary |= bit;
    }
  }
  if (i == 0) d->outputs = ~0u;  // an empty list asks for the defaults: all
  return Status::Ok();
}

// The shape: [N] or [N, width], non-negative integers.
Status ReadShape(od::value value, Tensor* t) {
  od::array dims;
  if (value.get_array().get(dims)) {
    return Bad("input " + Quoted(t->name) + " needs \"shape\": an array of integers",
               "wrong_shape", t->field());
  }
  // Up to three dimensions are read, so that a third is told as one too many.
  int64_t shape[3] = {0, 0, 0};
  size_t n = 0;
  for (auto dim : dims) {
    int64_t x = 0;
    if (dim.get_int64().get(x) || x < 0) {
      return Bad("input " + Quoted(t->name) + "'s shape must hold non-negative integers",
                 "wrong_shape", t->field());
    }
    if (n == 3) break;
    shape[n++] = x;
  }
  return v2::SetShape(std::span<const int64_t>(shape, n), t);
}

// Calls put(i, element) for each element of a JSON "data" array (nested or
// flat), checking each against the datatype.
Status PutJson(od::value data, const TensorSink& sink) {
  const Tensor& t = sink.tensor();
  size_t i = 0;
  const size_t want = t.count();
  auto element = [&](od::value v) -> Status {
    if (i >= want) {
      return Bad("input " + Quoted(t.name) + " has more than the " + std::to_string(want) +
                     " values its shape says",
                 "wrong_shape", t.field());
    }
    Element e;
    od::json_type type;
    if (auto err = v.type().get(type)) return JsonFail(err, t.field());
    bool ok = false;
    switch (t.type->kind) {
      case Kind::kBool:
        if (type == od::json_type::boolean) {
          bool b = false;
          ok = !v.get_bool().get(b);
          e.number = b ? 1 : 0;
        } else if (type == od::json_type::number) {
          ok = !v.get_double().get(e.number);
        }
        break;
      case Kind::kInt:
        ok = type == od::json_type::number && !v.get_int64().get(e.integer);
        e.number = static_cast<double>(e.integer);
        break;
      case Kind::kUint: {
        uint64_t u = 0;
        ok = type == od::json_type::number && !v.get_uint64().get(u) &&
             u <= static_cast<uint64_t>(INT64_MAX);
        e.integer = static_cast<int64_t>(u);
        e.number = static_cast<double>(u);
        break;
      }
      case Kind::kFloat:
      case Kind::kHalf:
      case Kind::kBfloat:
        ok = type == od::json_type::number && !v.get_double().get(e.number);
        break;
      case Kind::kBytes:
        ok = type == od::json_type::string && !v.get_string().get(e.text);
        break;
    }
    if (!ok) {
      return Bad("input " + Quoted(t.name) + " is " + std::string(t.type->name) + " but value " +
                     std::to_string(i) + " is not (" + std::string(TrimRight(v.raw_json_token())) +
                     ")",
                 "wrong_type", t.field());
    }
    return sink.Put(i++, e);
  };
  // Depth-first over nested arrays, flattening row-major.
  auto walk = [&](auto& self, od::value v, int depth) -> Status {
    od::json_type type;
    if (auto err = v.type().get(type)) return JsonFail(err, t.field());
    if (type != od::json_type::array) return element(v);
    if (depth > 2) {
      return Bad("input " + Quoted(t.name) + "'s data is nested deeper than its shape",
                 "wrong_shape", t.field());
    }
    od::array arr;
    if (auto err = v.get_array().get(arr)) return JsonFail(err, t.field());
    for (auto x : arr) {
      od::value inner;
      if (auto err = x.get(inner)) return JsonFail(err, t.field());
      RETURN_IF_ERROR(self(self, inner, depth + 1));
    }
    return Status::Ok();
  };
  od::json_type type;
  if (auto err = data.type().get(type)) return JsonFail(err, t.field());
  if (type != od::json_type::array) {
    return Bad("input " + Quoted(t.name) + "'s \"data\" must be an array", "wrong_type",
               t.field());
  }
  RETURN_IF_ERROR(walk(walk, data, 0));
  if (i != want) {
    return Bad("input " + Quoted(t.name) + " has " + std::to_string(i) + " values; its shape " +
                   "says " + std::to_string(want),
               "wrong_shape", t.field());
  }
  return Status::Ok();
}

Status V2RestCodec::DecodeInput(od::object tensor, size_t index, RowSink& rows, DecodedBody* d,
                                std::string_view* binary) const {
  Tensor t;
  const std::string at = "inputs[" + std::to_string(index) + "]";
  if (FindField(tensor, "name").get_string().get(t.name) || t.name.empty()) {
    return Bad("input " + std::to_string(index) + " needs a \"name\"", "bad_request", at);
  }
  // Looked up in the order clients write them (tritonclient: name, shape,
  // datatype, then data or its binary size), so that each is found ahead.
  od::value shape;
  if (FindField(tensor, "shape").get(shape)) {
    return Bad("input " + Quoted(t.name) + " needs a \"shape\"", "wrong_shape", t.field());
  }
  RETURN_IF_ERROR(ReadShape(shape, &t));
  std::string_view datatype;
  if (FindField(tensor, "datatype").get_string().get(datatype)) {
    return Bad("input " + Quoted(t.name) + " needs a \"datatype\" (FP32, FP64, INT64, BOOL, ...)",
               "wrong_datatype", t.field());
  }
  t.type = v2::FindDatatype(datatype);
  if (t.type == nullptr) {
    return Bad("input " + Quoted(t.name) + " has unknown datatype " + Quoted(datatype),
               "wrong_datatype", t.field());
  }
  ASSIGN_OR_RETURN(const TensorSink sink, TensorSink::For(t, index, rows, d));
  // JSON "data", or binary data (its size in the tensor's parameters).
  // Optional fields: absent is fine, any other error ends the decoding (the
  // parser cannot go on after one).
  auto data_field = FindField(tensor, "data");
  if (data_field.error() != simdjson::NO_SUCH_FIELD) {
    od::value data;
    if (data_field.get(data)) return JsonFail(data_field.error(), t.field());
    return PutJson(data, sink);
  }
  int64_t binary_size = -1;
  auto params_field = FindField(tensor, "parameters");
  if (params_field.error() != simdjson::NO_SUCH_FIELD) {
    od::object params;
    if (params_field.get_object().get(params)) {
      return Bad("input " + Quoted(t.name) + "'s \"parameters\" must be an object",
                 "wrong_type", t.field());
    }
    auto field = FindField(params, "binary_data_size");
    if (field.error() != simdjson::NO_SUCH_FIELD) {
      int64_t n = 0;
      if (field.get_int64().get(n) || n < 0) {
        return Bad("input " + Quoted(t.name) + "'s binary_data_size must be a byte count",
                   "bad_binary_data", t.field());
      }
      binary_size = n;
    }
  }
  if (binary_size < 0) {
    return Bad("input " + Quoted(t.name) + " has no \"data\" (nor binary_data_size)",
               "bad_request", t.field());
  }
  if (static_cast<size_t>(binary_size) > binary->size()) {
    return Bad("input " + Quoted(t.name) + " says " + std::to_string(binary_size) +
                   " bytes of binary data but only " + std::to_string(binary->size()) +
                   " follow (truncated?)",
               "bad_binary_data", t.field());
  }
  const std::string_view raw = binary->substr(0, static_cast<size_t>(binary_size));
  binary->remove_prefix(static_cast<size_t>(binary_size));
  return v2::PutRaw(raw, sink);
}

void V2RestCodec::Write(const ModelVersion& v, DecodedBody& d, const float* outputs,
                        bool constant, const std::vector<int>* stored, int64_t fallback_from,
                        std::string_view kind, std::string* response) const {
  response->clear();
  JsonWriter w(response);
  const int n_out = v.model->num_outputs();
  auto row = [&](size_t i) { return constant ? outputs : outputs + (d.first_row + i) * n_out; };
  w.BeginObject().Key("model_name").String(v.name);
  w.Key("model_version").String(std::to_string(v.version));
  if (!d.id.empty()) w.Key("id").Raw(d.id);
  w.Key("parameters").BeginObject();
  if (!d.route.empty()) w.Key("route").String(d.route);
  if (stored != nullptr) w.Key("feature_store").String(d.degraded ? "degraded" : "ok");
  if (!kind.empty()) {
    w.Key("fallback").Bool(true).Key("fallback_reason");
    w.String(pipeline::kFallbackReasons[d.fallback_reason]).Key("fallback_kind").String(kind);
    if (fallback_from != 0) w.Key("fallback_from").Int(fallback_from);
  }
  w.EndObject();
  // Binary outputs: raw little-endian after the JSON, in the outputs' order.
  static thread_local std::string raw;
  raw.clear();
  auto append = [&](const void* p, size_t n) { raw.append(static_cast<const char*>(p), n); };
  w.Key("outputs").BeginArray();
  const v2::Outputs tensors = v2::OutputsOf(v);
  for (size_t k = 0; k < tensors.size; ++k) {
    if ((d.outputs & (1u << k)) == 0) continue;
    const v2::Output& o = tensors.items[k];
    const bool binary = (d.binary_outputs & (1u << k)) != 0;
    const bool label = o.name == "label";
    w.BeginObject().Key("name").String(o.name).Key("datatype").String(o.datatype);
    w.Key("shape").BeginArray().Uint(d.n_rows);
    if (o.width > 0) w.Uint(static_cast<uint64_t>(o.width));
    w.EndArray();
    if (binary) {
      const size_t before = raw.size();
      for (size_t i = 0; i < d.n_rows; ++i) {
        const float* p = row(i);
        if (label) {
          const std::string& l = v2::LabelOf(v, p);
          const uint32_t n = static_cast<uint32_t>(l.size());
          append(&n, sizeof(n));
          append(l.data(), l.size());
        } else {
          append(p, sizeof(float) * std::max(o.width, 1));
        }
      }
      w.Key("parameters").BeginObject().Key("binary_data_size").Uint(raw.size() - before);
      w.EndObject().EndObject();
      continue;
    }
    w.Key("data").BeginArray();
    for (size_t i = 0; i < d.n_rows; ++i) {
      const float* p = row(i);
      if (label) {
        w.String(v2::LabelOf(v, p));
      } else {
        for (int j = 0; j < std::max(o.width, 1); ++j) w.Float(p[j]);
      }
    }
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  d.answer_header_size = (d.binary_outputs & d.outputs) != 0 ? response->size() : 0;
  response->append(raw);
}

void V2RestCodec::WriteAnswer(const ModelVersion& v, DecodedBody& d,
                              const ScoreScratch& scratch, const std::vector<int>* stored,
                              int64_t fallback_from, std::string* out) const {
  Write(v, d, scratch.outputs.data(), false, stored, fallback_from,
        fallback_from != 0 ? "version" : "", out);
}

void V2RestCodec::WriteConstant(const ModelVersion& v, DecodedBody& d,
                                std::span<const float> values, std::string* out) const {
  Write(v, d, values.data(), true, nullptr, 0, "constant", out);
}

}  // namespace

const pipeline::Codec& V2Rest() {
  static const V2RestCodec codec;
  return codec;
}

std::string_view V2Datatype(schema::DType t) {
  switch (t) {
    case schema::DType::kFloat: return "FP32";
    case schema::DType::kInt: return "INT64";
    case schema::DType::kBool: return "BOOL";
  }
  return "FP32";
}

namespace {

// The statistics extension's inference_stats rtml measures, by name
// (cache_hit and cache_miss are zero: rtml has no response cache).
struct InferenceStat {
  const char* name;
  pipeline::TimedCount pipeline::VersionTotals::*member;
};
constexpr InferenceStat kInferenceStats[] = {
    {"success", &pipeline::VersionTotals::success},
    {"fail", &pipeline::VersionTotals::fail},
    {"queue", &pipeline::VersionTotals::queue},
    {"compute_input", &pipeline::VersionTotals::compute_input},
    {"compute_infer", &pipeline::VersionTotals::compute_infer},
    {"compute_output", &pipeline::VersionTotals::compute_output}};
}  // namespace

void WriteV2ModelStatistics(JsonWriter& w, std::span<const pipeline::VersionTotals> all) {
  auto duration = [&](std::string_view name, pipeline::TimedCount c) {
    w.Key(name).BeginObject().Key("count").Uint(c.count).Key("ns").Uint(c.ns).EndObject();
  };
  w.BeginObject().Key("model_stats").BeginArray();
  for (const pipeline::VersionTotals& t : all) {
    w.BeginObject().Key("name").String(t.model).Key("version").String(std::to_string(t.version));
    w.Key("last_inference").Uint(v2::LastInferenceMs(t)).Key("inference_count").Uint(t.rows);
    w.Key("execution_count").Uint(t.model_calls).Key("inference_stats").BeginObject();
    for (const InferenceStat& stat : kInferenceStats) duration(stat.name, t.*stat.member);
    duration("cache_hit", {});
    duration("cache_miss", {});
    w.EndObject().Key("batch_stats").BeginArray().EndArray().EndObject();
  }
  w.EndArray().EndObject();
}

void WriteV2ModelMetadata(JsonWriter& w, const model::ModelEntry& e, const ModelVersion& v,
                          std::span<const schema::KeySpec> keys) {
  w.BeginObject().Key("name").String(e.name).Key("versions").BeginArray();
  for (const auto& [number, unused] : e.versions) w.String(std::to_string(number));
  w.EndArray();
  w.Key("platform").String("rtml_" + std::string(v.model->backend()));
  auto tensor = [&](std::string_view name, std::string_view datatype, int width) {
    w.BeginObject().Key("name").String(name).Key("datatype").String(datatype);
    w.Key("shape").BeginArray().Int(-1);
    if (width > 0) w.Int(width);
    w.EndArray().EndObject();
  };
  w.Key("inputs").BeginArray();
  for (const schema::FeatureSpec& f : v.schema.features()) tensor(f.name, V2Datatype(f.dtype), 0);
  for (const schema::KeySpec& k : keys) tensor(k.name, k.integer ? "INT64" : "BYTES", 0);
  w.EndArray();
  w.Key("outputs").BeginArray();
  for (const v2::Output& o : v2::OutputsOf(v)) tensor(o.name, o.datatype, o.width);
  w.EndArray();
  w.Key("parameters").BeginObject().Key("version").String(std::to_string(v.version));
  w.Key("objective").String(v.model->objective());
  if (!v.spec.labels.empty()) {
    std::string labels;
    for (const std::string& l : v.spec.labels) labels += (labels.empty() ? "" : ",") + l;
    w.Key("labels").String(labels);
  }
  if (!keys.empty()) {
    std::string names;
    for (const schema::KeySpec& k : keys) names += (names.empty() ? "" : ",") + k.name;
    w.Key("entity_keys").String(names);
  }
  w.EndObject().EndObject();
}

}  // namespace rtml::protocol
