#include "model/serving_policy.h"

#include <algorithm>
#include <cmath>

#include "common/hash.h"
#include "config/yaml.h"

namespace rtml::model {
namespace {

using config::CheckKeys;

Result<int64_t> VersionOf(const YAML::Node& n, const std::string& where) {
  int64_t v = 0;
  try {
    v = n.as<int64_t>();
  } catch (const YAML::Exception&) {
    return FailedPrecondition(where + ": '" + (n.IsScalar() ? n.Scalar() : "<non-scalar>") +
                              "' is not a version number");
  }
  if (v <= 0) return FailedPrecondition(where + ": version numbers are positive, not " +
                                        std::to_string(v));
  return v;
}

Status ReadLabels(const YAML::Node& n, const std::string& where, ServingPolicy* p) {
  if (!n) return Status::Ok();
  if (!n.IsMap()) return FailedPrecondition(where + ": give label: version pairs");
  for (const auto& kv : n) {
    const std::string label = kv.first.Scalar();
    if (label.empty() || label.find('/') != std::string::npos) {
      return FailedPrecondition(where + ": '" + label + "' cannot be a label (it is a URL part)");
    }
    ASSIGN_OR_RETURN(int64_t v, VersionOf(kv.second, where + "." + label));
    p->labels.emplace(label, v);
  }
  return Status::Ok();
}

// Enough for shares to a millionth; a sum of any number of them fits uint64_t.
constexpr double kMaxWeight = 1e6;

Status ReadTraffic(const YAML::Node& n, const std::string& where, ServingPolicy* p) {
  if (!n) return Status::Ok();
  if (!n.IsMap()) return FailedPrecondition(where + ": give version: weight pairs");
  for (const auto& kv : n) {
    ASSIGN_OR_RETURN(int64_t v, VersionOf(kv.first, where));
    double w = 0;
    try {
      w = kv.second.as<double>();
    } catch (const YAML::Exception&) {
      return FailedPrecondition(where + "." + std::to_string(v) + ": a weight is a number");
    }
    // Checked before any conversion: NaN or a weight past uint64_t's range
    // would be undefined behaviour to convert (found by model_yaml_fuzzer).
    if (!(w >= 0 && w <= kMaxWeight) || w != std::floor(w)) {
      return FailedPrecondition(where + "." + std::to_string(v) +
                                ": weights are whole numbers from 0 to " +
                                std::to_string(static_cast<int64_t>(kMaxWeight)) + ", not " +
                                kv.second.Scalar());
    }
    if (w == 0) continue;  // a version at 0 takes no traffic
    p->traffic.emplace_back(v, static_cast<uint64_t>(w));
    p->total_weight += static_cast<uint64_t>(w);
  }
  std::sort(p->traffic.begin(), p->traffic.end());
  if (n.size() > 0 && p->total_weight == 0) {
    return FailedPrecondition(where + ": every weight is 0; remove traffic to serve the default");
  }
  return Status::Ok();
}

}  // namespace

std::vector<int64_t> ServingPolicy::NamedVersions() const {
  std::vector<int64_t> out(shadow.begin(), shadow.end());
  if (default_version) out.push_back(*default_version);
  for (const auto& [label, v] : labels) out.push_back(v);
  for (const auto& [v, w] : traffic) out.push_back(v);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<ServingPolicy> ParseServingPolicy(std::string_view yaml, std::string_view where_view) {
  const std::string where(where_view);
  ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(yaml, where));
  ServingPolicy p;
  if (!root || root.IsNull()) return p;
  if (!root.IsMap()) return FailedPrecondition(where + ": expected a mapping");
  RETURN_IF_ERROR(
      CheckKeys(root, where, {"default", "labels", "traffic", "sticky_key", "shadow",
                              "decision_threshold"}));
  RETURN_IF_ERROR(config::Read(root, where, "decision_threshold", &p.decision_threshold));
  if (root["default"]) {
    ASSIGN_OR_RETURN(p.default_version, VersionOf(root["default"], where + ".default"));
  }
  RETURN_IF_ERROR(ReadLabels(root["labels"], where + ".labels", &p));
  RETURN_IF_ERROR(ReadTraffic(root["traffic"], where + ".traffic", &p));
  RETURN_IF_ERROR(config::Read(root, where, "sticky_key", &p.sticky_key));
  if (const YAML::Node s = root["shadow"]) {
    if (!s.IsSequence()) return FailedPrecondition(where + ".shadow: give a list of versions");
    for (const auto& v : s) {
      ASSIGN_OR_RETURN(int64_t n, VersionOf(v, where + ".shadow"));
      p.shadow.push_back(n);
    }
  }
  for (int64_t s : p.shadow) {
    const bool answers = p.default_version == s ||
                         std::any_of(p.traffic.begin(), p.traffic.end(),
                                     [s](const auto& t) { return t.first == s; });
    if (answers) {
      return FailedPrecondition(where + ".shadow: version " + std::to_string(s) +
                                " also answers (default or traffic); a shadow never answers");
    }
  }
  return p;
}

Result<RouteChoice> Route(const ServingPolicy& p, int64_t highest, const RouteRequest& r) {
  if (r.version) return RouteChoice{*r.version, "version"};
  if (!r.label.empty()) {
    auto it = p.labels.find(r.label);
    if (it == p.labels.end()) {
      return NotFound("no label '" + std::string(r.label) + "' in this model's serving.yaml",
                      "unknown_label");
    }
    return RouteChoice{it->second, it->first};
  }
  if (p.total_weight > 0) {
    uint64_t point = (r.sticky_hash ? *r.sticky_hash : r.draw) % p.total_weight;
    for (const auto& [version, weight] : p.traffic) {
      if (point < weight) return RouteChoice{version, "traffic"};
      point -= weight;
    }
  }
  return RouteChoice{p.default_version.value_or(highest), "default"};
}

uint64_t StickyHash(std::string_view token) {
  if (token.size() >= 2 && token.front() == '"' && token.back() == '"') {
    token = token.substr(1, token.size() - 2);  // "123" and 123 are the same key
  }
  uint64_t h = Fnv1a64(token);
  h ^= h >> 33;  // spread the low bits, which the modulo uses
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace rtml::model
