// StreamAggregator: keeps one stream feature view's entity states up to date
// from its topic's events, exactly once over at-least-once delivery.
//
// Apply() takes the events of one batch in arrival order with their
// partition and offset, loads the states of the entities they touch (one
// store read), adds the events (AddEvent, the same step the offline replay
// takes), and writes the states together with each partition's next offset
// in one atomic StoreSession::WriteState. An event at an offset below its
// partition's stored next offset was applied before (a re-delivery after a
// crash or rebalance) and is skipped, so re-delivery never counts an event
// twice, and a crash between batches loses nothing the topic still holds.
// If the write fails nothing is applied; the caller retries the same batch.
// The worker owning a partition is its state's only writer, so the topic must
// be keyed by the entity (the worker checks and says when it is not).
// Thread-safety: one thread (the stream worker's).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "features/definitions.h"
#include "features/online_store.h"
#include "features/stream_view.h"

namespace rtml::features {

// Adds one event to a state: it is seen (counted) whether or not it is late;
// returns false when it is late and left out.
bool AddEvent(StreamState* state, const StreamEvent& event);

class StreamAggregator {
 public:
  struct Item {
    int32_t partition = 0;
    int64_t offset = 0;
    const StreamEvent* event = nullptr;
  };
  struct Counts {
    size_t applied = 0;
    size_t late = 0;        // seen but older than allowed_lateness: left out
    size_t duplicates = 0;  // at offsets already applied: skipped
    // Stored states that could not be read (written for the view's earlier
    // aggregations): those entities start over from this batch.
    size_t resets = 0;
    std::string reset_reason;
  };

  StreamAggregator(const FeatureView& view, std::string topic)
      : view_(&view), agg_(view.aggregation.get()), topic_(std::move(topic)) {}

  Status Apply(StoreSession& session, std::span<const Item> items, Counts* counts);
  // The partition's stored next offset (nullopt: no state yet), cached until
  // Reset().
  Result<std::optional<int64_t>> NextOffset(StoreSession& session, int32_t partition);
  // Treats the partition as having no stored offset (its topic was
  // recreated: the stored one belongs to the topic's previous incarnation).
  void ForgetOffset(int32_t partition) { next_[partition] = -1; }
  // Forgets cached offsets (partitions may have moved to another replica).
  void Reset() {
    next_.clear();
    cache_.clear();
  }
  const FeatureView& view() const { return *view_; }
  const std::string& topic() const { return topic_; }

 private:
  const FeatureView* view_;
  const StreamAggregation* agg_;
  std::string topic_;
  std::unordered_map<int32_t, int64_t> next_;  // -1: none stored
  // The states of entities this worker wrote (its partitions'), so a batch
  // reads from the store only the entities it has not seen yet. Bounded:
  // cleared when it holds kMaxCached; dropped on Reset() and on a failed
  // write (the store is then the truth again).
  static constexpr size_t kMaxCached = 200000;
  std::unordered_map<std::string, StreamState> cache_;
  // Reused per batch.
  std::vector<const Item*> kept_;
  std::vector<std::string> keys_;     // entities of the batch, first-seen order
  std::vector<std::string> missing_;  // not cached: read from the store
  std::vector<StoredRecord> records_;
};

}  // namespace rtml::features
