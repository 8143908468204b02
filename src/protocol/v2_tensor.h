// V2 tensors as both of the Open Inference Protocol's codecs read them (REST:
// v2_rest.h, gRPC: v2_grpc.h): datatypes, shapes, the rows a tensor fills
// and how its elements reach them, raw little-endian data, deadlines and the
// outputs a request selects. What differs between the two is only how the
// request carries these (JSON or protobuf); the checks and their errors are
// the same, so a bad tensor is told the same way on either.
// Internal to protocol/.
// Thread-safety: stateless functions; a TensorSink is one request's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/repository.h"
#include "pipeline/codec.h"
#include "pipeline/scorer.h"

namespace rtml::protocol::v2 {

enum class Kind { kBool, kInt, kUint, kFloat, kHalf, kBfloat, kBytes };
struct Datatype {
  std::string_view name;
  Kind kind;
  size_t bytes;  // per element in raw data (0: BYTES, length-prefixed)
};
// The V2 datatype named so (FP32, INT64, BYTES, ...), or null.
const Datatype* FindDatatype(std::string_view name);

std::string Quoted(std::string_view s);
// A client error (InvalidArgument) with its reason and field.
Status Bad(std::string message, std::string_view reason, std::string field);

// One element of a tensor, whatever carried it.
struct Element {
  double number = 0;      // numeric and BOOL datatypes
  int64_t integer = 0;    // INT*/UINT* (exact)
  std::string_view text;  // BYTES
};

// A tensor as the request describes it.
struct Tensor {
  std::string_view name;
  const Datatype* type = nullptr;
  size_t rows = 0, width = 0;  // shape [rows] (width 0) or [rows, width]
  size_t count() const { return rows * (width > 1 ? width : 1); }
  std::string field() const { return "inputs." + std::string(name); }
};

// Reads the tensor's shape: [N] or [N, n], non-negative.
Status SetShape(std::span<const int64_t> dims, Tensor* t);

// Where one input tensor's elements go: a feature's column, an entity key,
// every column ([N, n_features] in model order), or nowhere (unknown, and
// the version ignores unknown inputs). The first input sets the request's
// rows (d->n_rows); every other must have as many.
class TensorSink {
 public:
  // The sink for input number `index`, checking its name, shape and
  // datatype against the version's inputs.
  static Result<TensorSink> For(const Tensor& t, size_t index, pipeline::RowSink& rows,
                                pipeline::DecodedBody* d);
  // Element i (row-major) of the tensor, validated by the row decoder.
  Status Put(size_t i, const Element& e) const;
  const Tensor& tensor() const { return t_; }

 private:
  TensorSink(const Tensor& t, pipeline::RowSink& rows) : t_(t), rows_(&rows) {}
  Tensor t_;
  pipeline::RowSink* rows_;
  int column_ = -1;      // a feature's column
  int key_ = -1;         // an entity key
  bool matrix_ = false;  // [N, n_features] in model order
  bool skip_ = false;
};

// Every element of raw little-endian data (the REST binary extension,
// gRPC's raw_input_contents) into the sink; the size must be the shape's.
Status PutRaw(std::string_view raw, const TensorSink& sink);

// A request's deadline parameter: "timeout_ms" (rtml's, milliseconds) or
// "timeout" (Triton's, microseconds, as tritonclient sends it), with its
// value (nullopt: not a number). Sets the sooner of it, counted from
// d->received, and d->deadline.
Status ApplyTimeout(std::string_view name, std::optional<double> value, std::string field,
                    pipeline::DecodedBody* d);
inline bool IsTimeoutParameter(std::string_view name) {
  return name == "timeout_ms" || name == "timeout";
}

// One output tensor of a version's answers: its name, datatype and width
// per row (the shape is [N] when 0, else [N, width]).
struct Output {
  std::string_view name;
  std::string_view datatype;
  int width = 0;
};
struct Outputs {
  std::array<Output, 2> items{};
  size_t size = 0;
  const Output* begin() const { return items.data(); }
  const Output* end() const { return items.data() + size; }
};
// A version's outputs: "probability", "probabilities" and "label", or "value".
Outputs OutputsOf(const model::ModelVersion& v);
// The bit (in DecodedBody::outputs) of the output `name`, or unknown_output.
Result<uint32_t> OutputBit(const model::ModelVersion& v, std::string_view name,
                           std::string field);
// The label of the most likely class of one row of outputs.
const std::string& LabelOf(const model::ModelVersion& v, const float* row);

// last_inference: milliseconds since the epoch (0: none yet).
uint64_t LastInferenceMs(const pipeline::VersionTotals& t);

// A version as the protocol names it in a path or a message: empty (nullopt:
// the model's default, or all) or a positive integer; else unknown_version.
Result<std::optional<int64_t>> VersionNumber(std::string_view version);

}  // namespace rtml::protocol::v2
