#include "kafka/offset_tracker.h"

namespace rtml::kafka {

void OffsetTracker::Track(int32_t partition, int64_t offset) {
  if (partitions_[partition].pending.emplace(offset, false).second) ++in_flight_;
}

void OffsetTracker::Done(int32_t partition, int64_t offset) {
  auto p = partitions_.find(partition);
  if (p == partitions_.end()) return;  // revoked meanwhile
  auto it = p->second.pending.find(offset);
  if (it == p->second.pending.end() || it->second) return;
  it->second = true;
  --in_flight_;
  auto& pending = p->second.pending;
  while (!pending.empty() && pending.begin()->second) {
    p->second.committable = pending.begin()->first + 1;
    pending.erase(pending.begin());
  }
}

std::vector<std::pair<int32_t, int64_t>> OffsetTracker::TakeCommittable() {
  std::vector<std::pair<int32_t, int64_t>> out;
  for (auto& [id, p] : partitions_) {
    if (p.committable > p.reported) {
      out.emplace_back(id, p.committable);
      p.reported = p.committable;
    }
  }
  return out;
}

std::optional<int64_t> OffsetTracker::Committable(int32_t partition) const {
  auto p = partitions_.find(partition);
  if (p == partitions_.end() || p->second.committable < 0) return std::nullopt;
  return p->second.committable;
}

void OffsetTracker::Drop(int32_t partition) {
  auto p = partitions_.find(partition);
  if (p == partitions_.end()) return;
  for (const auto& [offset, done] : p->second.pending) in_flight_ -= done ? 0 : 1;
  partitions_.erase(p);
}

void OffsetTracker::Clear() {
  partitions_.clear();
  in_flight_ = 0;
}

}  // namespace rtml::kafka
