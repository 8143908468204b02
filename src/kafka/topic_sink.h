// TopicSink: the prediction log (observability::PredictionLog) written to a
// Kafka topic, one record per message (the JSON object as the value, no key),
// by an idempotent producer of its own with a thread serving its delivery
// reports. Records are counted logged when the broker acknowledges them, and
// dropped when the producer queue (100,000 records) is full or delivery
// fails (after librdkafka's retries, within message.timeout.ms: 30 s here);
// a warning is logged at most every 10 s while records are being dropped.
// kafka.properties apply last, so they can change any of these settings. On destruction it waits
// up to 5 s for what is in flight and counts the rest as dropped.
// Thread-safety: Write() from any thread.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "observability/prediction_log.h"

namespace rtml::kafka {

class TopicSink final : public observability::PredictionSink {
 public:
  static Result<std::unique_ptr<TopicSink>> Create(
      const std::string& brokers, const std::map<std::string, std::string>& properties,
      std::string topic, observability::PredictionLogCounters counters);
  ~TopicSink() override;

  void Write(std::string_view record) override;
  std::string Describe() const override { return "Kafka topic " + topic_; }

 private:
  TopicSink(std::string topic, observability::PredictionLogCounters counters)
      : topic_(std::move(topic)), counters_(counters) {}
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
  void Dropped(const char* why);

  const std::string topic_;
  const observability::PredictionLogCounters counters_;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::thread poller_;
  std::atomic<int64_t> last_warning_s_{0};
};

}  // namespace rtml::kafka
