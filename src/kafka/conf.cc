#include "kafka/conf.h"

namespace rtml::kafka {

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
  for (const auto& [k, v] : properties) RETURN_IF_ERROR(SetConf(conf, k, v));
  return Status::Ok();
}

}  // namespace rtml::kafka
