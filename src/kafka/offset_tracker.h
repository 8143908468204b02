// OffsetTracker: which input offsets may be committed under at-least-once.
//
// Every consumed message is Track()ed; it is Done() once its prediction or
// dead letter is acknowledged by the broker. A partition's committable offset
// is one past the longest done prefix: a message still in flight holds back
// everything after it, so a crash re-delivers and never skips.
// Policy only, no Kafka calls: unit-tested without a broker.
// Thread-safety: not thread-safe; the stream worker's thread owns it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace rtml::kafka {

class OffsetTracker {
 public:
  void Track(int32_t partition, int64_t offset);
  void Done(int32_t partition, int64_t offset);
  // Partitions whose committable offset moved since the last call, with it.
  std::vector<std::pair<int32_t, int64_t>> TakeCommittable();
  // The committable offset of one partition, if any message completed.
  std::optional<int64_t> Committable(int32_t partition) const;
  // Forgets a partition (revoked): its late acknowledgements are ignored.
  void Drop(int32_t partition);
  void Clear();
  size_t in_flight() const { return in_flight_; }

 private:
  struct Partition {
    std::map<int64_t, bool> pending;  // offset -> done, in offset order
    int64_t committable = -1;         // next offset to consume after the done prefix
    int64_t reported = -1;            // last value TakeCommittable() returned
  };
  std::map<int32_t, Partition> partitions_;
  size_t in_flight_ = 0;
};

}  // namespace rtml::kafka
