// FindJsonSyntaxError: where a JSON text stops being valid, for error
// messages ("malformed JSON at byte 17: expected ':' after object key").
// simdjson's on-demand parser reports that a document is malformed but not
// always where; this strict RFC 8259 scanner, run only on the error path,
// finds the byte offset. Nesting deeper than max_depth is an error too.
// Thread-safety: pure function.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rtml {

struct JsonSyntaxError {
  size_t offset = 0;
  std::string message;
};

std::optional<JsonSyntaxError> FindJsonSyntaxError(std::string_view text,
                                                   int max_depth = 1024);

// The malformed_json Status for a body a parser refused: "malformed JSON at
// byte N: ..." when the scanner finds where, else "malformed JSON: <why>".
Status MalformedJson(std::string_view body, std::string_view why = {});

}  // namespace rtml
