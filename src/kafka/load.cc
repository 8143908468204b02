#include "kafka/load.h"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>

#include "common/json_writer.h"
#include "common/time_format.h"

namespace rtml::kafka {
using Clock = std::chrono::steady_clock;

namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

rd_kafka_t* NewClient(rd_kafka_type_t type, rd_kafka_conf_t* conf, std::string* error) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) *error = err;
  return rk;
}

void Set(rd_kafka_conf_t* c, const char* k, const std::string& v) {
  char err[256];
  rd_kafka_conf_set(c, k, v.c_str(), err, sizeof(err));
}

// One synthetic card transaction as the fraud model's request JSON.
void WriteEvent(std::mt19937_64& rng, uint64_t id, int users, bool bad, std::string* out) {
  std::uniform_int_distribution<int> user(1, users), hour(0, 23), cat(0, 19), small(0, 5);
  std::lognormal_distribution<double> amount(3.8, 1.1);
  std::uniform_real_distribution<double> unit(0, 1);
  out->clear();
  JsonWriter w(out);
  w.BeginObject().Key("id").Uint(id).Key("user_id").Int(user(rng));
  if (bad) {
    w.Key("amount").String("n/a");  // a bad type, for the dead-letter path
  } else {
    const double a = std::round(amount(rng) * 100) / 100;
    w.Key("amount").Double(a);
  }
  const bool online = unit(rng) < 0.45;
  w.Key("hour_of_day").Int(hour(rng)).Key("is_online").Bool(online);
  w.Key("card_present").Bool(!online && unit(rng) < 0.9);
  w.Key("merchant_risk").Double(std::round(unit(rng) * unit(rng) * 1000) / 1000);
  w.Key("merchant_category").Int(cat(rng)).Key("txn_count_1h").Int(small(rng) / 3);
  w.Key("ip_risk").Double(std::round(unit(rng) * unit(rng) * unit(rng) * 1000) / 1000);
  w.Key("event_time").String(FormatTimestamp(NowMicros()));
  w.EndObject();
}

}  // namespace

Result<std::unique_ptr<EventGenerator>> EventGenerator::Create(GeneratorOptions o) {
  auto g = std::unique_ptr<EventGenerator>(new EventGenerator(std::move(o)));
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  Set(c, "bootstrap.servers", g->o_.brokers);
  Set(c, "linger.ms", "2");
  Set(c, "log_level", "3");
  rd_kafka_conf_set_opaque(c, g.get());
  rd_kafka_conf_set_dr_msg_cb(c, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (!m->err) static_cast<EventGenerator*>(opaque)->acknowledged_.fetch_add(1);
  });
  std::string err;
  g->producer_ = NewClient(RD_KAFKA_PRODUCER, c, &err);
  if (g->producer_ == nullptr) return FailedPrecondition("generator producer: " + err);
  return g;
}

EventGenerator::~EventGenerator() {
  Stop();
  if (producer_ != nullptr) {
    rd_kafka_flush(producer_, 5000);
    rd_kafka_destroy(producer_);
  }
}

void EventGenerator::Start() { thread_ = std::thread([this] { Loop(); }); }

void EventGenerator::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void EventGenerator::Wait() {
  if (thread_.joinable()) thread_.join();
  rd_kafka_flush(producer_, 60000);
}

void EventGenerator::Loop() {
  std::mt19937_64 rng(o_.seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::string value;
  const auto start = Clock::now();
  for (uint64_t i = 0; !stop_.load() && (o_.limit == 0 || i < o_.limit); ++i) {
    if (o_.rate_per_s > 0) {  // pace: event i is due at i / rate
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(i / o_.rate_per_s));
      while (Clock::now() < due && !stop_.load()) {
        rd_kafka_poll(producer_, 0);
        std::this_thread::sleep_until(std::min(due, Clock::now() + std::chrono::milliseconds(5)));
      }
    }
    WriteEvent(rng, i, o_.users, unit(rng) < o_.bad_share, &value);
    const std::string key = "t" + std::to_string(i);
    while (rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(o_.topic.c_str()),
                             RD_KAFKA_V_KEY(key.data(), key.size()),
                             RD_KAFKA_V_VALUE(value.data(), value.size()),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(producer_, 10);
    }
    produced_.fetch_add(1, std::memory_order_relaxed);
    rd_kafka_poll(producer_, 0);
  }
}

LatencySummary Summarize(std::vector<double> v) {
  LatencySummary s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  s.p50_ms = at(0.50);
  s.p95_ms = at(0.95);
  s.p99_ms = at(0.99);
  s.max_ms = v.back();
  return s;
}

Result<std::unique_ptr<PredictionMonitor>> PredictionMonitor::Create(const std::string& brokers,
                                                                     const std::string& topic,
                                                                     const std::string& dlq) {
  auto m = std::unique_ptr<PredictionMonitor>(new PredictionMonitor());
  m->dlq_topic_ = dlq;
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  Set(c, "bootstrap.servers", brokers);
  Set(c, "group.id", "rtml-monitor-" + std::to_string(NowMicros()));
  Set(c, "auto.offset.reset", "latest");
  Set(c, "enable.auto.commit", "false");
  Set(c, "fetch.wait.max.ms", "5");
  Set(c, "session.timeout.ms", "6000");
  Set(c, "heartbeat.interval.ms", "1000");
  Set(c, "log_level", "3");
  std::string err;
  m->consumer_ = NewClient(RD_KAFKA_CONSUMER, c, &err);
  if (m->consumer_ == nullptr) return FailedPrecondition("monitor consumer: " + err);
  rd_kafka_poll_set_consumer(m->consumer_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(2);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_topic_partition_list_add(topics, dlq.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(m->consumer_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  return m;
}

PredictionMonitor::~PredictionMonitor() {
  Stop();
  if (consumer_ != nullptr) {
    rd_kafka_consumer_close(consumer_);
    rd_kafka_destroy(consumer_);
  }
}

void PredictionMonitor::Start() { thread_ = std::thread([this] { Loop(); }); }

void PredictionMonitor::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void PredictionMonitor::Loop() {
  simdjson::dom::parser parser;
  while (!stop_.load()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, 50);
    if (m == nullptr) continue;
    if (m->err) {
      rd_kafka_message_destroy(m);
      continue;
    }
    const int64_t now = NowMicros();
    if (dlq_topic_ == rd_kafka_topic_name(m->rkt)) {
      dead_letters_.fetch_add(1);
      rd_kafka_message_destroy(m);
      continue;
    }
    simdjson::dom::element doc;
    std::string_view event_time;
    int64_t scoring_us = 0;
    if (!parser.parse(static_cast<const char*>(m->payload), m->len).get(doc)) {
      predictions_.fetch_add(1);
      const bool has_time = !doc["event_time"].get(event_time);
      const bool has_scoring = !doc["scoring_latency_us"].get(scoring_us);
      std::optional<int64_t> created;
      if (has_time) {
        auto parsed = ParseTimestamp(event_time);
        if (parsed.ok()) created = *parsed;
      }
      std::lock_guard lock(mu_);
      if (created) e2e_ms_.push_back((now - *created) / 1000.0);
      if (has_scoring) scoring_ms_.push_back(scoring_us / 1000.0);
    }
    rd_kafka_message_destroy(m);
  }
}

MonitorSnapshot PredictionMonitor::Snapshot(bool reset) {
  MonitorSnapshot s;
  s.predictions = predictions_.load();
  s.dead_letters = dead_letters_.load();
  std::vector<double> e2e, scoring;
  {
    std::lock_guard lock(mu_);
    if (reset) {
      e2e.swap(e2e_ms_);
      scoring.swap(scoring_ms_);
    } else {
      e2e = e2e_ms_;
      scoring = scoring_ms_;
    }
  }
  s.end_to_end = Summarize(std::move(e2e));
  s.scoring = Summarize(std::move(scoring));
  return s;
}

bool PredictionMonitor::WaitFor(uint64_t n, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < deadline) {
    if (predictions_.load() + dead_letters_.load() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

Result<int64_t> ConsumerLag(const std::string& brokers, const std::string& group,
                            const std::string& topic) {
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  Set(c, "bootstrap.servers", brokers);
  Set(c, "group.id", group);
  Set(c, "log_level", "2");
  std::string err;
  rd_kafka_t* rk = NewClient(RD_KAFKA_CONSUMER, c, &err);
  if (rk == nullptr) return FailedPrecondition(err);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  int64_t lag = 0;
  Status status;
  if (rd_kafka_metadata(rk, 0, t, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
    const int n = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; ++p) rd_kafka_topic_partition_list_add(parts, topic.c_str(), p);
    if (rd_kafka_committed(rk, parts, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int p = 0; p < n; ++p) {
        int64_t low = 0, high = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 2000)) continue;
        const int64_t committed = parts->elems[p].offset >= 0 ? parts->elems[p].offset : low;
        lag += std::max<int64_t>(0, high - committed);
      }
    } else {
      status = Status(StatusCode::kUnavailable, "cannot read committed offsets");
    }
    rd_kafka_topic_partition_list_destroy(parts);
  } else {
    status = Status(StatusCode::kUnavailable, "no metadata for " + topic);
  }
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(rk);
  if (!status.ok()) return status;
  return lag;
}

}  // namespace rtml::kafka
