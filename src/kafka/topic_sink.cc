#include "kafka/topic_sink.h"

#include <chrono>

#include "kafka/conf.h"
#include "observability/log.h"

namespace rtml::kafka {
namespace {

spdlog::logger& Log() {
  static spdlog::logger& log = observability::ComponentLogger("prediction-log");
  return log;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<TopicSink>> TopicSink::Create(
    const std::string& brokers, const std::map<std::string, std::string>& properties,
    std::string topic, observability::PredictionLogCounters counters) {
  if (topic.empty()) return FailedPrecondition("log.predictions.topic is empty");
  auto sink = std::unique_ptr<TopicSink>(new TopicSink(std::move(topic), counters));
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Status s = SetConf(conf, "enable.idempotence", "true");
  if (s.ok()) s = SetConf(conf, "linger.ms", "50");  // records are sampled: batch them
  if (s.ok()) s = SetConf(conf, "queue.buffering.max.messages", "100000");
  // Give up on a record after 30 s (librdkafka's default is 5 min), so that an
  // unreachable broker shows as dropped records soon.
  if (s.ok()) s = SetConf(conf, "message.timeout.ms", "30000");
  if (s.ok()) s = SetCommonConf(conf, brokers, properties);  // kafka.properties override
  if (!s.ok()) {
    rd_kafka_conf_destroy(conf);
    return s.Annotate("prediction log producer");
  }
  rd_kafka_conf_set_opaque(conf, sink.get());
  rd_kafka_conf_set_dr_msg_cb(conf, &TopicSink::OnDelivery);
  char err[512];
  sink->producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (sink->producer_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return FailedPrecondition(std::string("prediction log producer: ") + err);
  }
  sink->poller_ = std::thread([raw = sink.get()] {
    while (!raw->stopping_.load(std::memory_order_relaxed)) rd_kafka_poll(raw->producer_, 100);
  });
  return sink;
}

TopicSink::~TopicSink() {
  if (producer_ == nullptr) return;
  stopping_.store(true);
  if (poller_.joinable()) poller_.join();
  rd_kafka_flush(producer_, 5000);  // serves the remaining delivery reports
  if (const int left = rd_kafka_outq_len(producer_); left > 0) {
    counters_.dropped->Inc(left);
    Log().warn("{} prediction record(s) still in flight to {} after 5 s; dropped", left, topic_);
  }
  rd_kafka_destroy(producer_);
}

void TopicSink::Write(std::string_view record) {
  const rd_kafka_resp_err_t e = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(topic_.c_str()),
      RD_KAFKA_V_VALUE(const_cast<char*>(record.data()), record.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) Dropped(rd_kafka_err2str(e));
}

void TopicSink::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<TopicSink*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->counters_.logged->Inc();
  } else {
    self->Dropped(rd_kafka_err2str(m->err));
  }
}

void TopicSink::Dropped(const char* why) {
  counters_.dropped->Inc();
  const int64_t now = NowSeconds();
  int64_t last = last_warning_s_.load(std::memory_order_relaxed);
  if (now - last >= 10 && last_warning_s_.compare_exchange_strong(last, now)) {
    Log().warn("prediction records to {} are being dropped: {} "
               "(see rtml_prediction_log_records_total{{outcome=\"dropped\"}})",
               topic_, why);
  }
}

}  // namespace rtml::kafka
