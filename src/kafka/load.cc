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
#include "kafka/conf.h"

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

double Round2(double v) { return std::round(v * 100) / 100; }

double Beta(std::mt19937_64& rng, double a, double b) {
  std::gamma_distribution<double> x(a, 1.0), y(b, 1.0);
  const double u = x(rng), v = y(rng);
  return u / (u + v);
}

// The transaction's own inputs (all but the stored user profile), drawn as
// examples/fraud/transactions.py draws the training data, so that the demo's
// traffic does not drift from the model's reference. Unknown values (ip_risk
// for card-present purchases, gaps for first transactions) are null.
// `shifted` moves amounts and IP risk away from the training data. Without
// `windows`, the inputs over the user's recent transactions (counts, sums,
// the gap since the last one) are left out: rtml computes them from the
// stream (the demo's stream feature view).
void WriteTransaction(std::mt19937_64& rng, bool bad, bool shifted, bool windows, JsonWriter& w) {
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_int_distribution<int> hour_d(0, 23), dow_d(0, 6), cat(0, 19);
  std::lognormal_distribution<double> amount_d(3.8, 1.1), avg_d(3.8, 0.7);
  std::exponential_distribution<double> home(1 / 15.0), last(1 / 10.0), gap(1 / 20000.0);
  std::poisson_distribution<int> hourly(0.4), daily(3), failed(0.1);
  std::normal_distribution<double> noise(0, 3);
  const double amount = Round2(amount_d(rng) * (shifted ? 6 : 1)), avg = Round2(avg_d(rng));
  const int hour = hour_d(rng), dow = dow_d(rng);
  const bool online = unit(rng) < 0.45, international = unit(rng) < 0.08;
  const bool card_present = !online && unit(rng) < 0.9;
  const int count_1h = hourly(rng), count_24h = count_1h + daily(rng);
  const bool first = unit(rng) < 0.03;
  if (bad) {
    w.Key("amount").String("n/a");  // a bad type, for the dead-letter path
  } else {
    w.Key("amount").Double(amount);
  }
  w.Key("hour_of_day").Int(hour).Key("day_of_week").Int(dow);
  w.Key("is_online").Bool(online).Key("is_international").Bool(international);
  w.Key("card_present").Bool(card_present);
  w.Key("merchant_risk").Double(std::round(Beta(rng, 1.2, 8) * 1000) / 1000);
  w.Key("merchant_category").Int(cat(rng));
  w.Key("distance_from_home_km").Double(Round2(home(rng) + (international ? 1000 : 0)));
  w.Key("distance_from_last_txn_km");
  first ? w.Null() : w.Double(Round2(last(rng)));
  if (windows) {
    w.Key("seconds_since_last_txn");
    first ? w.Null() : w.Double(Round2(gap(rng)));
    w.Key("txn_count_1h").Int(count_1h).Key("txn_count_24h").Int(count_24h);
    w.Key("amount_sum_24h").Double(Round2(avg * count_24h + amount));
  }
  w.Key("amount_to_avg_ratio").Double(Round2(amount / std::max(avg, 1.0)));
  w.Key("failed_logins_24h").Int(failed(rng));
  w.Key("device_change").Bool(unit(rng) < 0.05);
  w.Key("ip_risk");
  const double ip_risk = std::min(1.0, Beta(rng, 1, 12) + (shifted ? 0.3 : 0));
  card_present ? w.Null() : w.Double(std::round(ip_risk * 1000) / 1000);
  w.Key("country_mismatch").Bool(international && unit(rng) < 0.5);
  std::gamma_distribution<double> vendor(2.0, 6.0);  // a vendor's score, as transactions.py
  w.Key("velocity_score").Double(Round2(std::clamp(vendor(rng), 0.0, 100.0)));
  w.Key("is_weekend").Bool(dow >= 5).Key("is_night").Bool(hour < 6 || hour >= 23);
}

// One card transaction as the fraud demo's event: the raw transaction and
// the user whose stored profile and stream windows fill in the rest.
int WriteEvent(std::mt19937_64& rng, uint64_t id, int first_user, int users, bool bad,
               bool shifted, std::string* out) {
  std::uniform_int_distribution<int> user_d(first_user, users);
  const int user = user_d(rng);
  out->clear();
  JsonWriter w(out);
  w.BeginObject().Key("id").Uint(id).Key("user_id").Int(user);
  WriteTransaction(rng, bad, shifted, /*windows=*/false, w);
  w.Key("event_time").String(FormatTimestamp(NowMicros()));
  w.EndObject();
  return user;
}

// All 30 inputs of the fraud model, by name (the Python consumer's format).
void WriteFullRow(std::mt19937_64& rng, uint64_t id, std::string* out) {
  std::lognormal_distribution<double> avg(3.8, 0.7), limit(8.3, 0.6);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_int_distribution<int> age(18, 90), account_d(1, 4000), card_d(1, 2000),
      email(0, 5000);
  std::poisson_distribution<int> chargebacks(0.05);
  out->clear();
  JsonWriter w(out);
  w.BeginObject().Key("id").Uint(id).Key("features").BeginObject();
  WriteTransaction(rng, false, false, /*windows=*/true, w);
  const int account = account_d(rng);
  w.Key("avg_amount_30d").Double(Round2(avg(rng)));
  w.Key("account_age_days").Int(account).Key("card_age_days").Int(std::min(account, card_d(rng)));
  w.Key("user_age").Int(age(rng)).Key("credit_limit").Double(std::round(limit(rng) / 100) * 100);
  w.Key("utilization").Double(std::round(Beta(rng, 2, 5) * 1000) / 1000);
  w.Key("email_age_days").Int(email(rng)).Key("chargebacks_365d").Int(chargebacks(rng));
  w.EndObject().EndObject();
}

}  // namespace

int64_t EventGenerator::CreatedAt(uint64_t id) const {
  if (!created_us_ || id >= o_.limit) return 0;
  return created_us_[id].load(std::memory_order_relaxed);
}

Result<std::unique_ptr<EventGenerator>> EventGenerator::Create(GeneratorOptions o) {
  auto g = std::unique_ptr<EventGenerator>(new EventGenerator(std::move(o)));
  if (g->o_.limit > 0) {
    g->created_us_ = std::make_unique<std::atomic<int64_t>[]>(g->o_.limit);
  }
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  Set(c, "bootstrap.servers", g->o_.brokers);
  Set(c, "linger.ms", "2");
  Set(c, "log_level", "3");
  LogThroughSpdlog(c);
  rd_kafka_conf_set_opaque(c, g.get());
  rd_kafka_conf_set_dr_msg_cb(c, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (!m->err) static_cast<EventGenerator*>(opaque)->acknowledged_.fetch_add(1);
  });
  std::string err;
  g->producer_ = NewClient(RD_KAFKA_PRODUCER, c, &err);
  if (g->producer_ == nullptr) return FailedPrecondition("generator producer: " + err);
  // Connect and learn the topic before the clock starts: the first events
  // must not pay for the connection.
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(g->producer_, g->o_.topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t e = rd_kafka_metadata(g->producer_, 0, rkt, &md, 10000);
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(StatusCode::kUnavailable, "no metadata for " + g->o_.topic + " at " +
                                                g->o_.brokers + ": " + rd_kafka_err2str(e));
  }
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
    std::string key;
    if (o_.full_rows) {
      WriteFullRow(rng, i, &value);
      key = "t" + std::to_string(i);
    } else {
      const bool shifted =
          o_.shift_after_s > 0 &&
          Clock::now() - start > std::chrono::duration<double>(o_.shift_after_s);
      // Keyed by the user: the stream windows are per user.
      key = std::to_string(WriteEvent(rng, i, o_.first_user, o_.users, unit(rng) < o_.bad_share,
                                            shifted, &value));
    }
    if (created_us_) created_us_[i].store(NowMicros(), std::memory_order_relaxed);
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

Result<std::unique_ptr<PredictionMonitor>> PredictionMonitor::Create(
    const std::string& brokers, const std::string& topic, const std::string& dlq,
    const EventGenerator* timing) {
  auto m = std::unique_ptr<PredictionMonitor>(new PredictionMonitor());
  m->dlq_topic_ = dlq;
  m->timing_ = timing;
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  Set(c, "bootstrap.servers", brokers);
  Set(c, "group.id", "rtml-monitor");  // required by the API; never joined or committed
  Set(c, "enable.auto.commit", "false");
  Set(c, "fetch.wait.max.ms", "5");
  Set(c, "log_level", "3");
  LogThroughSpdlog(c);
  std::string err;
  m->consumer_ = NewClient(RD_KAFKA_CONSUMER, c, &err);
  if (m->consumer_ == nullptr) return FailedPrecondition("monitor consumer: " + err);
  // Start at each partition's current end: only outputs from now on count.
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(16);
  for (const std::string& t : {topic, dlq}) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(m->consumer_, t.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(m->consumer_, 0, rkt, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].err) {
      if (md != nullptr) rd_kafka_metadata_destroy(md);
      rd_kafka_topic_destroy(rkt);
      rd_kafka_topic_partition_list_destroy(parts);
      return Status(StatusCode::kUnavailable, "no metadata for topic " + t + " at " + brokers);
    }
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      int64_t low = 0, high = 0;
      rd_kafka_query_watermark_offsets(m->consumer_, t.c_str(), p, &low, &high, 5000);
      rd_kafka_topic_partition_list_add(parts, t.c_str(), p)->offset = high;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
  }
  rd_kafka_assign(m->consumer_, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  return m;
}

PredictionMonitor::~PredictionMonitor() {
  Stop();
  if (consumer_ != nullptr) rd_kafka_destroy(consumer_);
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
    uint64_t id = 0;
    if (!parser.parse(static_cast<const char*>(m->payload), m->len).get(doc)) {
      predictions_.fetch_add(1);
      const bool has_time = !doc["event_time"].get(event_time);
      const bool has_scoring = !doc["scoring_latency_us"].get(scoring_us);
      std::optional<int64_t> created;
      if (timing_ != nullptr && !doc["id"].get(id) && timing_->CreatedAt(id) > 0) {
        created = timing_->CreatedAt(id);
      } else if (has_time) {
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
  LogThroughSpdlog(c);
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
