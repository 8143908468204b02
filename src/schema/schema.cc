#include "schema/schema.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace rtml::schema {
namespace od = simdjson::ondemand;

namespace {

std::string FormatNumber(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string_view JsonTypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
  }
  return "unknown";
}

Status BadJson(simdjson::error_code e, std::string field) {
  return InvalidArgument(std::string("malformed JSON in ") + field + ": " +
                             simdjson::error_message(e),
                         "malformed_json", std::move(field));
}

}  // namespace

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kFloat: return "float";
    case DType::kInt: return "int";
    case DType::kBool: return "bool";
  }
  return "float";
}

Result<DType> ParseDType(std::string_view name) {
  if (name == "float" || name == "float32" || name == "double") return DType::kFloat;
  if (name == "int" || name == "int64" || name == "int32") return DType::kInt;
  if (name == "bool") return DType::kBool;
  return FailedPrecondition("unknown dtype '" + std::string(name) +
                            "' (expected float, int or bool)");
}

std::string FieldPath(int instance, std::string_view feature) {
  if (instance == kFlatRow) return std::string(feature);
  std::string path = instance < 0 ? "features" : "instances[" + std::to_string(instance) + "]";
  if (!feature.empty()) {
    path += ".";
    path += feature;
  }
  return path;
}

Result<InputSchema> InputSchema::Create(std::vector<FeatureSpec> features) {
  InputSchema s;
  if (features.empty()) return FailedPrecondition("schema has no input features");
  for (size_t i = 0; i < features.size(); ++i) {
    const FeatureSpec& f = features[i];
    const std::string where = "input '" + f.name + "'";
    if (f.name.empty()) return FailedPrecondition("input " + std::to_string(i) + " has no name");
    if (!s.index_.emplace(f.name, static_cast<int>(i)).second) {
      return FailedPrecondition("duplicate " + where);
    }
    if (f.min && f.max && *f.min > *f.max) return FailedPrecondition(where + ": min > max");
    if (f.default_value && ((f.min && *f.default_value < *f.min) ||
                            (f.max && *f.default_value > *f.max))) {
      return FailedPrecondition(where + ": default outside [min, max]");
    }
    if (f.default_value && f.required) {
      return FailedPrecondition(where + ": required inputs cannot have a default");
    }
  }
  s.features_ = std::move(features);
  return s;
}

int InputSchema::IndexOf(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

Status RowDecoder::DecodeValue(od::value value, int column, int instance, float* out,
                               Cell* cell) const {
  const FeatureSpec& f = schema_.feature(column);
  od::json_type type;
  if (auto e = value.type().get(type)) return BadJson(e, FieldPath(instance, f.name));
  double v = 0;
  switch (type) {
    case od::json_type::null:
      *cell = Cell::kUnset;  // treated as absent: default or missing
      return Status::Ok();
    case od::json_type::number:
      if (auto e = value.get_double().get(v)) return BadJson(e, FieldPath(instance, f.name));
      return CheckNumber(v, column, instance, out, cell);
    case od::json_type::boolean: {
      if (f.dtype != DType::kBool) break;
      bool b = false;
      if (auto e = value.get_bool().get(b)) return BadJson(e, FieldPath(instance, f.name));
      *out = b ? 1.0f : 0.0f;
      *cell = Cell::kGiven;
      return Status::Ok();
    }
    default:
      break;
  }
  return InvalidArgument("feature '" + f.name + "' must be " +
                             (f.dtype == DType::kBool ? "a boolean (or 0/1)" : "a number") +
                             ", got " +
                             (type == od::json_type::number ? FormatNumber(v)
                                                            : std::string(JsonTypeName(type))),
                         "wrong_type", FieldPath(instance, f.name));
}

Status RowDecoder::CheckNumber(double v, int column, int instance, float* out,
                               Cell* cell) const {
  const FeatureSpec& f = schema_.feature(column);
  if (std::isnan(v)) {  // a tensor's way to say "absent", as XGBoost reads it
    *cell = Cell::kUnset;
    return Status::Ok();
  }
  if (f.dtype == DType::kBool && v != 0.0 && v != 1.0) {  // 0/1 stand for false/true
    return InvalidArgument("feature '" + f.name + "' must be a boolean (or 0/1), got " +
                               FormatNumber(v),
                           "wrong_type", FieldPath(instance, f.name));
  }
  if (f.dtype == DType::kInt && v != std::trunc(v)) {
    return InvalidArgument("feature '" + f.name + "' must be an integer, got " +
                               FormatNumber(v),
                           "wrong_type", FieldPath(instance, f.name));
  }
  if ((f.min && v < *f.min) || (f.max && v > *f.max)) {
    return InvalidArgument(
        "feature '" + f.name + "' is " + FormatNumber(v) + ", outside [" +
            (f.min ? FormatNumber(*f.min) : "-inf") + ", " +
            (f.max ? FormatNumber(*f.max) : "inf") + "]",
        "out_of_range", FieldPath(instance, f.name));
  }
  *out = static_cast<float>(v);
  *cell = Cell::kGiven;
  return Status::Ok();
}

Status RowDecoder::SetNumber(int column, double value, int instance, std::span<float> row,
                             std::span<Cell> cells) const {
  if (cells[column] != Cell::kUnset) {
    return InvalidArgument("feature '" + schema_.feature(column).name + "' is given twice",
                           "duplicate_feature", FieldPath(instance, schema_.feature(column).name));
  }
  return CheckNumber(value, column, instance, &row[column], &cells[column]);
}

int RowDecoder::KeyIndex(std::string_view name) const {
  for (size_t k = 0; k < key_specs_.size(); ++k) {
    if (key_specs_[k].name == name) return static_cast<int>(k);
  }
  return -1;
}

Status RowDecoder::BadKey(int key, int instance) const {
  const KeySpec& spec = key_specs_[key];
  return InvalidArgument("entity key '" + spec.name + "' must be " +
                             (spec.integer ? "an integer" : "a non-empty string"),
                         "bad_entity_key", FieldPath(instance, spec.name));
}

Status RowDecoder::SetIntegerKey(int key, int64_t value, int instance,
                                 std::span<std::string> keys) const {
  if (!key_specs_[key].integer) return BadKey(key, instance);
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  keys[key].assign(buf, end);
  return Status::Ok();
}

Status RowDecoder::SetTextKey(int key, std::string_view value, int instance,
                              std::span<std::string> keys) const {
  if (value.empty()) return BadKey(key, instance);
  if (key_specs_[key].integer) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size()) return BadKey(key, instance);
    return SetIntegerKey(key, v, instance, keys);
  }
  keys[key].assign(value);
  return Status::Ok();
}

void RowDecoder::Begin(std::span<Cell> cells, std::span<std::string> keys) const {
  std::fill(cells.begin(), cells.end(), Cell::kUnset);
  for (std::string& k : keys) k.clear();
}

Status RowDecoder::DecodeKey(od::value value, int key, int instance, std::string* out) const {
  const KeySpec& spec = key_specs_[key];
  const std::string field = FieldPath(instance, spec.name);
  od::json_type type;
  if (auto e = value.type().get(type)) return BadJson(e, field);
  if (spec.integer && type == od::json_type::number) {
    double v = 0;
    if (auto e = value.get_double().get(v)) return BadJson(e, field);
    if (v == std::trunc(v) && std::fabs(v) < 9.007199254740992e15) {
      *out = std::to_string(static_cast<int64_t>(v));
      return Status::Ok();
    }
  } else if (!spec.integer && type == od::json_type::string) {
    std::string_view sv;
    if (auto e = value.get_string().get(sv)) return BadJson(e, field);
    if (!sv.empty()) {
      *out = std::string(sv);
      return Status::Ok();
    }
  }
  return BadKey(key, instance);
}

Status RowDecoder::DecodeField(std::string_view key, od::value value, int instance,
                               std::span<float> row, std::span<Cell> cells,
                               std::span<std::string> keys) const {
  const int column = schema_.IndexOf(key);
  if (column < 0) {
    for (size_t k = 0; k < key_specs_.size(); ++k) {
      if (key_specs_[k].name == key) return DecodeKey(value, static_cast<int>(k), instance, &keys[k]);
    }
    if (unknown_ == UnknownFeatures::kIgnore) return Status::Ok();
    return InvalidArgument("unknown feature '" + std::string(key) + "'", "unknown_feature",
                           FieldPath(instance, key));
  }
  if (cells[column] != Cell::kUnset) {
    return InvalidArgument("feature '" + std::string(key) + "' appears twice",
                           "duplicate_feature", FieldPath(instance, key));
  }
  Status s = DecodeValue(value, column, instance, &row[column], &cells[column]);
  // An explicit null leaves the column unset, but it was seen once.
  return s;
}

Status RowDecoder::DecodeObject(od::object obj, int instance, std::span<float> row,
                                std::span<Cell> cells, std::span<std::string> keys) const {
  Begin(cells, keys);
  for (auto field : obj) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return BadJson(e, FieldPath(instance, ""));
    RETURN_IF_ERROR(DecodeField(key, field.value(), instance, row, cells, keys));
  }
  return Status::Ok();
}

Status RowDecoder::DecodeArray(od::array arr, int instance, std::span<float> row,
                               std::span<Cell> cells) const {
  Begin(cells, {});
  const int n = schema_.size();
  int column = 0;
  for (auto element : arr) {
    od::value value;
    if (auto e = std::move(element).get(value)) return BadJson(e, FieldPath(instance, ""));
    if (column >= n) {
      return InvalidArgument("ordered features must have exactly " + std::to_string(n) +
                                 " values, got more",
                             "wrong_length", FieldPath(instance, ""));
    }
    RETURN_IF_ERROR(DecodeValue(value, column, instance, &row[column], &cells[column]));
    ++column;
  }
  if (column != n) {
    return InvalidArgument("ordered features must have exactly " + std::to_string(n) +
                               " values, got " + std::to_string(column),
                           "wrong_length", FieldPath(instance, ""));
  }
  return Status::Ok();
}

Status RowDecoder::Finish(int instance, std::span<float> row, std::span<Cell> cells) const {
  for (int i = 0; i < schema_.size(); ++i) {
    if (cells[i] != Cell::kUnset) continue;
    const FeatureSpec& f = schema_.feature(i);
    if (f.default_value) {
      row[i] = static_cast<float>(*f.default_value);
      cells[i] = Cell::kDefaulted;
    } else if (f.required) {
      return InvalidArgument("required feature '" + f.name + "' is missing and has no default",
                             "missing_feature", FieldPath(instance, f.name));
    } else {
      row[i] = std::numeric_limits<float>::quiet_NaN();
      cells[i] = Cell::kMissing;
    }
  }
  return Status::Ok();
}

}  // namespace rtml::schema
