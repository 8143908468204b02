// The rtml subcommands. Each returns the process exit code and prints errors
// with what to do next.
#pragma once

#include <optional>
#include <string>

namespace rtml::cli {

struct ServeOptions {
  std::string config_path;  // empty: built-in defaults
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<int> threads;
  std::optional<std::string> models;
  std::optional<std::string> log_level;
};

int RunServe(const ServeOptions& options);
int RunModelsInspect(const std::string& path);
int RunVersion();

}  // namespace rtml::cli
