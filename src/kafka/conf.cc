#include "kafka/conf.h"

#include "observability/log.h"

namespace rtml::kafka {
namespace {

// librdkafka levels are syslog's: 0-2 critical, 3 error, 4 warning, 5-6
// notice/info, 7 debug. Called from librdkafka's threads.
void OnLog(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  static spdlog::logger& log = observability::ComponentLogger("kafka");
  const spdlog::level::level_enum l = level <= 2   ? spdlog::level::critical
                                      : level == 3 ? spdlog::level::err
                                      : level == 4 ? spdlog::level::warn
                                      : level <= 6 ? spdlog::level::info
                                                   : spdlog::level::debug;
  if (log.should_log(l)) log.log(l, "{} {}: {}", rd_kafka_name(rk), facility, message);
}

}  // namespace

void LogThroughSpdlog(rd_kafka_conf_t* conf) { rd_kafka_conf_set_log_cb(conf, &OnLog); }

Status SetConf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) !=
      RD_KAFKA_CONF_OK) {
    return FailedPrecondition("Kafka setting " + key + "=" + value + ": " + err);
  }
  return Status::Ok();
}

Status SetCommonConf(rd_kafka_conf_t* conf, const std::string& brokers,
                     const std::map<std::string, std::string>& properties) {
  RETURN_IF_ERROR(SetConf(conf, "bootstrap.servers", brokers));
  RETURN_IF_ERROR(SetConf(conf, "client.id", "rtml"));
  RETURN_IF_ERROR(SetConf(conf, "log_level", "4"));
  // After a broker restart, reconnect within a second (librdkafka's default
  // backs off to 10 s, which the stream would wait out).
  RETURN_IF_ERROR(SetConf(conf, "reconnect.backoff.max.ms", "1000"));
  LogThroughSpdlog(conf);
  for (const auto& [k, v] : properties) RETURN_IF_ERROR(SetConf(conf, k, v));
  return Status::Ok();
}

}  // namespace rtml::kafka
