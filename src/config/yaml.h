// Small helpers over yaml-cpp for start-up config loading: every error names
// the file and key path, unknown keys are rejected (they are usually typos),
// and nothing throws past these functions.
// Thread-safety: free functions; use at start-up only.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rtml::config {

Result<YAML::Node> LoadYamlFile(const std::string& path);
Result<YAML::Node> ParseYaml(std::string_view text, std::string_view where);

// Fails if `node` (a map at `where`) has a key not in `allowed`.
Status CheckKeys(const YAML::Node& node, std::string_view where,
                 std::initializer_list<std::string_view> allowed);

// Reads node[key] into *out when present; fails naming where.key on a type
// mismatch. Absent keys leave *out unchanged (its documented default).
template <typename T>
Status Read(const YAML::Node& node, std::string_view where, const char* key, T* out) {
  if (!node || !node.IsMap()) return Status::Ok();  // absent section
  const YAML::Node v = node[key];
  if (!v || v.IsNull()) return Status::Ok();
  try {
    *out = v.as<T>();
  } catch (const YAML::Exception&) {
    return FailedPrecondition(std::string(where) + "." + key + ": cannot read '" +
                              (v.IsScalar() ? v.Scalar() : std::string("<non-scalar>")) +
                              "' as the expected type");
  }
  return Status::Ok();
}

template <typename T>
Status Read(const YAML::Node& node, std::string_view where, const char* key,
            std::optional<T>* out) {
  T value{};
  if (!node || !node.IsMap()) return Status::Ok();
  const YAML::Node v = node[key];
  if (!v || v.IsNull()) return Status::Ok();
  RETURN_IF_ERROR(Read(node, where, key, &value));
  *out = value;
  return Status::Ok();
}

// Joins `path` to `base_dir` unless it is absolute.
std::string ResolvePath(const std::string& base_dir, const std::string& path);
// Directory part of a file path ("." for a bare name).
std::string DirName(const std::string& path);

}  // namespace rtml::config
