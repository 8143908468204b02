#include "observability/log.h"

#include <spdlog/pattern_formatter.h>

#include <mutex>

namespace rtml::observability {
namespace {

thread_local LogContext current_context;

void AppendJsonEscaped(std::string_view s, spdlog::memory_buf_t& dest) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      dest.push_back('\\');
      dest.push_back(c);
    } else if (c == '\n') {
      dest.append(std::string_view("\\n"));
    } else if (c == '\r') {
      dest.append(std::string_view("\\r"));
    } else if (c == '\t') {
      dest.append(std::string_view("\\t"));
    } else if (u < 0x20) {
      const char esc[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
      dest.append(esc, esc + sizeof(esc));
    } else {
      dest.push_back(c);
    }
  }
}

// %j: the message, escaped for a JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    AppendJsonEscaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// %F: the thread's LogContext, as JSON members (`,"model":"m",...`) or as
// text (`  model=m version=1 request_id=r`).
class ContextFlag final : public spdlog::custom_flag_formatter {
 public:
  explicit ContextFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const LogContext& c = current_context;
    if (!json_ && (!c.model.empty() || !c.request_id.empty())) dest.push_back(' ');
    if (!c.model.empty()) Field("model", c.model, true, dest);
    if (c.version != 0) Field("version", std::to_string(c.version), false, dest);
    if (!c.request_id.empty()) Field("request_id", c.request_id, true, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ContextFlag>(json_);
  }

 private:
  void Field(std::string_view key, std::string_view value, bool quoted,
             spdlog::memory_buf_t& dest) const {
    if (json_) {
      dest.append(std::string_view(",\""));
      dest.append(key);
      dest.append(std::string_view(quoted ? "\":\"" : "\":"));
      AppendJsonEscaped(value, dest);
      if (quoted) dest.push_back('"');
    } else {
      dest.push_back(' ');
      dest.append(key);
      dest.push_back('=');
      dest.append(value);
    }
  }
  bool json_;
};

std::mutex loggers_mu;

}  // namespace

std::unique_ptr<spdlog::formatter> MakeFormatter(bool json) {
  auto f = std::make_unique<spdlog::pattern_formatter>(
      json ? spdlog::pattern_time_type::utc : spdlog::pattern_time_type::local);
  f->add_flag<JsonMessageFlag>('j');
  f->add_flag<ContextFlag>('F', json);
  if (json) {
    f->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","component":"%n"%F,"msg":"%j"})");
  } else {
    f->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v%F");
  }
  return f;
}

void SetUpLogging(const LogConfig& config) {
  std::lock_guard lock(loggers_mu);
  if (spdlog::default_logger()->name() != "rtml") {
    auto rtml = spdlog::default_logger()->clone("rtml");
    spdlog::set_default_logger(rtml);
  }
  spdlog::set_level(spdlog::level::from_str(config.level));
  spdlog::set_formatter(MakeFormatter(config.json));
}

spdlog::logger& ComponentLogger(const std::string& component) {
  std::lock_guard lock(loggers_mu);
  if (auto existing = spdlog::get(component)) return *existing;
  auto made = spdlog::default_logger()->clone(component);
  spdlog::initialize_logger(made);  // registered, with the global level and format
  return *made;  // the registry keeps it
}

LogScope::LogScope(const LogContext& context) : previous_(current_context) {
  current_context = context;
}

LogScope::~LogScope() { current_context = previous_; }

}  // namespace rtml::observability
