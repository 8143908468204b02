// InputSchema: a model's ordered input features (name, dtype, default, bounds)
// and the decoding of JSON request rows into dense float rows.
//
// Names are resolved to column indexes once, when the schema is built; the
// decoders look each JSON key up in a hash map and write straight into the
// caller's row buffer. Every rejected input returns an InvalidArgument Status
// whose reason() says what kind of error it is and whose field() names the
// JSON path ("features.amount", "instances[3].amount").
// Thread-safety: an InputSchema is immutable after Create() and may be shared.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace rtml::schema {

enum class DType { kFloat, kInt, kBool };
std::string_view DTypeName(DType t);
Result<DType> ParseDType(std::string_view name);

struct FeatureSpec {
  std::string name;
  DType dtype = DType::kFloat;
  std::optional<double> default_value;  // used when the feature is absent or null
  std::optional<double> min;            // inclusive bounds, checked on request values
  std::optional<double> max;
  // Absent with no default: reject when required, else missing (NaN), which
  // tree models send down each node's default direction.
  bool required = false;
};

enum class UnknownFeatures { kReject, kIgnore };

// What happened to each column of a decoded row.
enum class Cell : uint8_t { kUnset = 0, kGiven, kDefaulted, kMissing };

struct TransparentHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class InputSchema {
 public:
  // Fails on empty or duplicate names, defaults outside bounds, min > max.
  static Result<InputSchema> Create(std::vector<FeatureSpec> features);

  int size() const { return static_cast<int>(features_.size()); }
  const FeatureSpec& feature(int i) const { return features_[i]; }
  const std::vector<FeatureSpec>& features() const { return features_; }
  // Column of `name`, or -1.
  int IndexOf(std::string_view name) const;

 private:
  std::vector<FeatureSpec> features_;
  std::unordered_map<std::string, int, TransparentHash, std::equal_to<>> index_;
};

// Decodes rows of one request into a caller-owned buffer.
// REQUIRES: row.size() == cells.size() == schema.size().
// `instance` is the row's index in "instances", or -1 for a single "features"
// row; it is used only to name the field in errors.
class RowDecoder {
 public:
  RowDecoder(const InputSchema& schema, UnknownFeatures unknown)
      : schema_(schema), unknown_(unknown) {}

  // {"name": value, ...}
  Status DecodeObject(simdjson::ondemand::object obj, int instance, std::span<float> row,
                      std::span<Cell> cells) const;
  // [v0, v1, ...] in schema order.
  Status DecodeArray(simdjson::ondemand::array arr, int instance, std::span<float> row,
                     std::span<Cell> cells) const;

 private:
  Status DecodeValue(simdjson::ondemand::value value, int column, int instance, float* out,
                     Cell* cell) const;
  // Fills defaults / NaN for columns the request did not set.
  Status Finish(int instance, std::span<float> row, std::span<Cell> cells) const;

  const InputSchema& schema_;
  UnknownFeatures unknown_;
};

// "features.amount" or "instances[3].amount" (or "...[2]" for array rows).
std::string FieldPath(int instance, std::string_view feature);

}  // namespace rtml::schema
