// StreamWorker: scores a Kafka topic of feature events and publishes the
// predictions, as one member of a consumer group.
//
// An event's value is the same JSON as one HTTP predict body ({"features":
// {...}} or a flat row, with entity keys, optional "id", "event_time" and
// "model"), scored through the same Scorer as HTTP. Each prediction goes to
// the output topic keyed like the input and carries the input's key, id,
// partition and offset, the model and version, the prediction, the defaulted
// and missing inputs, the event time and the scoring latency. An event that
// cannot be scored goes to the dead-letter topic with its original bytes and
// Kafka Connect's __connect.errors.* headers naming the error and its source.
//
// Exactly-once mode (options.exactly_once) instead makes each poll one
// transaction: the outputs and the consumed offsets commit together or not at
// all; on an abort the worker rewinds to the last committed offsets. A
// replica restarted with the same transactional_id fences its predecessor.
//
// By default delivery is at-least-once: an input offset is committed only once its
// prediction or dead letter is acknowledged by the broker (OffsetTracker);
// a crash re-delivers, never loses. On a rebalance the worker waits for its
// in-flight outputs, commits what is done, and lets the partitions go. When
// outputs pile up (the producer queue, or max_in_flight), it pauses its
// partitions instead of buffering without limit, and resumes.
// Feature views whose source names a kafka_topic are consumed by the same
// group: each record (a JSON object with the view's join keys, timestamp
// field and features) is written to the online store, last-writer-wins; a bad
// record goes to the dead-letter topic like a bad event.
// Stream feature views (features/stream_view.h) are kept by the same worker
// (kafka/aggregation_feed.h): events of their topics are added to their
// entities' windows, state and partition offsets written atomically; on the
// input topic each event is scored before it is added.
// Thread-safety: Run() on one thread; Stop() and stats from any thread.
// Ownership: borrows the Scorer and the metrics registry.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

#include "common/status.h"
#include "features/feature_store.h"
#include "observability/metrics.h"
#include "pipeline/scorer.h"

namespace rtml::kafka {

struct StreamOptions {
  std::string brokers;  // bootstrap.servers
  std::string group_id = "rtml";
  std::string input_topic = "ml-features";
  std::string output_topic = "predictions";
  std::string dead_letter_topic;  // empty: <input_topic>-dlq
  int max_batch = 500;            // messages taken per poll
  size_t max_in_flight = 20000;   // unacknowledged outputs before pausing
  std::map<std::string, std::string> properties;  // passed to librdkafka (security, tuning)
  // With a store, feature views whose source names a kafka_topic are kept up
  // to date from that topic (last-writer-wins by event time).
  const features::FeatureStore* feature_store = nullptr;
  // Exactly-once: each poll's outputs and input offsets are one Kafka
  // transaction (read-process-write); downstream readers use read_committed.
  bool exactly_once = false;
  std::string transactional_id;       // stable per replica; default <group_id>-<hostname>
  int transaction_timeout_ms = 10000;  // how long an abandoned transaction blocks readers
};

struct StreamStats {
  std::atomic<uint64_t> events_in{0};
  std::atomic<uint64_t> predictions_out{0};
  std::atomic<uint64_t> dead_letters{0};
  std::atomic<uint64_t> feature_updates{0};  // feature rows written from streams
  std::atomic<uint64_t> transactions{0};     // committed (exactly-once mode)
  std::atomic<uint64_t> aborts{0};
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> pauses{0};
};

class StreamWorker {
 public:
  static Result<std::unique_ptr<StreamWorker>> Create(StreamOptions options,
                                                      const pipeline::Scorer& scorer,
                                                      observability::Registry* metrics);
  ~StreamWorker();

  // Consumes, scores and produces until Stop(); then commits what is done and
  // leaves the group. Returns an error only for unrecoverable client failures.
  Status Run();
  void Stop() { stop_.store(true); }
  const StreamStats& stats() const { return stats_; }
  // Consumer lag per assigned input partition (high watermark - position),
  // refreshed about once a second.
  std::vector<std::pair<int32_t, int64_t>> Lag() const;
  const StreamOptions& options() const { return options_; }
  // True from an assignment until the stream feature views' partitions have
  // been read to their end (their windows are behind until then: /readyz).
  bool catching_up() const { return catching_up_.load(); }

 private:
  class Impl;
  explicit StreamWorker(StreamOptions options);

  StreamOptions options_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> catching_up_{false};
  StreamStats stats_;
  mutable std::mutex lag_mu_;
  std::vector<std::pair<int32_t, int64_t>> lag_;  // GUARDED_BY(lag_mu_)
};

}  // namespace rtml::kafka
