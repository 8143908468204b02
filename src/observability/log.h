// Logging: spdlog with one named logger per component ("http", "stream",
// "scoring", "drift", "features", "rtml" for the command line), all writing
// to the same sinks with one format:
//   text  2026-11-26 08:51:06.609 warning [drift] message  model=fraud version=1
//   json  {"time":"2026-11-26T08:51:06.609123Z","level":"warning",
//          "component":"drift","model":"fraud","version":1,"msg":"message"}
// One JSON object per line, the message escaped. `model`, `version` and
// `request_id` come from the LogContext in effect on the logging thread
// (absent when empty), so code that logs about a model or a request sets a
// LogScope instead of formatting them into every message.
// Nothing is logged per request at INFO: request lines are DEBUG.
// Thread-safety: SetUpLogging() once at start-up, before serving; loggers and
// LogScopes from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace rtml::observability {

struct LogConfig {
  std::string level = "info";  // trace | debug | info | warn | error
  bool json = false;
};

// Applies level and format to every logger, existing and future, and names
// the default logger "rtml".
void SetUpLogging(const LogConfig& config);

// The logger of a component, created on first use; keep the reference.
spdlog::logger& ComponentLogger(const std::string& component);

struct LogContext {
  std::string_view model;
  int64_t version = 0;  // 0: none
  std::string_view request_id;
};

// Sets the calling thread's LogContext for its lifetime (the strings must
// outlive it) and restores the previous one after.
class LogScope {
 public:
  explicit LogScope(const LogContext& context);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  LogContext previous_;
};

// The formatter SetUpLogging installs, exposed for tests.
std::unique_ptr<spdlog::formatter> MakeFormatter(bool json);

}  // namespace rtml::observability
