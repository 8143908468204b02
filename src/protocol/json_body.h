// What the JSON codecs share (internal to protocol/): the body copied into a
// scratch's padded buffer for simdjson, and a raw token without the
// whitespace simdjson leaves after it.
#pragma once

#include <simdjson.h>

#include <string_view>

#include "pipeline/scorer.h"

namespace rtml::protocol {

inline simdjson::padded_string_view PaddedCopy(std::string_view json,
                                               pipeline::ScoreScratch& scratch) {
  scratch.padded.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  scratch.padded.assign(json);
  return simdjson::padded_string_view(scratch.padded.data(), scratch.padded.size(),
                                      scratch.padded.capacity());
}

inline std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' ||
                        s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace rtml::protocol
