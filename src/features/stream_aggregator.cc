#include "features/stream_aggregator.h"

#include <algorithm>
#include <map>
#include <unordered_set>

namespace rtml::features {

bool AddEvent(StreamState* state, const StreamEvent& event) {
  ++state->seen;
  return state->windows.Add(event.ts_us, event.values);
}

Result<std::optional<int64_t>> StreamAggregator::NextOffset(StoreSession& session,
                                                            int32_t partition) {
  auto it = next_.find(partition);
  if (it == next_.end()) {
    ASSIGN_OR_RETURN(std::optional<std::string> stored,
                     session.GetMeta(OffsetMetaKey(view_->name, topic_, partition)));
    const int64_t next = stored ? std::strtoll(stored->c_str(), nullptr, 10) : -1;
    it = next_.emplace(partition, next).first;
  }
  if (it->second < 0) return std::optional<int64_t>();
  return std::optional<int64_t>(it->second);
}

Status StreamAggregator::Apply(StoreSession& session, std::span<const Item> items,
                               Counts* counts) {
  kept_.clear();
  std::map<int32_t, int64_t> next;  // per partition touched: the offset after this batch
  size_t duplicates = 0;
  for (const Item& item : items) {
    ASSIGN_OR_RETURN(std::optional<int64_t> stored, NextOffset(session, item.partition));
    if (stored && item.offset < *stored) {
      ++duplicates;
      continue;
    }
    kept_.push_back(&item);
    int64_t& n = next[item.partition];
    n = std::max(n, item.offset + 1);
  }
  if (kept_.empty()) {
    counts->duplicates += duplicates;
    return Status::Ok();
  }
  keys_.clear();
  missing_.clear();
  if (cache_.size() > kMaxCached) cache_.clear();
  std::unordered_set<std::string_view> seen;
  for (const Item* item : kept_) {
    const std::string& key = item->event->entity_key;
    if (!seen.insert(key).second) continue;
    keys_.push_back(key);
    if (cache_.count(key) == 0) missing_.push_back(key);
  }
  if (!missing_.empty()) {
    const ReadRequest request{&agg_->storage, missing_, &records_};
    RETURN_IF_ERROR(session.Read(std::span<const ReadRequest>(&request, 1)));
    for (size_t i = 0; i < missing_.size(); ++i) {
      if (!records_[i].found) {
        cache_.emplace(missing_[i], EmptyState(*agg_));
        continue;
      }
      auto decoded = DecodeState(*agg_, records_[i]);
      if (!decoded.ok()) {  // written for other aggregations: this entity starts over
        ++counts->resets;
        counts->reset_reason = decoded.status().message();
        cache_.emplace(missing_[i], EmptyState(*agg_));
        continue;
      }
      cache_.emplace(missing_[i], std::move(decoded).value());
    }
  }
  size_t late = 0;
  for (const Item* item : kept_) {
    late += !AddEvent(&cache_.at(item->event->entity_key), *item->event);
  }
  std::vector<WriteRecord> writes(keys_.size());
  for (size_t i = 0; i < keys_.size(); ++i) {
    const StreamState& state = cache_.at(keys_[i]);
    writes[i].entity_key = keys_[i];
    writes[i].event_ts_us = state.windows.latest_us();
    writes[i].values = EncodeState(state);
  }
  std::vector<std::pair<std::string, std::string>> meta;
  for (auto [partition, offset] : next) {
    meta.emplace_back(OffsetMetaKey(view_->name, topic_, partition), std::to_string(offset));
  }
  Status written = session.WriteState(agg_->storage, writes, meta);
  if (!written.ok()) {
    for (const std::string& key : keys_) cache_.erase(key);  // they hold unwritten events
    return written;
  }
  for (auto [partition, offset] : next) next_[partition] = offset;
  counts->duplicates += duplicates;
  counts->late += late;
  counts->applied += kept_.size() - late;
  return Status::Ok();
}

}  // namespace rtml::features
