// AggregationFeed: the stream feature views one stream worker keeps up to
// date (features/stream_aggregator.h does the state; this is the worker's
// side): which topics they follow, parsing each message for every view on
// its topic, staging the events of a batch, and applying them in one atomic
// state write per view, waiting out a store outage.
//
// Views on the scored topic (an empty source.kafka_topic, or the input
// topic) see each event after it is scored: the worker asks Conflicts()
// before staging an event, and when its entity is already staged it scores
// and flushes what is staged first, so every event is scored on the state
// of exactly the events before it (as the offline replay computes).
//
// The topic must be keyed by the entity (each replica updates the entities
// of its partitions): a message whose key is not its entity key is counted
// in rtml_aggregation_unkeyed_events_total and logged.
// Thread-safety: the stream worker's thread only.
#pragma once

#include <simdjson.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "features/feature_store.h"
#include "features/stream_aggregator.h"
#include "observability/metrics.h"

namespace rtml::kafka {

class AggregationFeed {
 public:
  // Null when the store defines no stream feature views.
  static std::unique_ptr<AggregationFeed> Create(const features::FeatureStore* store,
                                                 const std::string& input_topic,
                                                 observability::Registry* metrics);

  bool follows(std::string_view topic) const;
  // Topics other than the input topic that views follow.
  std::vector<std::string> other_topics() const;

  // Parses a message for every view on `topic`; a bad event's Status names
  // the field (the message goes to the dead-letter topic, unscored). On
  // success *read_at_us is its event time (for the first view on the topic).
  Status Parse(std::string_view topic, std::string_view key, std::string_view payload,
               int64_t* read_at_us);
  // Whether the parsed message's entity is already staged (for its topic).
  bool Conflicts() const;
  // Stages the parsed message.
  void Stage(int32_t partition, int64_t offset);
  bool staged() const { return n_staged_ > 0; }

  // Applies everything staged, each view in one state write; retries while
  // the store fails, polling `idle` between tries, until it succeeds or
  // `stop()` says so (then returns the error; nothing is applied).
  Status Flush(const std::function<bool()>& stop, const std::function<void(int)>& idle);
  // At an assignment, with the partition's high watermark: a stored next
  // offset beyond it belongs to an earlier incarnation of the topic (deleted
  // and recreated, or another cluster), so it is dropped (and said) instead
  // of skipping every new event as already applied.
  void CheckOffsets(const std::string& topic, int32_t partition, int64_t high_watermark);
  // After a rebalance: stored offsets are read again.
  void Reset();
  // The stored next offset of a partition for views on `topic` (the lowest
  // over them; nullopt when one has none).
  Result<std::optional<int64_t>> NextOffset(std::string_view topic, int32_t partition);

 private:
  struct View {
    std::string topic;
    features::StreamEventReader reader;
    features::StreamAggregator aggregator;
    std::vector<features::StreamEvent> events;  // staged
    std::vector<features::StreamAggregator::Item> items;
    std::unordered_set<std::string> staged_keys;
    features::StreamEvent parsed;
    bool parsed_ok = false;
    observability::Counter* applied;
    observability::Counter* late;
    observability::Counter* duplicates;
    observability::Counter* unkeyed;
    observability::Counter* resets;
    uint64_t unkeyed_seen = 0;
  };
  AggregationFeed(const features::FeatureStore* store) : store_(store) {}

  const features::FeatureStore* store_;
  std::vector<std::unique_ptr<View>> views_;
  std::unique_ptr<features::StoreSession> session_;
  simdjson::dom::parser parser_;
  std::string padded_;
  std::string_view parsed_topic_;
  size_t n_staged_ = 0;
  observability::Histogram* write_latency_ = nullptr;
  observability::Counter* retries_ = nullptr;  // rtml_retries_total{op="window_write"}
};

}  // namespace rtml::kafka
