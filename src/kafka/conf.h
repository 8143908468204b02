// Building librdkafka configurations: one setting at a time with errors that
// name it, and the settings every rtml client shares (brokers, client.id,
// log level, the user's kafka.properties).
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>

#include "common/status.h"

namespace rtml::kafka {

Status SetConf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);

// Sends the client's log lines to the "kafka" component logger.
void LogThroughSpdlog(rd_kafka_conf_t* conf);

// bootstrap.servers, client.id=rtml, log_level, then `properties` (which may
// override any of them). librdkafka's own log lines go through the "kafka"
// component logger (so they follow log.format), not straight to stderr.
Status SetCommonConf(rd_kafka_conf_t* conf, const std::string& brokers,
                     const std::map<std::string, std::string>& properties);

}  // namespace rtml::kafka
