// rtml: the command-line entry point. Wiring only: each subcommand builds the
// parts it needs from config and hands over to them.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"rtml: real-time ML inference. Serves XGBoost models over HTTP with "
               "validation, defaults and metrics."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("rtml ") + RTML_VERSION);

  rtml::cli::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Serve the models of a config over HTTP");
  serve_cmd->add_option("-c,--config", serve.config_path, "Config file (YAML)")
      ->check(CLI::ExistingFile)
      ->envname("RTML_CONFIG");
  serve_cmd->add_option("--host", serve.host, "Listen address (overrides http.host)");
  serve_cmd->add_option("-p,--port", serve.port, "Listen port (overrides http.port; 0 = any)")
      ->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--threads", serve.threads,
                        "Event loops (overrides http.threads; 0 = one per core)")
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--models", serve.models,
                        "Model repository folder (overrides models.repository)")
      ->check(CLI::ExistingDirectory);
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error");

  CLI::App* models_cmd = app.add_subcommand("models", "Work with models and repositories");
  models_cmd->require_subcommand(1);
  std::string inspect_path;
  CLI::App* inspect_cmd = models_cmd->add_subcommand(
      "inspect", "Describe a model file, a version folder, or a whole repository");
  inspect_cmd->add_option("path", inspect_path, "XGBoost JSON file, version folder or repository")
      ->required()
      ->check(CLI::ExistingPath);

  CLI::App* version_cmd = app.add_subcommand("version", "Print rtml's version and libraries");

  CLI11_PARSE(app, argc, argv);
  if (serve_cmd->parsed()) return rtml::cli::RunServe(serve);
  if (inspect_cmd->parsed()) return rtml::cli::RunModelsInspect(inspect_path);
  if (version_cmd->parsed()) return rtml::cli::RunVersion();
  return 0;
}
