#include "protocol/v2_grpc.h"

#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cstring>
#include <limits>

#include "pipeline/fallback.h"
#include "pipeline/scorer.h"
#include "protocol/open_inference.pb.h"
#include "protocol/v2_rest.h"
#include "protocol/v2_tensor.h"

namespace rtml::protocol {
using inference::InferParameter;
using inference::InferTensorContents;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using model::ModelVersion;
using pipeline::DecodedBody;
using pipeline::Payload;
using pipeline::RowSink;
using pipeline::ScoreScratch;
using v2::Bad;
using v2::Element;
using v2::Kind;
using v2::Quoted;
using v2::Tensor;
using v2::TensorSink;

namespace {

class V2GrpcCodec final : public pipeline::Codec {
 public:
  std::string_view name() const override { return "v2_grpc"; }
  std::optional<uint64_t> StickyKey(const Payload& p, std::string_view key,
                                    ScoreScratch& scratch) const override;
  Status Decode(const Payload& p, RowSink& rows, DecodedBody* d) const override;
  void WriteAnswer(const ModelVersion& v, DecodedBody& d, const ScoreScratch& scratch,
                   const std::vector<int>* stored, int64_t fallback_from,
                   std::string* out) const override;
  void WriteConstant(const ModelVersion& v, DecodedBody& d, std::span<const float> values,
                     std::string* out) const override;
  std::string_view LogText(const Payload& p) const override;
  std::string_view LogAnswer(std::string_view answer, const DecodedBody& d) const override;

 private:
  void Write(const ModelVersion& v, DecodedBody& d, const float* outputs, bool constant,
             const std::vector<int>* stored, int64_t fallback_from, std::string_view kind,
             std::string* out) const;
};

// The request: as the transport parsed it, else parsed here (a shadow's or
// a test's copy of the bytes) into this thread's message.
const ModelInferRequest* Parsed(const Payload& p) {
  if (p.parsed != nullptr) return static_cast<const ModelInferRequest*>(p.parsed);
  static thread_local ModelInferRequest own;
  own.Clear();
  if (p.bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !own.ParseFromArray(p.bytes.data(), static_cast<int>(p.bytes.size()))) {
    return nullptr;
  }
  return &own;
}

std::optional<double> NumberOf(const InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kInt64Param: return static_cast<double>(p.int64_param());
    case InferParameter::kUint64Param: return static_cast<double>(p.uint64_param());
    case InferParameter::kDoubleParam: return p.double_param();
    default: return std::nullopt;
  }
}

// The field the contents of a datatype must be in, and its element count.
struct ContentsField {
  std::string_view name;
  int size = 0;
};
ContentsField ExpectedField(const InferTensorContents& c, const v2::Datatype& t) {
  switch (t.kind) {
    case Kind::kBool: return {"bool_contents", c.bool_contents_size()};
    case Kind::kInt:
      return t.bytes <= 4 ? ContentsField{"int_contents", c.int_contents_size()}
                          : ContentsField{"int64_contents", c.int64_contents_size()};
    case Kind::kUint:
      return t.bytes <= 4 ? ContentsField{"uint_contents", c.uint_contents_size()}
                          : ContentsField{"uint64_contents", c.uint64_contents_size()};
    case Kind::kFloat:
      return t.bytes == 4 ? ContentsField{"fp32_contents", c.fp32_contents_size()}
                          : ContentsField{"fp64_contents", c.fp64_contents_size()};
    case Kind::kBytes: return {"bytes_contents", c.bytes_contents_size()};
    case Kind::kHalf:
    case Kind::kBfloat: break;
  }
  return {};
}

// Which contents fields hold values, for an error that says where they are.
std::string FilledFields(const InferTensorContents& c) {
  const std::pair<std::string_view, int> all[] = {
      {"bool_contents", c.bool_contents_size()},     {"int_contents", c.int_contents_size()},
      {"int64_contents", c.int64_contents_size()},   {"uint_contents", c.uint_contents_size()},
      {"uint64_contents", c.uint64_contents_size()}, {"fp32_contents", c.fp32_contents_size()},
      {"fp64_contents", c.fp64_contents_size()},     {"bytes_contents", c.bytes_contents_size()}};
  std::string names;
  for (const auto& [name, n] : all) {
    if (n > 0) names += (names.empty() ? "" : ", ") + std::string(name);
  }
  return names;
}

// Every element of a tensor's typed contents into the sink.
Status PutContents(const InferTensorContents& c, const TensorSink& sink) {
  const Tensor& t = sink.tensor();
  if (t.type->kind == Kind::kHalf || t.type->kind == Kind::kBfloat) {
    return Bad("input " + Quoted(t.name) + " is " + std::string(t.type->name) +
                   ", which the protocol carries only in raw_input_contents",
               "wrong_datatype", t.field());
  }
  const ContentsField f = ExpectedField(c, *t.type);
  const size_t want = t.count();
  if (static_cast<size_t>(f.size) != want) {
    const std::string filled = FilledFields(c);
    if (f.size == 0 && !filled.empty()) {
      return Bad("input " + Quoted(t.name) + " is " + std::string(t.type->name) +
                     ", whose values go in contents." + std::string(f.name) + ", but it has " +
                     filled,
                 "wrong_datatype", t.field());
    }
    return Bad("input " + Quoted(t.name) + " has " + std::to_string(f.size) + " values in contents." +
                   std::string(f.name) + "; its shape says " + std::to_string(want),
               "wrong_shape", t.field());
  }
  for (size_t i = 0; i < want; ++i) {
    const int k = static_cast<int>(i);
    Element e;
    switch (t.type->kind) {
      case Kind::kBool: e.number = c.bool_contents(k) ? 1 : 0; break;
      case Kind::kInt:
        e.integer = t.type->bytes <= 4 ? c.int_contents(k) : c.int64_contents(k);
        e.number = static_cast<double>(e.integer);
        break;
      case Kind::kUint: {
        const uint64_t u = t.type->bytes <= 4 ? c.uint_contents(k) : c.uint64_contents(k);
        if (u > static_cast<uint64_t>(INT64_MAX)) {
          return Bad("input " + Quoted(t.name) + "'s value " + std::to_string(i) +
                         " is past INT64's range",
                     "out_of_range", t.field());
        }
        e.integer = static_cast<int64_t>(u);
        e.number = static_cast<double>(u);
        break;
      }
      case Kind::kFloat:
        e.number = t.type->bytes == 4 ? c.fp32_contents(k) : c.fp64_contents(k);
        break;
      case Kind::kBytes: e.text = c.bytes_contents(k); break;
      case Kind::kHalf:
      case Kind::kBfloat: break;
    }
    RETURN_IF_ERROR(sink.Put(i, e));
  }
  return Status::Ok();
}

bool HasContents(const ModelInferRequest::InferInputTensor& in) {
  return in.has_contents() && !FilledFields(in.contents()).empty();
}

// The text a JSON body would carry for the sticky key's first element (a
// number's digits, a string in quotes), so one entity routes alike on
// every path.
std::optional<uint64_t> HashFirst(const ModelInferRequest& req, int i) {
  const auto& in = req.inputs(i);
  const v2::Datatype* type = v2::FindDatatype(in.datatype());
  if (type == nullptr) return std::nullopt;
  char buf[32];
  auto number = [&](auto x) -> std::optional<uint64_t> {
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
    if (ec != std::errc()) return std::nullopt;
    return model::StickyHash(std::string_view(buf, static_cast<size_t>(end - buf)));
  };
  auto text = [](std::string_view s) {
    return model::StickyHash("\"" + std::string(s) + "\"");
  };
  if (req.raw_input_contents_size() > i) {
    const std::string& raw = req.raw_input_contents(i);
    if (type->kind == Kind::kBytes) {
      uint32_t n = 0;
      if (raw.size() < 4) return std::nullopt;
      std::memcpy(&n, raw.data(), 4);
      if (raw.size() - 4 < n) return std::nullopt;
      return text(std::string_view(raw).substr(4, n));
    }
    // Any integer width, signed or not, little-endian (as the spec has it).
    const bool is_int = type->kind == Kind::kInt, is_uint = type->kind == Kind::kUint;
    if ((is_int || is_uint) && raw.size() >= type->bytes) {
      uint64_t bits = 0;
      std::memcpy(&bits, raw.data(), type->bytes);
      if (is_uint) return number(bits);
      const int shift = static_cast<int>(64 - 8 * type->bytes);
      return number(static_cast<int64_t>(bits << shift) >> shift);  // sign-extended
    }
    return std::nullopt;
  }
  const InferTensorContents& c = in.contents();
  if (c.bytes_contents_size() > 0) return text(c.bytes_contents(0));
  if (c.int64_contents_size() > 0) return number(c.int64_contents(0));
  if (c.int_contents_size() > 0) return number(c.int_contents(0));
  if (c.uint64_contents_size() > 0) return number(c.uint64_contents(0));
  if (c.uint_contents_size() > 0) return number(c.uint_contents(0));
  return std::nullopt;
}

std::optional<uint64_t> V2GrpcCodec::StickyKey(const Payload& p, std::string_view key,
                                               ScoreScratch&) const {
  const ModelInferRequest* req = Parsed(p);
  if (req == nullptr) return std::nullopt;
  for (int i = 0; i < req->inputs_size(); ++i) {
    if (req->inputs(i).name() == key) return HashFirst(*req, i);
  }
  return std::nullopt;
}

Status V2GrpcCodec::Decode(const Payload& p, RowSink& rows, DecodedBody* d) const {
  const ModelInferRequest* req = Parsed(p);
  if (req == nullptr) {
    return Bad("the request is not a ModelInferRequest (protobuf of inference.proto)",
               "malformed_request", "");
  }
  d->id = req->id();
  for (const auto& [name, param] : req->parameters()) {
    if (v2::IsTimeoutParameter(name)) {
      RETURN_IF_ERROR(v2::ApplyTimeout(name, NumberOf(param), "parameters." + name, d));
    }
  }
  if (req->inputs_size() == 0) {
    return Bad("the request has no inputs (tensors named as the model's inputs: see "
               "ModelMetadata for '" + rows.version.name + "')",
               "bad_request", "inputs");
  }
  const bool raw = req->raw_input_contents_size() > 0;
  if (raw && req->raw_input_contents_size() != req->inputs_size()) {
    return Bad("raw_input_contents has " + std::to_string(req->raw_input_contents_size()) +
                   " entries for " + std::to_string(req->inputs_size()) +
                   " inputs: it needs one per input, in their order",
               "bad_binary_data", "raw_input_contents");
  }
  for (int i = 0; i < req->inputs_size(); ++i) {
    const ModelInferRequest::InferInputTensor& in = req->inputs(i);
    Tensor t;
    t.name = in.name();
    if (t.name.empty()) {
      return Bad("input " + std::to_string(i) + " needs a name", "bad_request",
                 "inputs[" + std::to_string(i) + "]");
    }
    t.type = v2::FindDatatype(in.datatype());
    if (t.type == nullptr) {
      return Bad("input " + Quoted(t.name) + " has unknown datatype " + Quoted(in.datatype()) +
                     " (FP32, FP64, INT64, BOOL, BYTES, ...)",
                 "wrong_datatype", t.field());
    }
    RETURN_IF_ERROR(v2::SetShape(std::span<const int64_t>(in.shape().data(),
                                                          static_cast<size_t>(in.shape_size())),
                                 &t));
    ASSIGN_OR_RETURN(const TensorSink sink, TensorSink::For(t, static_cast<size_t>(i), rows, d));
    if (raw) {
      if (HasContents(in)) {
        return Bad("input " + Quoted(t.name) + " has contents, but the request's values are in "
                   "raw_input_contents: use one or the other",
                   "bad_request", t.field());
      }
      RETURN_IF_ERROR(v2::PutRaw(req->raw_input_contents(i), sink));
    } else {
      RETURN_IF_ERROR(PutContents(in.contents(), sink));
    }
  }
  if (req->outputs_size() > 0) {
    d->outputs = 0;
    for (int i = 0; i < req->outputs_size(); ++i) {
      ASSIGN_OR_RETURN(const uint32_t bit, v2::OutputBit(rows.version, req->outputs(i).name(),
                                                         "outputs[" + std::to_string(i) + "]"));
      d->outputs |= bit;
    }
  }
  d->batch = true;
  d->binary_outputs = raw ? ~0u : 0;  // answered raw when asked raw
  return Status::Ok();
}

void SetString(ModelInferResponse& r, const std::string& key, std::string_view value) {
  (*r.mutable_parameters())[key].set_string_param(std::string(value));
}

void V2GrpcCodec::Write(const ModelVersion& v, DecodedBody& d, const float* outputs,
                        bool constant, const std::vector<int>* stored, int64_t fallback_from,
                        std::string_view kind, std::string* out) const {
  static thread_local ModelInferResponse r;  // reused: its buffers keep their capacity
  r.Clear();
  r.set_model_name(v.name);
  r.set_model_version(std::to_string(v.version));
  r.set_id(d.id);
  if (!d.route.empty()) SetString(r, "route", d.route);
  if (stored != nullptr) SetString(r, "feature_store", d.degraded ? "degraded" : "ok");
  if (!kind.empty()) {
    (*r.mutable_parameters())["fallback"].set_bool_param(true);
    SetString(r, "fallback_reason", pipeline::kFallbackReasons[d.fallback_reason]);
    SetString(r, "fallback_kind", kind);
    if (fallback_from != 0) (*r.mutable_parameters())["fallback_from"].set_int64_param(fallback_from);
  }
  const int n_out = v.model->num_outputs();
  auto row = [&](size_t i) { return constant ? outputs : outputs + (d.first_row + i) * n_out; };
  const v2::Outputs tensors = v2::OutputsOf(v);
  const bool raw = (d.binary_outputs & d.outputs) != 0;
  for (size_t k = 0; k < tensors.size; ++k) {
    if ((d.outputs & (1u << k)) == 0) continue;
    const v2::Output& o = tensors.items[k];
    const bool label = o.name == "label";
    const int width = std::max(o.width, 1);
    ModelInferResponse::InferOutputTensor* t = r.add_outputs();
    t->set_name(std::string(o.name));
    t->set_datatype(std::string(o.datatype));
    t->add_shape(static_cast<int64_t>(d.n_rows));
    if (o.width > 0) t->add_shape(o.width);
    if (raw) {
      std::string* bytes = r.add_raw_output_contents();
      for (size_t i = 0; i < d.n_rows; ++i) {
        const float* p = row(i);
        if (label) {
          const std::string& l = v2::LabelOf(v, p);
          const uint32_t n = static_cast<uint32_t>(l.size());
          bytes->append(reinterpret_cast<const char*>(&n), sizeof(n));
          bytes->append(l);
        } else {
          bytes->append(reinterpret_cast<const char*>(p), sizeof(float) * width);
        }
      }
      continue;
    }
    InferTensorContents* c = t->mutable_contents();
    for (size_t i = 0; i < d.n_rows; ++i) {
      const float* p = row(i);
      if (label) {
        c->add_bytes_contents(v2::LabelOf(v, p));
      } else {
        for (int j = 0; j < width; ++j) c->add_fp32_contents(p[j]);
      }
    }
  }
  out->clear();
  r.SerializeToString(out);
  d.answer_header_size = 0;
}

void V2GrpcCodec::WriteAnswer(const ModelVersion& v, DecodedBody& d, const ScoreScratch& scratch,
                              const std::vector<int>* stored, int64_t fallback_from,
                              std::string* out) const {
  Write(v, d, scratch.outputs.data(), false, stored, fallback_from,
        fallback_from != 0 ? "version" : "", out);
}

void V2GrpcCodec::WriteConstant(const ModelVersion& v, DecodedBody& d,
                                std::span<const float> values, std::string* out) const {
  Write(v, d, values.data(), true, nullptr, 0, "constant", out);
}

// The log keeps JSON: the messages in protobuf's JSON mapping (sampled
// traffic only).
std::string_view V2GrpcCodec::LogText(const Payload& p) const {
  static thread_local std::string text;
  text.clear();
  const ModelInferRequest* req = Parsed(p);
  if (req == nullptr || !google::protobuf::util::MessageToJsonString(*req, &text).ok()) {
    text = "{\"unreadable_bytes\":" + std::to_string(p.bytes.size()) + "}";
  }
  return text;
}

std::string_view V2GrpcCodec::LogAnswer(std::string_view answer, const DecodedBody&) const {
  static thread_local ModelInferResponse r;
  static thread_local std::string text;
  text.clear();
  if (!r.ParseFromArray(answer.data(), static_cast<int>(answer.size())) ||
      !google::protobuf::util::MessageToJsonString(r, &text).ok()) {
    text = "{\"unreadable_bytes\":" + std::to_string(answer.size()) + "}";
  }
  return text;
}

}  // namespace

const pipeline::Codec& V2Grpc() {
  static const V2GrpcCodec codec;
  return codec;
}

void FillV2ModelStatistics(std::span<const pipeline::VersionTotals> all,
                           inference::ModelStatisticsResponse* out) {
  auto put = [](inference::StatisticDuration* d, pipeline::TimedCount c) {
    d->set_count(c.count);
    d->set_ns(c.ns);
  };
  for (const pipeline::VersionTotals& t : all) {
    inference::ModelStatistics* m = out->add_model_stats();
    m->set_name(t.model);
    m->set_version(std::to_string(t.version));
    m->set_last_inference(v2::LastInferenceMs(t));
    m->set_inference_count(t.rows);
    m->set_execution_count(t.model_calls);
    inference::InferStatistics* s = m->mutable_inference_stats();
    put(s->mutable_success(), t.success);
    put(s->mutable_fail(), t.fail);
    put(s->mutable_queue(), t.queue);
    put(s->mutable_compute_input(), t.compute_input);
    put(s->mutable_compute_infer(), t.compute_infer);
    put(s->mutable_compute_output(), t.compute_output);
    put(s->mutable_cache_hit(), {});  // rtml has no response cache
    put(s->mutable_cache_miss(), {});
  }
}

void FillV2ModelMetadata(const model::ModelEntry& e, const ModelVersion& v,
                         std::span<const schema::KeySpec> keys,
                         inference::ModelMetadataResponse* out) {
  out->set_name(e.name);
  for (const auto& [number, unused] : e.versions) out->add_versions(std::to_string(number));
  out->set_platform("rtml_" + std::string(v.model->backend()));
  auto tensor = [](auto* t, std::string_view name, std::string_view datatype, int width) {
    t->set_name(std::string(name));
    t->set_datatype(std::string(datatype));
    t->add_shape(-1);
    if (width > 0) t->add_shape(width);
  };
  for (const schema::FeatureSpec& f : v.schema.features()) {
    tensor(out->add_inputs(), f.name, V2Datatype(f.dtype), 0);
  }
  for (const schema::KeySpec& k : keys) {
    tensor(out->add_inputs(), k.name, k.integer ? "INT64" : "BYTES", 0);
  }
  for (const v2::Output& o : v2::OutputsOf(v)) tensor(out->add_outputs(), o.name, o.datatype, o.width);
}

}  // namespace rtml::protocol
