// Windowed aggregations over one entity's events, by event time, kept as
// rings of tile partials: the state behind stream feature views (issue 11).
// The same code serves online (the stream worker adds events, /predict
// reads) and offline (a point-in-time replay of the same events), so both
// give the same values by construction.
//
// Semantics (times are µs since the epoch, UTC):
// - A window of size W uses tiles of size T (the largest of 1s, 5s, 10s, 30s,
//   1m, 2m, 5m, 10m, 20m, 30m, 1h, 2h, 6h, 12h, 1d that is at most W/60,
//   unless given): 60 to 72 tiles for the usual windows. Tiles are aligned to the
//   epoch; tile k covers [k*T, (k+1)*T).
// - A value read at time t covers the events added before the read whose
//   tile k satisfies floor((t - W) / T) <= k <= floor(t / T): exact at the
//   recent edge (an event is added after its own prediction is read), at
//   tile granularity at the old edge (up to T more than W).
// - A tile size's ring keeps S tiles, the most (window + allowed_lateness) /
//   tile + 2 of the windows on that tile size: a read
//   never sees tiles before floor(latest / T) - S + 1. That cuts nothing for
//   reads from allowed_lateness before the latest event on; only a late
//   event's own read (at its older time) sees a shorter window.
// - An event is late when its time is more than allowed_lateness before the
//   latest event time seen for the entity, or older than the state keeps: it
//   is counted (Add returns false) and left out, the same way in every replay.
// - Sums are kept in fixed point (10^-6 units; squares in 10^-12 units, in
//   128 bits): exact and independent of arrival order, so a replay of the
//   same events gives bit-identical values. mean = sum / count; stddev is the
//   population standard deviation from the exact sums.
// - last is over all time: the value of the latest event (by event time; a
//   tie goes to the later arrival); on a timestamp column (`seconds_since`)
//   it reads as the seconds from that event to t. last_n keeps the n latest.
// - count_distinct is a HyperLogLog (2^10 registers, about 3% error) per tile.
// Thread-safety: an EntityWindows is used by one thread at a time; a
// WindowLayout is immutable and shared.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rtml::features {

enum class AggFunction {
  kCount, kSum, kMean, kMin, kMax, kStddev, kLast, kLastN, kCountDistinct, kSecondsSince
};
Result<AggFunction> ParseAggFunction(std::string_view name);
std::string_view AggFunctionName(AggFunction f);

// "90s", "10m", "1h", "24h", "30d" (a positive whole number and a unit).
Result<int64_t> ParseDuration(std::string_view text);
// The default tile for a window: the largest rung <= window / 60 (1s at least).
int64_t DefaultTileUs(int64_t window_us);

struct AggregationSpec {
  int column = 0;          // index into the layout's columns
  AggFunction function = AggFunction::kCount;
  int64_t window_us = 0;   // 0 for last, last_n and seconds_since (all time)
  int64_t tile_us = 0;     // 0: DefaultTileUs(window_us)
  int n = 0;               // for last_n
};

// How a view's aggregations map onto tile rings: built once per view.
class WindowLayout {
 public:
  static Result<std::shared_ptr<const WindowLayout>> Create(int n_columns,
                                                            std::vector<AggregationSpec> specs,
                                                            int64_t allowed_lateness_us);
  // Outputs per Read(): one per spec, except last_n, which gives n.
  size_t n_outputs() const { return n_outputs_; }
  const std::vector<AggregationSpec>& specs() const { return specs_; }

 private:
  friend class EntityWindows;
  // What a level keeps of a column's partial (bits; 0: the column is not
  // aggregated at this level).
  enum Field : uint8_t { kCount = 1, kSum = 2, kSumSq = 4, kMinMax = 8, kHll = 16 };
  struct Level {
    int64_t tile_us = 0;
    size_t slots = 0;              // ring capacity
    std::vector<uint8_t> fields;   // per column
  };
  std::vector<AggregationSpec> specs_;
  std::vector<int> spec_level_;       // level per spec (-1: all-time)
  std::vector<Level> levels_;
  int n_columns_ = 0;
  size_t n_outputs_ = 0;
  int max_last_n_ = 0;                // per column ring of the latest values
  int64_t allowed_lateness_us_ = 0;
  int64_t horizon_us_ = 0;            // the oldest event time the rings still hold, behind the latest
};

class EntityWindows {
 public:
  explicit EntityWindows(std::shared_ptr<const WindowLayout> layout);

  // Adds one event; `values` has one value per column (NaN: absent, not
  // counted for that column). Returns false, adding nothing, when it is late.
  bool Add(int64_t ts_us, std::span<const double> values);
  // Every output at time t, in spec order (last_n expands to n values, the
  // latest first); NaN where there is nothing (no event in the window).
  void Read(int64_t t_us, std::span<double> out) const;
  int64_t latest_us() const { return latest_us_; }
  bool empty() const { return latest_us_ == INT64_MIN; }

  // The state as bytes (only the tiles a window can still reach), to keep
  // in a store; Parse() rebuilds it for the same layout. Parse fails on bytes
  // it did not write, or written for another layout.
  std::string Serialize() const;
  static Result<EntityWindows> Parse(std::shared_ptr<const WindowLayout> layout,
                                     std::string_view bytes);

 private:
  struct Partial {  // one column's aggregate over one tile
    uint64_t count = 0;
    int64_t sum_micros = 0;
    __int128 sum_sq = 0;  // in 10^-12 units
    double min = 0, max = 0;
    std::unique_ptr<std::array<uint8_t, 1024>> hll;  // only for count_distinct columns
  };
  struct Slot {
    int64_t tile = INT64_MIN;  // the tile index it holds; another value: empty
    std::vector<Partial> columns;
  };
  struct Recent {  // the latest values of one column, for last and last_n
    std::vector<std::pair<int64_t, double>> items;  // (ts, value), latest first
  };

  void AddToLevel(size_t level, int64_t ts_us, std::span<const double> values);
  Partial Merge(size_t level, int column, int64_t from_tile, int64_t to_tile) const;

  std::shared_ptr<const WindowLayout> layout_;
  std::vector<std::vector<Slot>> rings_;  // per level
  std::vector<Recent> recent_;            // per column
  int64_t latest_us_ = INT64_MIN;
};

}  // namespace rtml::features
