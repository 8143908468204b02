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
enum class Cell : uint8_t { kUnset = 0, kGiven, kStored, kDefaulted, kMissing };

// An entity join key a request row may carry besides the model's inputs
// (e.g. "user_id"), captured as canonical text for feature-store lookups.
struct KeySpec {
  std::string name;
  bool integer = true;  // int64 key (else string)
};

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

// The instance number of a flat body ({"amount": 1, ...} with no "features").
constexpr int kFlatRow = -2;

// Decodes rows of one request into a caller-owned buffer. A row is decoded in
// two steps: Decode* sets what the request gives (and captures entity keys);
// Finish() then fills every column still unset with its default, or NaN, or
// fails for a required one. Between the two, the caller may fill columns from
// a feature store (Cell::kStored).
// REQUIRES: row.size() == cells.size() == schema.size(), keys.size() ==
// number of KeySpecs. `instance` is the row's index in "instances", -1 for a
// single "features" row or kFlatRow; it is used only to name fields in errors.
class RowDecoder {
 public:
  RowDecoder(const InputSchema& schema, UnknownFeatures unknown,
             std::span<const KeySpec> key_specs = {})
      : schema_(schema), unknown_(unknown), key_specs_(key_specs) {}

  // Marks every column unset and every key absent.
  void Begin(std::span<Cell> cells, std::span<std::string> keys) const;
  // One "name": value pair of an object row.
  Status DecodeField(std::string_view name, simdjson::ondemand::value value, int instance,
                     std::span<float> row, std::span<Cell> cells,
                     std::span<std::string> keys) const;
  // {"name": value, ...}: Begin, then DecodeField for each pair.
  Status DecodeObject(simdjson::ondemand::object obj, int instance, std::span<float> row,
                      std::span<Cell> cells, std::span<std::string> keys = {}) const;
  // [v0, v1, ...] in schema order (Begin included).
  Status DecodeArray(simdjson::ondemand::array arr, int instance, std::span<float> row,
                     std::span<Cell> cells) const;
  // Fills defaults / NaN for columns still unset; fails for required ones.
  Status Finish(int instance, std::span<float> row, std::span<Cell> cells) const;

  // Values that come as numbers or text instead of JSON (the Open Inference
  // Protocol's tensors), with the same checks and errors as JSON's.
  // One value of column `column` (a bool as 0 or 1; NaN: absent, as JSON's
  // null); a column given twice is an error.
  Status SetNumber(int column, double value, int instance, std::span<float> row,
                   std::span<Cell> cells) const;
  // Entity key `key` given as an integer, or as text (an integer key's text
  // must be an integer).
  Status SetIntegerKey(int key, int64_t value, int instance, std::span<std::string> keys) const;
  Status SetTextKey(int key, std::string_view value, int instance,
                    std::span<std::string> keys) const;
  // The entity key named `name`, or -1.
  int KeyIndex(std::string_view name) const;
  bool ignores_unknown() const { return unknown_ == UnknownFeatures::kIgnore; }
  const InputSchema& schema() const { return schema_; }
  std::span<const KeySpec> key_specs() const { return key_specs_; }

 private:
  Status DecodeValue(simdjson::ondemand::value value, int column, int instance, float* out,
                     Cell* cell) const;
  // A number for `column`: its type and bounds checked.
  Status CheckNumber(double v, int column, int instance, float* out, Cell* cell) const;
  Status BadKey(int key, int instance) const;
  Status DecodeKey(simdjson::ondemand::value value, int key, int instance,
                   std::string* out) const;

  const InputSchema& schema_;
  UnknownFeatures unknown_;
  std::span<const KeySpec> key_specs_;
};

// "features.amount", "instances[3].amount", or just "amount" for a flat row.
std::string FieldPath(int instance, std::string_view feature);

}  // namespace rtml::schema
