#include "kafka/aggregation_feed.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "resilience/retry.h"

namespace rtml::kafka {

std::unique_ptr<AggregationFeed> AggregationFeed::Create(const features::FeatureStore* store,
                                                         const std::string& input_topic,
                                                         observability::Registry* metrics) {
  if (store == nullptr) return nullptr;
  auto feed = std::unique_ptr<AggregationFeed>(new AggregationFeed(store));
  const features::Definitions& defs = store->definitions();
  for (const features::FeatureView& v : defs.views()) {
    if (v.aggregation == nullptr || !v.online) continue;
    const std::string topic = v.source.kafka_topic.empty() ? input_topic : v.source.kafka_topic;
    auto view = std::unique_ptr<View>(new View{topic, features::StreamEventReader(defs, v),
                                               features::StreamAggregator(v, topic)});
    auto counter = [&](const char* outcome) {
      return metrics->AddCounter("rtml_aggregation_events_total",
                                 "Events of stream feature views, by outcome (applied; late: "
                                 "older than allowed_lateness, left out; duplicate: a "
                                 "re-delivered offset, skipped).",
                                 {{"view", v.name}, {"outcome", outcome}});
    };
    view->applied = counter("applied");
    view->late = counter("late");
    view->duplicates = counter("duplicate");
    view->unkeyed = metrics->AddCounter(
        "rtml_aggregation_unkeyed_events_total",
        "Events whose Kafka key is not their entity key: with several replicas, their "
        "entity's state is updated by more than one (key the topic by the entity).",
        {{"view", v.name}});
    view->resets = metrics->AddCounter(
        "rtml_aggregation_state_resets_total",
        "Entities whose stored windows could not be read (written for the view's earlier "
        "aggregations) and started over.",
        {{"view", v.name}});
    spdlog::info("stream feature view {} aggregates topic {}", v.name, topic);
    feed->views_.push_back(std::move(view));
  }
  if (feed->views_.empty()) return nullptr;
  feed->write_latency_ = metrics->AddHistogram(
      "rtml_aggregation_write_duration_seconds",
      "Time of one batch's state write (entity states and partition offsets, atomically).", {},
      observability::LatencyBucketsSeconds());
  feed->retries_ =
      metrics->AddCounter("rtml_retries_total", resilience::kRetriesHelp, {{"op", "window_write"}});
  return feed;
}

bool AggregationFeed::follows(std::string_view topic) const {
  for (const auto& v : views_) {
    if (v->topic == topic) return true;
  }
  return false;
}

std::vector<std::string> AggregationFeed::other_topics() const {
  std::vector<std::string> out;
  for (const auto& v : views_) {
    if (std::find(out.begin(), out.end(), v->topic) == out.end()) out.push_back(v->topic);
  }
  return out;
}

Status AggregationFeed::Parse(std::string_view topic, std::string_view key,
                              std::string_view payload, int64_t* read_at_us) {
  parsed_topic_ = {};
  simdjson::dom::element doc;
  if (parser_.parse(payload.data(), payload.size()).get(doc) != simdjson::SUCCESS) {
    return InvalidArgument("an event must be a JSON object", "malformed_json");
  }
  bool first = true;
  for (const auto& v : views_) {
    v->parsed_ok = false;
    if (v->topic != topic) continue;
    RETURN_IF_ERROR(v->reader.FromJson(doc, &v->parsed));
    v->parsed_ok = true;
    if (first) *read_at_us = v->parsed.ts_us;
    first = false;
    if (key != v->parsed.entity_key) {
      v->unkeyed->Inc();
      if (v->unkeyed_seen++ % 100000 == 0) {
        spdlog::warn(
            "topic {} is not keyed by {}'s entity (message key '{}', entity '{}'): with more "
            "than one replica, an entity's windows would be split between them; produce the "
            "events with the entity key as the message key",
            topic, v->reader.view().name, key, v->parsed.entity_key);
      }
    }
  }
  parsed_topic_ = topic;
  return Status::Ok();
}

bool AggregationFeed::Conflicts() const {
  for (const auto& v : views_) {
    if (v->parsed_ok && v->staged_keys.count(v->parsed.entity_key) > 0) return true;
  }
  return false;
}

void AggregationFeed::Stage(int32_t partition, int64_t offset) {
  for (const auto& v : views_) {
    if (!v->parsed_ok) continue;
    v->parsed_ok = false;
    v->staged_keys.insert(v->parsed.entity_key);
    v->events.push_back(std::move(v->parsed));
    v->items.push_back({partition, offset, nullptr});
    ++n_staged_;
  }
}

Status AggregationFeed::Flush(const std::function<bool()>& stop,
                              const std::function<void(int)>& idle) {
  if (n_staged_ == 0) return Status::Ok();
  if (session_ == nullptr) session_ = store_->online().NewSession();
  resilience::Backoff backoff(resilience::kStreamRetry, static_cast<uint64_t>(
                                  std::chrono::steady_clock::now().time_since_epoch().count()));
  for (const auto& v : views_) {
    if (v->items.empty()) continue;
    for (size_t i = 0; i < v->items.size(); ++i) v->items[i].event = &v->events[i];
    while (true) {
      features::StreamAggregator::Counts counts;
      const auto t0 = std::chrono::steady_clock::now();
      Status s = v->aggregator.Apply(*session_, v->items, &counts);
      write_latency_->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (s.ok()) {
        v->applied->Inc(counts.applied);
        v->late->Inc(counts.late);
        v->duplicates->Inc(counts.duplicates);
        if (counts.resets > 0) {
          if (v->resets->value() == 0) {
            spdlog::error(
                "stream feature view {}: stored windows cannot be read ({}); those entities "
                "start over. If the view's aggregations changed, rebuild its state: delete its "
                "records and offsets and replay the topic (docs/operations.md)",
                v->reader.view().name, counts.reset_reason);
          }
          v->resets->Inc(counts.resets);
        }
        break;
      }
      if (stop()) return s;
      const auto delay = backoff.Next();
      spdlog::warn("stream feature view {}: {}; retrying in {} ms", v->reader.view().name,
                   s.message(), delay.count());
      retries_->Inc();
      const auto until = std::chrono::steady_clock::now() + delay;
      while (std::chrono::steady_clock::now() < until && !stop()) idle(10);
    }
    v->items.clear();
    v->events.clear();
    v->staged_keys.clear();
  }
  n_staged_ = 0;
  return Status::Ok();
}

void AggregationFeed::CheckOffsets(const std::string& topic, int32_t partition,
                                   int64_t high_watermark) {
  if (session_ == nullptr) session_ = store_->online().NewSession();
  for (const auto& v : views_) {
    if (v->topic != topic) continue;
    auto next = v->aggregator.NextOffset(*session_, partition);
    if (!next.ok() || !*next || **next <= high_watermark) continue;
    spdlog::warn(
        "stream feature view {}: its state has {} [{}] up to offset {}, but the partition ends "
        "at {}: the topic was recreated (or is another cluster's); adding its events from the "
        "start of the partition",
        v->reader.view().name, topic, partition, **next, high_watermark);
    v->aggregator.ForgetOffset(partition);
  }
}

void AggregationFeed::Reset() {
  for (const auto& v : views_) v->aggregator.Reset();
}

Result<std::optional<int64_t>> AggregationFeed::NextOffset(std::string_view topic,
                                                           int32_t partition) {
  if (session_ == nullptr) session_ = store_->online().NewSession();
  std::optional<int64_t> lowest;
  bool any = false;
  for (const auto& v : views_) {
    if (v->topic != topic) continue;
    ASSIGN_OR_RETURN(std::optional<int64_t> next, v->aggregator.NextOffset(*session_, partition));
    if (!next) return std::optional<int64_t>();
    lowest = any ? std::min(*lowest, *next) : *next;
    any = true;
  }
  return lowest;
}

}  // namespace rtml::kafka
