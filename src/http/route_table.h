// RouteTable: the HTTP API's paths as data. Each route is a pattern of path
// segments ("/v1/models/{}/versions/{}/predict": "{}" takes any one
// segment), the methods it answers, whether its work queues behind the
// loop's admission control, and a handler. Matching compares the request's
// segments (empty ones skipped, no query) with each pattern in order: no
// allocation, no regular expressions. A path some route has, asked with a
// method none of them takes, is told which methods it allows (405).
// Thread-safety: immutable once built; Find() from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rtml::http {

enum Method : uint8_t { kGet = 1, kPost = 2 };  // kGet answers HEAD too

// The target's path segments (no query), into `out` (reused: no allocation
// once it has grown). "//a//b?x" gives {"a", "b"}.
void PathSegments(std::string_view target, std::vector<std::string_view>* out);
// The same into a fixed array: how many, or out.size() + 1 when there are
// more than it holds.
size_t PathSegments(std::string_view target, std::span<std::string_view> out);
// kGet (GET, HEAD), kPost, or 0.
uint8_t MethodBit(std::string_view method);

template <class Fn>
class RouteTable {
 public:
  static constexpr size_t kMaxArgs = 3;
  struct Route {
    std::string_view pattern;
    uint8_t methods = kGet;
    bool queued = false;  // heavy: admission control and the loop's queue
    Fn handle{};
  };
  struct Match {
    // The first route of this path that takes the method; else the first of
    // this path (method_ok false: 405); null for a path no route has.
    const Route* route = nullptr;
    bool method_ok = false;
    uint8_t allowed = 0;  // every method the path's routes take
    std::array<std::string_view, kMaxArgs> args;  // the "{}" segments, in order
  };

  explicit RouteTable(std::vector<Route> routes) : routes_(std::move(routes)) {
    for (const Route& r : routes_) {
      std::vector<std::string_view> parts;
      PathSegments(r.pattern, &parts);
      patterns_.push_back(std::move(parts));
    }
  }

  // `method`: kGet for GET and HEAD, kPost for POST, 0 for any other.
  Match Find(std::span<const std::string_view> path, uint8_t method) const {
    Match m;
    for (size_t i = 0; i < routes_.size(); ++i) {
      std::array<std::string_view, kMaxArgs> args;
      if (!Matches(patterns_[i], path, &args)) continue;
      m.allowed |= routes_[i].methods;
      if (m.method_ok) continue;
      if ((routes_[i].methods & method) != 0 || m.route == nullptr) {
        m.route = &routes_[i];
        m.method_ok = (routes_[i].methods & method) != 0;
        m.args = args;
      }
    }
    return m;
  }
  const std::vector<Route>& routes() const { return routes_; }

 private:
  static bool Matches(const std::vector<std::string_view>& pattern,
                      std::span<const std::string_view> path,
                      std::array<std::string_view, kMaxArgs>* args) {
    if (pattern.size() != path.size()) return false;
    size_t n = 0;
    for (size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == "{}") {
        if (n < kMaxArgs) (*args)[n++] = path[i];
      } else if (pattern[i] != path[i]) {
        return false;
      }
    }
    return true;
  }

  std::vector<Route> routes_;
  std::vector<std::vector<std::string_view>> patterns_;
};

// "GET", "POST" or "GET, POST": an Allow header's value.
std::string AllowHeader(uint8_t methods);

}  // namespace rtml::http
