#include "config/yaml.h"

#include <filesystem>

namespace rtml::config {

Result<YAML::Node> LoadYamlFile(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return FailedPrecondition("cannot read '" + path + "': no such file or not readable");
  } catch (const YAML::Exception& e) {
    return FailedPrecondition(path + ": invalid YAML: " + e.what());
  }
}

Result<YAML::Node> ParseYaml(std::string_view text, std::string_view where) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return FailedPrecondition(std::string(where) + ": invalid YAML: " + e.what());
  }
}

Status CheckKeys(const YAML::Node& node, std::string_view where,
                 std::initializer_list<std::string_view> allowed) {
  if (!node || node.IsNull()) return Status::Ok();
  if (!node.IsMap()) return FailedPrecondition(std::string(where) + " must be a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return FailedPrecondition(std::string(where) + ": unknown key '" + key +
                                "' (allowed: " + list + ")");
    }
  }
  return Status::Ok();
}

std::string ResolvePath(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

std::string DirName(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace rtml::config
