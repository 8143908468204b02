// A blocking HTTP GET to a running rtml, for the commands that ask one
// (`rtml models inspect --url`, `rtml probe`). Plain HTTP only.
// Thread-safety: free functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rtml::cli {

struct Url {
  std::string host;
  std::string port;
};

// http://HOST[:PORT][/...] (the path is ignored); the port defaults to 80.
Result<Url> ParseUrl(std::string_view url);

// GETs `target` (sending RTML_ADMIN_TOKEN as a bearer token when set): the
// body of a 200, else a Status that says what was answered and what to do.
Result<std::string> HttpGet(const Url& url, const std::string& target,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace rtml::cli
