#include "protocol/v2_tensor.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

namespace rtml::protocol::v2 {
using model::ModelVersion;
using model::OutputKind;
using pipeline::DecodedBody;
using pipeline::RowSink;

namespace {

constexpr Datatype kDatatypes[] = {
    {"BOOL", Kind::kBool, 1},   {"UINT8", Kind::kUint, 1},  {"UINT16", Kind::kUint, 2},
    {"UINT32", Kind::kUint, 4}, {"UINT64", Kind::kUint, 8}, {"INT8", Kind::kInt, 1},
    {"INT16", Kind::kInt, 2},   {"INT32", Kind::kInt, 4},   {"INT64", Kind::kInt, 8},
    {"FP16", Kind::kHalf, 2},   {"BF16", Kind::kBfloat, 2}, {"FP32", Kind::kFloat, 4},
    {"FP64", Kind::kFloat, 8},  {"BYTES", Kind::kBytes, 0}};

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    f = mant != 0 ? std::numeric_limits<float>::quiet_NaN()
                  : std::numeric_limits<float>::infinity();
  } else {
    f = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign != 0 ? -f : f;
}

template <class T>
T LoadLe(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // x86-64 and arm64 are little-endian, as the wire is
  return v;
}

// One fixed-size element of raw data at p (not BYTES).
Status LoadRaw(const char* p, const Tensor& t, size_t i, Element* e) {
  const size_t size = t.type->bytes;
  switch (t.type->kind) {
    case Kind::kBool: e->number = *p != 0 ? 1 : 0; break;
    case Kind::kInt:
      e->integer = size == 1   ? LoadLe<int8_t>(p)
                   : size == 2 ? LoadLe<int16_t>(p)
                   : size == 4 ? LoadLe<int32_t>(p)
                               : LoadLe<int64_t>(p);
      e->number = static_cast<double>(e->integer);
      break;
    case Kind::kUint: {
      const uint64_t u = size == 1   ? LoadLe<uint8_t>(p)
                         : size == 2 ? LoadLe<uint16_t>(p)
                         : size == 4 ? LoadLe<uint32_t>(p)
                                     : LoadLe<uint64_t>(p);
      if (u > static_cast<uint64_t>(INT64_MAX)) {
        return Bad("input " + Quoted(t.name) + "'s value " + std::to_string(i) +
                       " is past INT64's range",
                   "out_of_range", t.field());
      }
      e->integer = static_cast<int64_t>(u);
      e->number = static_cast<double>(u);
      break;
    }
    case Kind::kFloat: e->number = size == 4 ? LoadLe<float>(p) : LoadLe<double>(p); break;
    case Kind::kHalf: e->number = HalfToFloat(LoadLe<uint16_t>(p)); break;
    case Kind::kBfloat: {
      const uint32_t bits = static_cast<uint32_t>(LoadLe<uint16_t>(p)) << 16;
      float f;
      std::memcpy(&f, &bits, sizeof(f));
      e->number = f;
      break;
    }
    case Kind::kBytes: break;
  }
  return Status::Ok();
}

}  // namespace

const Datatype* FindDatatype(std::string_view name) {
  for (const Datatype& d : kDatatypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

Status Bad(std::string message, std::string_view reason, std::string field) {
  return InvalidArgument(std::move(message), std::string(reason), std::move(field));
}

Status SetShape(std::span<const int64_t> dims, Tensor* t) {
  for (int64_t x : dims) {
    if (x < 0) {
      return Bad("input " + Quoted(t->name) + "'s shape must hold non-negative integers",
                 "wrong_shape", t->field());
    }
  }
  if (dims.size() > 2) {
    return Bad("input " + Quoted(t->name) + " has more than 2 dimensions: rtml takes [N] or "
               "[N, n] tensors",
               "wrong_shape", t->field());
  }
  if (dims.empty()) {
    return Bad("input " + Quoted(t->name) + " has an empty shape: give [N] or [N, n]",
               "wrong_shape", t->field());
  }
  if (dims.size() == 2 && dims[1] == 0) {
    return Bad("input " + Quoted(t->name) + " has shape [N, 0]: no feature in a row",
               "wrong_shape", t->field());
  }
  t->rows = static_cast<size_t>(dims[0]);
  t->width = dims.size() == 2 ? static_cast<size_t>(dims[1]) : 0;
  return Status::Ok();
}

Result<TensorSink> TensorSink::For(const Tensor& t, size_t index, RowSink& rows,
                                   DecodedBody* d) {
  // The first input sets the batch's rows; every other must agree.
  if (index == 0) {
    if (t.rows == 0) return Bad("input " + Quoted(t.name) + " has no rows", "bad_request", t.field());
    if (t.rows > rows.max_rows) {
      return Status(StatusCode::kPayloadTooLarge,
                    "batch has " + std::to_string(t.rows) + " rows, more than the maximum of " +
                        std::to_string(rows.max_rows),
                    "batch_too_large", t.field());
    }
    d->n_rows = t.rows;
    rows.Resize(t.rows);
    for (size_t i = 0; i < t.rows; ++i) {
      RowSink::Row r = rows.At(i);
      rows.decoder.Begin(r.cells, r.keys);
    }
  } else if (t.rows != d->n_rows) {
    return Bad("input " + Quoted(t.name) + " has " + std::to_string(t.rows) +
                   " rows but the first input has " + std::to_string(d->n_rows),
               "wrong_shape", t.field());
  }
  if (t.width > 0 && t.rows > std::numeric_limits<size_t>::max() / t.width) {
    return Bad("input " + Quoted(t.name) + "'s shape is too large", "wrong_shape", t.field());
  }
  const schema::RowDecoder& decoder = rows.decoder;
  TensorSink sink(t, rows);
  sink.column_ = decoder.schema().IndexOf(t.name);
  if (sink.column_ < 0) sink.key_ = decoder.KeyIndex(t.name);
  const size_t nf = static_cast<size_t>(decoder.schema().size());
  if (sink.column_ < 0 && sink.key_ < 0) {
    if (t.width == nf && nf > 1) {
      sink.matrix_ = true;
    } else if (decoder.ignores_unknown()) {
      sink.skip_ = true;
      return sink;
    } else {
      return Status(StatusCode::kInvalidArgument,
                    "unknown input " + Quoted(t.name) + ": model '" + rows.version.name +
                        "' takes a tensor per feature named as the feature (shape [N]), or one "
                        "[N, " + std::to_string(nf) + "] tensor in its input order (GET /v2/models/" +
                        rows.version.name + ")",
                    "unknown_input", t.field());
    }
  } else if (t.width > 1) {
    return Bad("input " + Quoted(t.name) + " is one value per row: shape [N] or [N, 1], not [" +
                   std::to_string(t.rows) + ", " + std::to_string(t.width) + "]",
               "wrong_shape", t.field());
  }
  const Kind kind = t.type->kind;
  if (sink.key_ >= 0) {
    if (kind != Kind::kBytes && kind != Kind::kInt && kind != Kind::kUint) {
      return Bad("entity key " + Quoted(t.name) + " must be INT64 (or another integer type) or "
                 "BYTES, not " + std::string(t.type->name),
                 "wrong_datatype", t.field());
    }
  } else if (kind == Kind::kBytes) {
    return Bad("input " + Quoted(t.name) + " is numeric: BYTES is only for entity keys",
               "wrong_datatype", t.field());
  }
  return sink;
}

Status TensorSink::Put(size_t i, const Element& e) const {
  if (skip_) return Status::Ok();
  // Typed values (JSON, gRPC's int_contents) can be wider than the datatype.
  if (const Kind kind = t_.type->kind;
      t_.type->bytes < 8 && (kind == Kind::kInt || kind == Kind::kUint)) {
    const int bits = static_cast<int>(8 * t_.type->bytes);
    const int64_t lo = kind == Kind::kInt ? -(int64_t{1} << (bits - 1)) : 0;
    const int64_t hi = kind == Kind::kInt ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
    if (e.integer < lo || e.integer > hi) {
      return Bad("input " + Quoted(t_.name) + "'s value " + std::to_string(i) + " (" +
                     std::to_string(e.integer) + ") is outside " + std::string(t_.type->name) +
                     "'s range " + std::to_string(lo) + ".." + std::to_string(hi),
                 "out_of_range", t_.field());
    }
  }
  const size_t width = std::max<size_t>(t_.width, 1);
  const size_t row = i / width;
  RowSink::Row r = rows_->At(row);
  const int instance = static_cast<int>(row);
  const schema::RowDecoder& decoder = rows_->decoder;
  if (key_ >= 0) {
    return t_.type->kind == Kind::kBytes ? decoder.SetTextKey(key_, e.text, instance, r.keys)
                                         : decoder.SetIntegerKey(key_, e.integer, instance, r.keys);
  }
  const int column = matrix_ ? static_cast<int>(i % width) : column_;
  return decoder.SetNumber(column, e.number, instance, r.values, r.cells);
}

Status PutRaw(std::string_view raw, const TensorSink& sink) {
  const Tensor& t = sink.tensor();
  const size_t want = t.count();
  const size_t size = t.type->bytes;
  if (t.type->kind != Kind::kBytes && raw.size() / size != want) {
    return Bad("input " + Quoted(t.name) + " has " + std::to_string(raw.size()) +
                   " bytes of binary data; " + std::to_string(want) + " " +
                   std::string(t.type->name) + " values take " + std::to_string(want * size),
               "bad_binary_data", t.field());
  }
  const char* p = raw.data();
  const char* end = raw.data() + raw.size();
  for (size_t i = 0; i < want; ++i) {
    Element e;
    if (t.type->kind != Kind::kBytes) {
      RETURN_IF_ERROR(LoadRaw(p, t, i, &e));
      p += size;
    } else {
      if (end - p < 4) {
        return Bad("input " + Quoted(t.name) + "'s binary data ends inside value " +
                       std::to_string(i) + "'s length",
                   "bad_binary_data", t.field());
      }
      const uint32_t n = LoadLe<uint32_t>(p);
      p += 4;
      if (static_cast<size_t>(end - p) < n) {
        return Bad("input " + Quoted(t.name) + "'s value " + std::to_string(i) + " says " +
                       std::to_string(n) + " bytes but " + std::to_string(end - p) +
                       " are left",
                   "bad_binary_data", t.field());
      }
      e.text = std::string_view(p, n);
      p += n;
    }
    RETURN_IF_ERROR(sink.Put(i, e));
  }
  if (p != end) {
    return Bad("input " + Quoted(t.name) + " has " + std::to_string(end - p) +
                   " bytes of binary data past its " + std::to_string(want) + " values",
               "bad_binary_data", t.field());
  }
  return Status::Ok();
}

Status ApplyTimeout(std::string_view name, std::optional<double> value, std::string field,
                    DecodedBody* d) {
  const double us_per_unit = name == "timeout_ms" ? 1e3 : 1.0;
  const double us = value ? *value * us_per_unit : -1;
  if (!(us > 0 && us <= 86400e6)) {
    return Bad("parameter " + Quoted(name) + " must be a positive number" +
                   (us_per_unit == 1.0 ? " of microseconds" : " of milliseconds") +
                   " (at most a day)",
               "bad_timeout", std::move(field));
  }
  const auto from = d->received == std::chrono::steady_clock::time_point{}
                        ? std::chrono::steady_clock::now()
                        : d->received;
  d->deadline = std::min(d->deadline, from + std::chrono::microseconds(static_cast<int64_t>(us)));
  return Status::Ok();
}

Outputs OutputsOf(const ModelVersion& v) {
  switch (v.spec.output) {
    case OutputKind::kProbability: return {{{{"probability", "FP32", 0}}}, 1};
    case OutputKind::kRegression: return {{{{"value", "FP32", 0}}}, 1};
    case OutputKind::kClasses:
      return {{{{"probabilities", "FP32", v.model->num_outputs()}, {"label", "BYTES", 0}}}, 2};
  }
  return {};
}

Result<uint32_t> OutputBit(const ModelVersion& v, std::string_view name, std::string field) {
  const Outputs known = OutputsOf(v);
  auto it = std::find_if(known.begin(), known.end(),
                         [&](const Output& k) { return k.name == name; });
  if (it == known.end()) {
    std::string names;
    for (const Output& k : known) names += (names.empty() ? "" : ", ") + std::string(k.name);
    return Status(StatusCode::kInvalidArgument,
                  "unknown output " + Quoted(name) + " (model '" + v.name + "' answers " +
                      names + ")",
                  "unknown_output", std::move(field));
  }
  return 1u << (it - known.begin());
}

const std::string& LabelOf(const ModelVersion& v, const float* row) {
  const int n = v.model->num_outputs();
  return v.spec.labels[static_cast<size_t>(std::max_element(row, row + n) - row)];
}

Result<std::optional<int64_t>> VersionNumber(std::string_view version) {
  if (version.empty()) return std::optional<int64_t>();
  int64_t v = 0;
  auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
    return NotFound("version '" + std::string(version) + "' is not a positive integer",
                    "unknown_version");
  }
  return std::optional<int64_t>(v);
}

uint64_t LastInferenceMs(const pipeline::VersionTotals& t) {
  if (!t.last_inference) return 0;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   t.last_inference->time_since_epoch())
                                   .count());
}

}  // namespace rtml::protocol::v2
