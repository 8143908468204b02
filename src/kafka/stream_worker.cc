#include "kafka/stream_worker.h"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/json_writer.h"
#include "common/time_format.h"
#include "kafka/aggregation_feed.h"
#include "kafka/conf.h"
#include "kafka/offset_tracker.h"
#include "observability/log.h"
#include "pipeline/error_reasons.h"
#include "protocol/rtml_json.h"
#include "resilience/retry.h"

namespace rtml::kafka {
namespace od = simdjson::ondemand;
using Clock = std::chrono::steady_clock;

namespace {

spdlog::logger& Log() {
  static spdlog::logger& log = observability::ComponentLogger("stream");
  return log;
}

// A produced message's source, packed into its opaque pointer (no allocation):
// offset in bits 0-39, stream key (topic index * 4096 + partition) in 40-55,
// assignment generation in 56-62; bit 63 marks a dead letter.
uintptr_t Cookie(uint8_t generation, int32_t partition, int64_t offset) {
  return (static_cast<uintptr_t>(generation) << 56) |
         (static_cast<uintptr_t>(partition & 0xffff) << 40) |
         (static_cast<uintptr_t>(offset) & ((uintptr_t{1} << 40) - 1));
}
uint8_t CookieGeneration(uintptr_t c) { return static_cast<uint8_t>(c >> 56); }
int32_t CookiePartition(uintptr_t c) { return static_cast<int32_t>((c >> 40) & 0xffff); }
int64_t CookieOffset(uintptr_t c) { return static_cast<int64_t>(c & ((uintptr_t{1} << 40) - 1)); }

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status Set(rd_kafka_conf_t* conf, const std::string& k, const std::string& v) {
  return SetConf(conf, k, v);
}

}  // namespace

class StreamWorker::Impl {
 public:
  Impl(StreamWorker* w, const pipeline::Scorer& scorer, observability::Registry* metrics)
      : w_(w), o_(w->options_), scorer_(scorer), metrics_(metrics) {
    const observability::Labels topic{{"topic", o_.input_topic}};
    events_ = metrics->AddCounter("rtml_stream_events_total", "Events consumed.", topic);
    predictions_ = metrics->AddCounter("rtml_stream_predictions_total",
                                       "Predictions produced and acknowledged.", topic);
    for (const char* reason : pipeline::kErrorReasons) {
      dead_letters_.emplace_back(
          reason, metrics->AddCounter("rtml_stream_dead_letters_total",
                                      "Events sent to the dead-letter topic, by reason.",
                                      {{"topic", o_.input_topic}, {"reason", reason}}));
    }
    metrics->AddGaugeFamily(
        "rtml_stream_consumer_lag", "Messages behind the end of each assigned input partition.",
        [w, topic = o_.input_topic] {
          std::vector<std::pair<observability::Labels, double>> out;
          for (auto [partition, lag] : w->Lag()) {
            out.push_back({{{"topic", topic}, {"partition", std::to_string(partition)}},
                           static_cast<double>(lag)});
          }
          return out;
        });
    queue_latency_ = metrics->AddHistogram(
        "rtml_stream_queue_duration_seconds",
        "Time from an event's Kafka timestamp to the start of its scoring.", topic,
        observability::LatencyBucketsSeconds());
    commit_latency_ = metrics->AddHistogram("rtml_stream_commit_duration_seconds",
                                            "Time of an offset commit.", topic,
                                            observability::LatencyBucketsSeconds());
    auto retries = [&](const char* op) {
      return metrics->AddCounter("rtml_retries_total", resilience::kRetriesHelp, {{"op", op}});
    };
    retries_score_ = retries("stream_score");
    retries_feature_write_ = retries("feature_write");
    retries_produce_ = retries("produce");
  }

  ~Impl() {
    if (consumer_ != nullptr) rd_kafka_destroy(consumer_);
    if (producer_ != nullptr) rd_kafka_destroy(producer_);
  }

  Status Init() {
    char err[512];
    rd_kafka_conf_t* pc = rd_kafka_conf_new();
    RETURN_IF_ERROR(CommonConf(pc));
    RETURN_IF_ERROR(Set(pc, "enable.idempotence", "true"));
    if (o_.exactly_once) {
      RETURN_IF_ERROR(Set(pc, "transactional.id", TransactionalId()));
      RETURN_IF_ERROR(Set(pc, "transaction.timeout.ms", std::to_string(o_.transaction_timeout_ms)));
    }
    RETURN_IF_ERROR(Set(pc, "linger.ms", "1"));
    RETURN_IF_ERROR(Set(pc, "message.timeout.ms",
                        o_.exactly_once ? std::to_string(o_.transaction_timeout_ms) : "60000"));
    rd_kafka_conf_set_opaque(pc, this);
    rd_kafka_conf_set_dr_msg_cb(pc, &Impl::OnDelivery);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
    if (producer_ == nullptr) return FailedPrecondition(std::string("Kafka producer: ") + err);
    if (o_.exactly_once) {
      RETURN_IF_ERROR(TxnStatus(rd_kafka_init_transactions(producer_, 30000), "init"));
      Log().info("exactly-once mode, transactional.id {}", TransactionalId());
    }

    rd_kafka_conf_t* cc = rd_kafka_conf_new();
    RETURN_IF_ERROR(Set(cc, "group.id", o_.group_id));
    RETURN_IF_ERROR(Set(cc, "enable.auto.commit", "false"));
    RETURN_IF_ERROR(Set(cc, "enable.auto.offset.store", "false"));
    RETURN_IF_ERROR(Set(cc, "auto.offset.reset", "earliest"));
    RETURN_IF_ERROR(Set(cc, "session.timeout.ms", "6000"));
    RETURN_IF_ERROR(Set(cc, "heartbeat.interval.ms", "1000"));
    RETURN_IF_ERROR(Set(cc, "fetch.wait.max.ms", "10"));
    if (o_.exactly_once) RETURN_IF_ERROR(Set(cc, "isolation.level", "read_committed"));
    RETURN_IF_ERROR(CommonConf(cc));
    rd_kafka_conf_set_opaque(cc, this);
    rd_kafka_conf_set_rebalance_cb(cc, &Impl::OnRebalance);
    consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
    if (consumer_ == nullptr) return FailedPrecondition(std::string("Kafka consumer: ") + err);
    rd_kafka_poll_set_consumer(consumer_);
    topics_ = {o_.input_topic};
    if (o_.feature_store != nullptr) {
      for (const features::FeatureView& v : o_.feature_store->definitions().views()) {
        if (v.source.kafka_topic.empty() || !v.online || v.aggregation != nullptr) continue;
        RETURN_IF_ERROR(AddFeatureTopic(v));
      }
    }
    feed_ = AggregationFeed::Create(o_.feature_store, o_.input_topic, metrics_);
    if (feed_ != nullptr) w_->catching_up_.store(true);  // until its partitions are read
    for (const std::string& t : feed_ ? feed_->other_topics() : std::vector<std::string>{}) {
      if (std::find(topics_.begin(), topics_.end(), t) != topics_.end()) continue;
      if (topics_.size() >= 16) return FailedPrecondition("at most 15 feature topics");
      topics_.push_back(t);
    }
    rd_kafka_topic_partition_list_t* topics =
        rd_kafka_topic_partition_list_new(static_cast<int>(topics_.size()));
    for (const std::string& t : topics_) {
      rd_kafka_topic_partition_list_add(topics, t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    const rd_kafka_resp_err_t e = rd_kafka_subscribe(consumer_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return FailedPrecondition("cannot subscribe to " + o_.input_topic + ": " +
                                rd_kafka_err2str(e));
    }
    return Status::Ok();
  }

  // A feature view fed from a topic: records carry its join keys, timestamp
  // field and features, in any order.
  Status AddFeatureTopic(const features::FeatureView& v) {
    if (topics_.size() >= 16) return FailedPrecondition("at most 15 feature topics");
    std::vector<std::string> columns;
    for (int e : v.entities) {
      columns.push_back(o_.feature_store->definitions().entities()[e].join_key);
    }
    columns.push_back(v.source.timestamp_field);
    for (const features::Feature& f : v.features) columns.push_back(f.name);
    ASSIGN_OR_RETURN(features::ViewIngestor g,
                     features::ViewIngestor::Create(o_.feature_store->definitions(), v, columns));
    feature_topics_.push_back({static_cast<int>(topics_.size()), &v, std::move(columns),
                               std::move(g)});
    topics_.push_back(v.source.kafka_topic);
    Log().info("feature view {} follows topic {}", v.name, v.source.kafka_topic);
    return Status::Ok();
  }

  int TopicIndex(const rd_kafka_message_t* m) const {
    const char* name = rd_kafka_topic_name(m->rkt);
    for (size_t i = 0; i < topics_.size(); ++i) {
      if (topics_[i] == name) return static_cast<int>(i);
    }
    return 0;
  }
  static int32_t StreamKey(int topic, int32_t partition) { return topic * 4096 + partition; }

  Status Run() {
    auto next_commit = Clock::now(), next_lag = Clock::now();
    std::vector<rd_kafka_message_t*> batch;
    while (!w_->stop_.load()) {
      rd_kafka_poll(producer_, 0);
      if (!o_.exactly_once && Clock::now() >= next_commit) {
        Commit(/*sync=*/false);
        next_commit = Clock::now() + std::chrono::milliseconds(50);
      }
      if (Clock::now() >= next_lag) {
        UpdateLag();
        next_lag = Clock::now() + std::chrono::seconds(1);
      }
      if (!o_.exactly_once) ApplyBackpressure();
      batch.clear();
      uint8_t generation = generation_;
      while (static_cast<int>(batch.size()) < o_.max_batch) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, batch.empty() ? 20 : 0);
        if (generation != generation_) {
          // A rebalance ran in that poll: what came before belongs to the old
          // assignment (its new owner reads it again); never apply it here.
          for (rd_kafka_message_t* old : batch) rd_kafka_message_destroy(old);
          batch.clear();
          generation = generation_;
        }
        if (m == nullptr) break;
        batch.push_back(m);
      }
      if (o_.exactly_once) {
        Status s = TransactBatch(batch);
        for (rd_kafka_message_t* m : batch) rd_kafka_message_destroy(m);
        if (!s.ok()) return s;  // fatal: fenced by a newer replica, or the producer failed
        continue;
      }
      ProcessBatch(batch);
      for (rd_kafka_message_t* m : batch) rd_kafka_message_destroy(m);
    }
    if (o_.exactly_once) {
      rd_kafka_consumer_close(consumer_);
      return Status::Ok();
    }
    Drain();
    Commit(/*sync=*/true);
    rd_kafka_consumer_close(consumer_);
    return Status::Ok();
  }

 private:
  Status CommonConf(rd_kafka_conf_t* conf) { return SetCommonConf(conf, o_.brokers, o_.properties); }

  // Scores what one poll returned as micro-batches (one per target model):
  // one feature-store read and one model call per batch. With stream feature
  // views on the input topic, a batch is cut into runs in which no entity
  // appears twice: each run is scored, then added to the windows, then
  // emitted, so every event is scored on the events before it and its output
  // leaves only once the state that includes it is written.
  void ProcessBatch(const std::vector<rd_kafka_message_t*>& batch) {
    const Clock::time_point polled_at = Clock::now();  // each event's latency starts here
    events_batch_.clear();
    const bool aggregates_input = feed_ != nullptr && feed_->follows(o_.input_topic);
    for (rd_kafka_message_t* m : batch) {
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          Log().warn("kafka consumer: {}", rd_kafka_message_errstr(m));
        }
        continue;
      }
      const int topic = TopicIndex(m);
      tracker_.Track(StreamKey(topic, m->partition), m->offset);
      if (topic != 0) {
        IsFeatureTopic(topic) ? ApplyFeatureUpdate(topic, m) : StageAggregate(topic, m);
        continue;
      }
      w_->stats_.events_in.fetch_add(1, std::memory_order_relaxed);
      events_->Inc();
      rd_kafka_timestamp_type_t ts_type;
      const int64_t ts_ms = rd_kafka_message_timestamp(m, &ts_type);
      if (ts_ms > 0) {
        const double waited = (WallMicros() - ts_ms * 1000) / 1e6;
        queue_latency_->Observe(std::max(0.0, waited));
      }
      const std::string_view payload(static_cast<const char*>(m->payload), m->len);
      int64_t read_at_us = 0;
      if (aggregates_input) {
        const std::string_view key(static_cast<const char*>(m->key), m->key_len);
        Status s = feed_->Parse(o_.input_topic, key, payload, &read_at_us);
        if (!s.ok()) {
          DeadLetter(m, key, payload, s, Cookie(generation_, StreamKey(0, m->partition), m->offset));
          continue;
        }
        if (feed_->Conflicts()) FlushRun(polled_at);
        feed_->Stage(m->partition, m->offset);
      }
      events_batch_.push_back(Event{m, Peek(payload), read_at_us});
    }
    FlushRun(polled_at);
  }

  // Scores the events gathered so far, writes the aggregation state staged
  // with them, then emits their outputs.
  void FlushRun(Clock::time_point polled_at) {
    ScoreEvents();
    if (feed_ != nullptr && feed_->staged()) {
      Status s = feed_->Flush([this] { return w_->stop_.load(); },
                              [this](int ms) { rd_kafka_poll(producer_, ms); });
      if (!s.ok()) {  // stopping: nothing of this run is emitted or committed
        events_batch_.clear();
        aggregate_done_.clear();
        return;
      }
      for (auto [stream, offset] : aggregate_done_) tracker_.Done(stream, offset);
      aggregate_done_.clear();
    }
    for (size_t i = 0; i < events_batch_.size(); ++i) {
      Emit(events_batch_[i], event_results_[i], polled_at);
    }
    events_batch_.clear();
  }

  // Scores events_batch_ into event_results_, grouped by target model.
  void ScoreEvents() {
    event_results_.resize(events_batch_.size());
    std::vector<bool> done(events_batch_.size(), false);
    for (size_t first = 0; first < events_batch_.size(); ++first) {
      if (done[first]) continue;
      const std::string& model = events_batch_[first].peek.model;
      group_.clear();
      bodies_.clear();
      read_at_.clear();
      for (size_t i = first; i < events_batch_.size(); ++i) {
        if (done[i] || events_batch_[i].peek.model != model) continue;
        done[i] = true;
        group_.push_back(i);
        rd_kafka_message_t* m = events_batch_[i].message;
        bodies_.push_back({&protocol::KafkaEvent(),
                           std::string_view(static_cast<const char*>(m->payload), m->len)});
        read_at_.push_back(events_batch_[i].read_at_us);
      }
      results_.resize(bodies_.size());
      scorer_.ScoreBatch({model, std::nullopt, pipeline::Path::kStream}, bodies_, &scratch_,
                         &results_, read_at_);
      for (size_t g = 0; g < group_.size(); ++g) {
        std::swap(event_results_[group_[g]], results_[g]);
      }
    }
  }

  bool IsFeatureTopic(int topic) const {
    for (const FeatureTopic& f : feature_topics_) {
      if (f.topic == topic) return true;
    }
    return false;
  }

  // A message of a topic only stream feature views follow: staged for the
  // next state write; its offset is done once that write lands.
  void StageAggregate(int topic, rd_kafka_message_t* m) {
    const std::string_view payload(static_cast<const char*>(m->payload), m->len);
    const std::string_view key(static_cast<const char*>(m->key), m->key_len);
    int64_t read_at_us = 0;
    Status s = feed_->Parse(topics_[topic], key, payload, &read_at_us);
    if (!s.ok()) {
      return DeadLetter(m, key, payload, s, Cookie(generation_, StreamKey(topic, m->partition),
                                                   m->offset));
    }
    feed_->Stage(m->partition, m->offset);
    aggregate_done_.emplace_back(StreamKey(topic, m->partition), m->offset);
    w_->stats_.feature_updates.fetch_add(1, std::memory_order_relaxed);
  }

  struct Peeked {
    std::string model;       // empty: the default model
    std::string event_time;  // raw JSON token
  };
  struct Event {
    rd_kafka_message_t* message;
    Peeked peek;
    int64_t read_at_us = 0;  // when its stored features are read (0: now)
  };

  std::string TransactionalId() const {
    if (!o_.transactional_id.empty()) return o_.transactional_id;
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    return o_.group_id + "-" + host;
  }

  static Status TxnStatus(rd_kafka_error_t* e, std::string_view what) {
    if (e == nullptr) return Status::Ok();
    Status s(rd_kafka_error_is_fatal(e) ? StatusCode::kInternal : StatusCode::kUnavailable,
             "Kafka transaction " + std::string(what) + ": " + rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return s;
  }

  // One poll as one transaction: outputs and input offsets commit together.
  // An abortable failure aborts and rewinds to the last committed offsets, so
  // the events are processed again; a fatal one ends the worker.
  Status TransactBatch(const std::vector<rd_kafka_message_t*>& batch) {
    if (batch.empty()) return Status::Ok();
    RETURN_IF_ERROR(TxnStatus(rd_kafka_begin_transaction(producer_), "begin"));
    ProcessBatch(batch);
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(8);
    for (rd_kafka_message_t* m : batch) {
      if (m->err) continue;
      rd_kafka_topic_partition_t* p = rd_kafka_topic_partition_list_find(
          offsets, rd_kafka_topic_name(m->rkt), m->partition);
      if (p == nullptr) {
        p = rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(m->rkt), m->partition);
      }
      p->offset = std::max(p->offset, m->offset + 1);
    }
    rd_kafka_consumer_group_metadata_t* group = rd_kafka_consumer_group_metadata(consumer_);
    rd_kafka_error_t* e = rd_kafka_send_offsets_to_transaction(producer_, offsets, group, 30000);
    rd_kafka_consumer_group_metadata_destroy(group);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (e == nullptr) e = rd_kafka_commit_transaction(producer_, 60000);
    if (e == nullptr) {
      w_->stats_.transactions.fetch_add(1, std::memory_order_relaxed);
      tracker_.Clear();  // offsets went with the transaction
      return Status::Ok();
    }
    const bool fatal = rd_kafka_error_is_fatal(e);
    Log().warn("transaction failed ({}){}", rd_kafka_error_string(e),
                 fatal ? "" : "; aborting and rewinding");
    rd_kafka_error_destroy(e);
    if (fatal) return Internal("fatal transaction error; restart the worker");
    RETURN_IF_ERROR(TxnStatus(rd_kafka_abort_transaction(producer_, 60000), "abort"));
    w_->stats_.aborts.fetch_add(1, std::memory_order_relaxed);
    tracker_.Clear();
    return Rewind();
  }

  // Seeks every assigned partition back to its committed offset.
  Status Rewind() {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(consumer_, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Ok();
    }
    rd_kafka_committed(consumer_, assigned, 10000);
    for (int i = 0; i < assigned->cnt; ++i) {
      if (assigned->elems[i].offset < 0) assigned->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_error_t* e = rd_kafka_seek_partitions(consumer_, assigned, 10000);
    rd_kafka_topic_partition_list_destroy(assigned);
    if (e != nullptr) rd_kafka_error_destroy(e);
    return Status::Ok();
  }

  // Writes one feature record to the online store (waiting out a store
  // outage); a bad record goes to the dead-letter topic.
  void ApplyFeatureUpdate(int topic, rd_kafka_message_t* m) {
    FeatureTopic* ft = nullptr;
    for (FeatureTopic& f : feature_topics_) ft = f.topic == topic ? &f : ft;
    const uintptr_t cookie = Cookie(generation_, StreamKey(topic, m->partition), m->offset);
    const std::string_view payload(static_cast<const char*>(m->payload), m->len);
    const std::string_view key(static_cast<const char*>(m->key), m->key_len);
    simdjson::dom::object obj;
    if (dom_parser_.parse(payload.data(), payload.size()).get(obj)) {
      return DeadLetter(m, key, payload,
                        InvalidArgument("a feature record must be a JSON object",
                                        "malformed_json"),
                        cookie);
    }
    cells_.assign(ft->columns.size(), features::RawValue{});
    for (auto [k, v] : obj) {
      for (size_t c = 0; c < ft->columns.size(); ++c) {
        if (ft->columns[c] == k) cells_[c] = features::RawFromJson(v);
      }
    }
    features::IngestResult result;
    ft->ingestor.Add(0, cells_, &result);
    if (result.rejected > 0) {
      const features::Rejection& r = result.rejections.front();
      return DeadLetter(m, key, payload,
                        InvalidArgument(r.reason, "bad_feature_record", r.column), cookie);
    }
    if (scratch_.store == nullptr) scratch_.store = o_.feature_store->online().NewSession();
    resilience::Backoff backoff = NewBackoff();
    while (true) {
      Status s = ft->ingestor.Flush(*scratch_.store, &result);
      if (s.ok() || w_->stop_.load()) break;
      const auto delay = backoff.Next();
      Log().warn("feature update for {}: {}; retrying in {} ms", ft->view->name, s.message(),
                 delay.count());
      retries_feature_write_->Inc();
      ft->ingestor.Add(0, cells_, &result);  // Flush consumed it: queue it again
      Idle(delay);
    }
    w_->stats_.feature_updates.fetch_add(1, std::memory_order_relaxed);
    tracker_.Done(StreamKey(topic, m->partition), m->offset);
  }

  // Produces the prediction or the dead letter of one event. Its latency, in
  // the output and the metrics, runs from the poll that fetched it to the
  // hand-off of its prediction to the producer.
  void Emit(const Event& e, pipeline::EventResult& r, Clock::time_point polled_at) {
    rd_kafka_message_t* m = e.message;
    const uintptr_t cookie = Cookie(generation_, StreamKey(0, m->partition), m->offset);
    const std::string_view payload(static_cast<const char*>(m->payload), m->len);
    const std::string_view key(static_cast<const char*>(m->key), m->key_len);
    if (r.status.code() == StatusCode::kUnavailable) {  // not the event's fault: wait it out
      r.status = Score(e.peek.model, payload, &r.response);  // records its own latency
    }
    if (!r.status.ok()) return DeadLetter(m, key, payload, r.status, cookie);
    out_.clear();
    JsonWriter w(&out_);
    w.BeginObject().Key("key").String(key).Key("partition").Int(m->partition);
    w.Key("offset").Int(m->offset);
    if (!e.peek.event_time.empty()) {
      w.Key("event_time").Raw(e.peek.event_time);
    } else {
      rd_kafka_timestamp_type_t type;
      const int64_t ts_ms = rd_kafka_message_timestamp(m, &type);
      w.Key("event_time").String(FormatTimestamp(ts_ms * 1000));
    }
    const auto handed_off = Clock::now();
    w.Key("scoring_latency_us")
        .Int(std::chrono::duration_cast<std::chrono::microseconds>(handed_off - polled_at).count());
    // Splice the Scorer's response object (id, model, version, prediction, ...).
    out_.push_back(',');
    out_.append(r.response, 1, std::string::npos);
    Produce(o_.output_topic, key, out_, nullptr, cookie);
    r.latency.Record(handed_off - polled_at);
  }

  // Scores, waiting out a feature-store outage (the event is not at fault).
  Status Score(std::string_view model, std::string_view payload, std::string* response) {
    resilience::Backoff backoff = NewBackoff();
    while (true) {
      Status s = scorer_.Score({model, std::nullopt, pipeline::Path::kStream},
                               {&protocol::KafkaEvent(), payload}, &scratch_, response);
      if (s.code() != StatusCode::kUnavailable || w_->stop_.load()) return s;
      const auto delay = backoff.Next();
      Log().warn("{}; retrying in {} ms", s.message(), delay.count());
      retries_score_->Inc();
      Idle(delay);
    }
  }

  resilience::Backoff NewBackoff() { return resilience::Backoff(resilience::kStreamRetry, ++backoff_seed_); }

  // Waits `delay` while serving the producer's callbacks, or until stopped.
  void Idle(std::chrono::milliseconds delay) {
    const auto until = Clock::now() + delay;
    while (Clock::now() < until && !w_->stop_.load()) rd_kafka_poll(producer_, 10);
  }

  // Reads "model" and "event_time" without scoring (the body may be invalid).
  Peeked Peek(std::string_view payload) {
    Peeked p;
    peek_buf_.reserve(payload.size() + simdjson::SIMDJSON_PADDING);
    peek_buf_.assign(payload);
    od::document doc;
    if (peek_parser_.iterate(simdjson::padded_string_view(peek_buf_.data(), peek_buf_.size(),
                                                          peek_buf_.capacity()))
            .get(doc)) {
      return p;
    }
    od::object obj;
    if (doc.get_object().get(obj)) return p;
    for (auto f : obj) {
      od::field field;
      std::string_view k;
      if (std::move(f).get(field) || field.unescaped_key().get(k)) return p;
      od::value v = field.value();
      if (k == "model") {
        std::string_view model;
        if (!v.get_string().get(model)) p.model = std::string(model);
      } else if (k == "event_time") {
        std::string_view raw = v.raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n')) raw.remove_suffix(1);
        p.event_time = std::string(raw);
      }
    }
    return p;
  }

  void DeadLetter(rd_kafka_message_t* m, std::string_view key, std::string_view payload,
                  const Status& s, uintptr_t cookie) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(8);
    auto add = [&](const char* name, const std::string& value) {
      rd_kafka_header_add(h, name, -1, value.data(), static_cast<ssize_t>(value.size()));
    };
    add("__connect.errors.topic", rd_kafka_topic_name(m->rkt));
    add("__connect.errors.partition", std::to_string(m->partition));
    add("__connect.errors.offset", std::to_string(m->offset));
    add("__connect.errors.stage", "TRANSFORMATION");
    add("__connect.errors.exception.class.name", "rtml." + std::string(s.reason()));
    add("__connect.errors.exception.message", s.message());
    if (!s.field().empty()) add("rtml.errors.field", s.field());
    for (auto& [reason, counter] : dead_letters_) {
      if (reason == s.reason() || std::string_view(reason) == "other") {
        counter->Inc();
        break;
      }
    }
    w_->stats_.dead_letters.fetch_add(1, std::memory_order_relaxed);
    Produce(DeadLetterTopic(), key, payload, h, cookie | kDeadLetterBit);
  }

  std::string DeadLetterTopic() const {
    return o_.dead_letter_topic.empty() ? o_.input_topic + "-dlq" : o_.dead_letter_topic;
  }

  // Produces, waiting while the local queue is full (backpressure).
  void Produce(const std::string& topic, std::string_view key, std::string_view value,
               rd_kafka_headers_t* headers, uintptr_t cookie) {
    while (true) {
      rd_kafka_resp_err_t e;
      if (headers != nullptr) {
        e = rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic.c_str()),
                              RD_KAFKA_V_KEY(key.data(), key.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADERS(headers),
                              RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(cookie)), RD_KAFKA_V_END);
      } else {
        e = rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic.c_str()),
                              RD_KAFKA_V_KEY(key.data(), key.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(cookie)), RD_KAFKA_V_END);
      }
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL && o_.exactly_once) {
        // Inside a transaction: its commit will fail, abort and rewind.
        Log().error("cannot produce to {}: {}", topic, rd_kafka_err2str(e));
        if (headers != nullptr) rd_kafka_headers_destroy(headers);
        return;
      }
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        Log().error("cannot produce to {}: {}", topic, rd_kafka_err2str(e));
        retries_produce_->Inc();
        rd_kafka_poll(producer_, 100);
        continue;  // never drop: the offset stays uncommitted until this succeeds
      }
      rd_kafka_poll(producer_, 50);
    }
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    static_cast<Impl*>(opaque)->Delivered(m);
  }

  void Delivered(const rd_kafka_message_t* m) {
    const uintptr_t cookie = reinterpret_cast<uintptr_t>(m->_private);
    if (m->err && o_.exactly_once) return;  // the transaction's commit fails and aborts
    if (m->err) {
      // librdkafka retried until message.timeout.ms: produce it again.
      Log().warn("delivery to {} failed ({}); producing again",
                   rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
      retries_produce_->Inc();
      rd_kafka_headers_t* h = nullptr;
      rd_kafka_headers_t* copy = nullptr;
      if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        copy = rd_kafka_headers_copy(h);
      }
      Produce(rd_kafka_topic_name(m->rkt),
              std::string_view(static_cast<const char*>(m->key), m->key_len),
              std::string_view(static_cast<const char*>(m->payload), m->len), copy, cookie);
      return;
    }
    const uintptr_t source = cookie & ~kDeadLetterBit;
    if (CookieGeneration(source) == (generation_ & 0x7f)) {
      tracker_.Done(CookiePartition(source), CookieOffset(source));
    }
    if (!(cookie & kDeadLetterBit)) {
      w_->stats_.predictions_out.fetch_add(1, std::memory_order_relaxed);
      predictions_->Inc();
    }
  }

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      Log().info("assigned {} partition(s) of {}", parts->cnt, self->o_.input_topic);
      self->generation_ = static_cast<uint8_t>((self->generation_ + 1) & 0x7f);
      self->paused_ = false;
      self->assigned_ = true;  // (an empty assignment too: nothing to catch up on)
      if (self->feed_ != nullptr) {
        self->feed_->Reset();
        self->start_offsets_.clear();
        self->StartFromState(parts);
        self->w_->catching_up_.store(true);
      }
      rd_kafka_assign(rk, parts);
    } else {
      Log().info("revoked {} partition(s); committing what is done", parts->cnt);
      if (!self->o_.exactly_once) {
        const auto t0 = Clock::now();
        self->Drain();
        const auto t1 = Clock::now();
        self->Commit(/*sync=*/true);
        Log().info("revoked: outputs flushed in {} ms ({} left), committed in {} ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count(),
                   rd_kafka_outq_len(self->producer_),
                   std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t1).count());
      }
      self->tracker_.Clear();
      self->generation_ = static_cast<uint8_t>((self->generation_ + 1) & 0x7f);
      rd_kafka_assign(rk, nullptr);
    }
  }

  // Waits (bounded) for every produced output to be acknowledged.
  void Drain() { rd_kafka_flush(producer_, 30000); }

  void Commit(bool sync) {
    auto ready = tracker_.TakeCommittable();
    if (ready.empty()) return;
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(ready.size()));
    for (auto [stream, offset] : ready) {
      rd_kafka_topic_partition_list_add(list, topics_[stream / 4096].c_str(), stream % 4096)
          ->offset = offset;
    }
    const auto t0 = Clock::now();
    const rd_kafka_resp_err_t e = rd_kafka_commit(consumer_, list, sync ? 0 : 1);
    commit_latency_->Observe(std::chrono::duration<double>(Clock::now() - t0).count());
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      Log().warn("commit failed: {}", rd_kafka_err2str(e));
    }
    w_->stats_.commits.fetch_add(1, std::memory_order_relaxed);
  }

  // Lag per assigned input partition from the client's cached watermarks
  // (no broker round trip).
  void UpdateLag() {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(consumer_, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    rd_kafka_position(consumer_, assigned);
    std::vector<std::pair<int32_t, int64_t>> lag;
    for (int i = 0; i < assigned->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = assigned->elems[i];
      if (o_.input_topic != p.topic) continue;
      int64_t low = 0, high = 0;
      if (rd_kafka_get_watermark_offsets(consumer_, p.topic, p.partition, &low, &high) ||
          high < 0) {
        continue;
      }
      const int64_t position = p.offset >= 0 ? p.offset : low;
      lag.emplace_back(p.partition, std::max<int64_t>(0, high - position));
    }
    if (w_->catching_up_.load() && assigned_) CheckCaughtUp(assigned);
    rd_kafka_topic_partition_list_destroy(assigned);
    std::lock_guard lock(w_->lag_mu_);
    w_->lag_ = std::move(lag);
  }

  // Partitions of topics only stream feature views follow start where their
  // state ends (the topic's beginning when there is none, to build it); the
  // input topic starts at the group's offsets, and events its state already
  // holds are skipped by offset.
  void StartFromState(rd_kafka_topic_partition_list_t* parts) {
    for (int i = 0; i < parts->cnt; ++i) {
      rd_kafka_topic_partition_t& p = parts->elems[i];
      if (!feed_->follows(p.topic)) continue;
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(consumer_, p.topic, p.partition, &low, &high, 5000) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        feed_->CheckOffsets(p.topic, p.partition, high);
      }
      if (o_.input_topic == p.topic) continue;
      auto next = feed_->NextOffset(p.topic, p.partition);
      if (!next.ok()) {
        Log().warn("stream feature state of {} [{}]: {}; starting at the group's offset",
                   p.topic, p.partition, next.status().message());
        continue;
      }
      p.offset = *next ? **next : RD_KAFKA_OFFSET_BEGINNING;
      if (*next) start_offsets_[StreamKey(TopicIndexOf(p.topic), p.partition)] = **next;
    }
  }

  int TopicIndexOf(const char* name) const {
    for (size_t i = 0; i < topics_.size(); ++i) {
      if (topics_[i] == name) return static_cast<int>(i);
    }
    return 0;
  }

  // Caught up once every assigned partition stream feature views follow has
  // been read to the high watermark seen (until the next assignment).
  // A partition nothing was consumed from yet has no position: it starts at
  // its committed offset (or where StartFromState put it).
  void CheckCaughtUp(rd_kafka_topic_partition_list_t* assigned) {
    rd_kafka_topic_partition_list_t* committed = nullptr;
    for (int i = 0; i < assigned->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = assigned->elems[i];
      if (!feed_->follows(p.topic)) continue;
      int64_t low = 0, high = 0;
      if (rd_kafka_get_watermark_offsets(consumer_, p.topic, p.partition, &low, &high) ||
          high < 0) {
        if (committed != nullptr) rd_kafka_topic_partition_list_destroy(committed);
        return;  // not fetched yet
      }
      int64_t position = p.offset;
      if (position < 0) {
        if (committed == nullptr) {
          committed = rd_kafka_topic_partition_list_copy(assigned);
          rd_kafka_committed(consumer_, committed, 2000);
        }
        position = std::max(committed->elems[i].offset, low);
        auto start = start_offsets_.find(StreamKey(TopicIndexOf(p.topic), p.partition));
        if (start != start_offsets_.end()) position = std::max(position, start->second);
      }
      if (position < high) {
        if (committed != nullptr) rd_kafka_topic_partition_list_destroy(committed);
        return;
      }
    }
    if (committed != nullptr) rd_kafka_topic_partition_list_destroy(committed);
    Log().info("stream feature views caught up with their topics");
    w_->catching_up_.store(false);
  }

  // Pauses consumption while too many outputs are unacknowledged.
  void ApplyBackpressure() {
    const size_t in_flight = tracker_.in_flight();
    if (!paused_ && in_flight >= o_.max_in_flight) {
      SetPaused(true);
    } else if (paused_ && in_flight <= o_.max_in_flight / 2) {
      SetPaused(false);
    }
    if (paused_) rd_kafka_poll(producer_, 10);
  }

  void SetPaused(bool pause) {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(consumer_, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    pause ? rd_kafka_pause_partitions(consumer_, assigned)
          : rd_kafka_resume_partitions(consumer_, assigned);
    rd_kafka_topic_partition_list_destroy(assigned);
    paused_ = pause;
    if (pause) w_->stats_.pauses.fetch_add(1, std::memory_order_relaxed);
    Log().info("{} consumption ({} outputs in flight)", pause ? "paused" : "resumed",
                 tracker_.in_flight());
  }

  static constexpr uintptr_t kDeadLetterBit = uintptr_t{1} << 63;

  StreamWorker* w_;
  const StreamOptions& o_;
  const pipeline::Scorer& scorer_;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  OffsetTracker tracker_;
  uint8_t generation_ = 0;  // 7 bits: the top cookie bit marks dead letters
  bool paused_ = false;
  bool assigned_ = false;  // the group has assigned this worker its partitions at least once
  std::map<int32_t, int64_t> start_offsets_;  // by StreamKey: where StartFromState put a partition
  struct FeatureTopic {
    int topic;  // index into topics_
    const features::FeatureView* view;
    std::vector<std::string> columns;
    features::ViewIngestor ingestor;
  };
  std::vector<std::string> topics_;  // [0] the input topic, then feature topics
  std::vector<FeatureTopic> feature_topics_;
  std::vector<features::RawValue> cells_;
  simdjson::dom::parser dom_parser_;
  pipeline::ScoreScratch scratch_;
  std::string out_, peek_buf_;
  std::vector<Event> events_batch_;
  std::vector<size_t> group_;
  std::vector<pipeline::Payload> bodies_;
  std::vector<pipeline::EventResult> results_;
  std::vector<pipeline::EventResult> event_results_;  // per events_batch_ entry
  std::vector<int64_t> read_at_;
  std::unique_ptr<AggregationFeed> feed_;  // null without stream feature views
  std::vector<std::pair<int32_t, int64_t>> aggregate_done_;  // staged aggregation-only messages
  observability::Registry* metrics_;
  od::parser peek_parser_;
  observability::Counter* events_;
  observability::Counter* predictions_;
  std::vector<std::pair<const char*, observability::Counter*>> dead_letters_;
  observability::Histogram* commit_latency_;
  observability::Counter* retries_score_;          // rtml_retries_total{op="stream_score"}
  observability::Counter* retries_feature_write_;  // op="feature_write"
  observability::Counter* retries_produce_;        // op="produce"
  uint64_t backoff_seed_ = static_cast<uint64_t>(::getpid()) << 32 ^
                           static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  observability::Histogram* queue_latency_;
};

Result<std::unique_ptr<StreamWorker>> StreamWorker::Create(StreamOptions options,
                                                           const pipeline::Scorer& scorer,
                                                           observability::Registry* metrics) {
  if (options.brokers.empty()) return FailedPrecondition("kafka.brokers is empty");
  auto w = std::unique_ptr<StreamWorker>(new StreamWorker(std::move(options)));
  w->impl_ = std::make_unique<Impl>(w.get(), scorer, metrics);
  RETURN_IF_ERROR(w->impl_->Init());
  return w;
}

StreamWorker::StreamWorker(StreamOptions options) : options_(std::move(options)) {}
StreamWorker::~StreamWorker() = default;

Status StreamWorker::Run() { return impl_->Run(); }

std::vector<std::pair<int32_t, int64_t>> StreamWorker::Lag() const {
  std::lock_guard lock(lag_mu_);
  return lag_;
}

}  // namespace rtml::kafka
