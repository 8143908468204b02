// ServingPolicy: how a model's requests and events pick a version, read from
// models/<name>/serving.yaml beside the version folders (absent: the highest
// version serves everything):
//
//   default: 2                       # the version behind /v1/models/<name>/predict
//   labels: {stable: 2, canary: 3}   # /v1/models/<name>/labels/canary/predict
//   traffic: {2: 90, 3: 10}          # weighted split of requests that name no version
//   sticky_key: user_id              # same key value -> same version while weights hold
//   shadow: [4]                      # also scored and compared; never answered
//   decision_threshold: 0.5          # a shadow's decision differs across it
//
// Route() is the pure decision, unit-tested without a server: a request that
// names a version or a label gets it; otherwise, with traffic weights, a
// point on [0, total weight) picks the version (from the sticky key's hash
// when the request carries it, else from the caller's random draw); otherwise
// the default. The route says why: "version", a label's name, "traffic" or
// "default".
// Thread-safety: immutable values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace rtml::model {

struct ServingPolicy {
  std::optional<int64_t> default_version;  // nullopt: the highest loaded
  std::map<std::string, int64_t, std::less<>> labels;
  std::vector<std::pair<int64_t, uint64_t>> traffic;  // (version, weight), weight > 0
  uint64_t total_weight = 0;
  std::string sticky_key;      // a request field; empty: a random draw per request
  std::vector<int64_t> shadow;
  double decision_threshold = 0.5;  // for probability outputs

  bool empty() const {
    return !default_version && labels.empty() && traffic.empty() && shadow.empty();
  }
  // Every version the policy names (to check they are loaded).
  std::vector<int64_t> NamedVersions() const;
};

// Parses serving.yaml text; `where` names the file in errors.
Result<ServingPolicy> ParseServingPolicy(std::string_view yaml, std::string_view where);

struct RouteChoice {
  int64_t version = 0;
  std::string_view route;  // "version", "default", "traffic" or a label (a view into the policy)
};

// What a request asks for: a version, a label, or neither.
struct RouteRequest {
  std::optional<int64_t> version;
  std::string_view label;
  std::optional<uint64_t> sticky_hash;  // the sticky key's value, hashed, when present
  uint64_t draw = 0;                    // a random number, used without a sticky hash
};

// REQUIRES: highest is the highest loaded version. A label the policy does not
// have is NotFound (unknown_label); versions are not checked here.
Result<RouteChoice> Route(const ServingPolicy& policy, int64_t highest, const RouteRequest& r);

// A stable 64-bit hash of a sticky key's raw JSON token (FNV-1a then a mix):
// the same value always lands on the same point.
uint64_t StickyHash(std::string_view token);

}  // namespace rtml::model
