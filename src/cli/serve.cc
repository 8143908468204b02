#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

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
  // Before any thread starts, so that every thread inherits the mask and a
  // stop signal only ever reaches the sigwait below.
  const sigset_t stop_signals = BlockStopSignals();
  auto stack = Stack::Build(std::move(cfg).value());
  if (!stack.ok()) {
    spdlog::error("{}", stack.status().message());
    return 2;
  }
  if (Status s = (*stack)->Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  const config::HttpConfig& http = (*stack)->config().http;
  // From here a second signal stops at once, whatever is in progress.
  std::thread([stop_signals] {
    int again = 0;
    sigwait(&stop_signals, &again);
    spdlog::warn("second signal: stopping at once");
    spdlog::default_logger()->flush();
    std::_Exit(1);
  }).detach();
  (*stack)->BeginDrain();
  if (http.drain_s > 0) {
    spdlog::info("received {}: draining for {} s (/readyz answers 503, requests still served; "
                 "a second signal stops at once)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", http.drain_s);
    std::this_thread::sleep_for(std::chrono::duration<double>(http.drain_s));
  }
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*stack)->Stop();
  return 0;
}

}  // namespace rtml::cli
