// JsonWriter appends JSON to a caller-owned std::string, for responses on the
// hot path: no DOM, no allocation once the string has capacity.
// The caller is responsible for structure (commas are handled by the writer,
// nesting correctness is checked only by assert).
// Thread-safety: one writer per thread; it does not own the string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rtml {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Writes `"key":`; the next call writes its value.
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  // Shortest text that reads back as the same float (NaN/inf become null).
  JsonWriter& Float(float value);
  JsonWriter& Double(double value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Appends already-serialized JSON as one value.
  JsonWriter& Raw(std::string_view json);

 private:
  void Separate();

  std::string* out_;
  // One flag per open container: true once it holds an element.
  uint64_t has_element_bits_ = 0;
  int depth_ = 0;
  bool after_key_ = false;
};

// Appends `value` to `out` with JSON string escaping (no quotes).
void AppendJsonEscaped(std::string_view value, std::string* out);

}  // namespace rtml
