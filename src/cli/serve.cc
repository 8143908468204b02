#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/stack.h"

namespace rtml::cli {

int RunServe(const ServeOptions& options) {
  auto cfg = LoadWithOverrides(options);
  if (!cfg.ok()) {
    std::fprintf(stderr, "rtml serve: %s\n(fix the config; see README.md, Configuration)\n",
                 cfg.status().message().c_str());
    return 2;
  }
  SetUpLogging(cfg->log);
  auto stack = Stack::Build(std::move(cfg).value());
  if (!stack.ok()) {
    spdlog::error("{}", stack.status().message());
    return 2;
  }
  const sigset_t stop_signals = BlockStopSignals();
  if (Status s = (*stack)->Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*stack)->Stop();
  return 0;
}

}  // namespace rtml::cli
