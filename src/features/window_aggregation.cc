#include "features/window_aggregation.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/bytes.h"

namespace rtml::features {
namespace {

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kMinute = 60 * kSecond, kHour = 60 * kMinute;
constexpr int64_t kRungs[] = {kSecond,     5 * kSecond,  10 * kSecond, 30 * kSecond,
                              kMinute,     2 * kMinute,  5 * kMinute,  10 * kMinute,
                              20 * kMinute, 30 * kMinute, kHour,       2 * kHour,
                              6 * kHour,   12 * kHour,   24 * kHour};
constexpr int kHllBits = 10;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool Windowed(AggFunction f) {
  return f != AggFunction::kLast && f != AggFunction::kLastN && f != AggFunction::kSecondsSince;
}

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void HllAdd(std::array<uint8_t, 1024>& regs, double v) {
  if (v == 0) v = 0;  // -0 and 0 are one value
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  const uint64_t h = Mix(bits);
  const size_t index = h >> (64 - kHllBits);
  const uint64_t rest = h << kHllBits;
  const uint8_t rank = rest == 0 ? 64 - kHllBits + 1 : static_cast<uint8_t>(__builtin_clzll(rest) + 1);
  regs[index] = std::max(regs[index], rank);
}

double HllEstimate(const std::array<uint8_t, 1024>& regs) {
  constexpr double m = 1 << kHllBits;
  double sum = 0;
  int zeros = 0;
  for (uint8_t r : regs) {
    sum += std::ldexp(1.0, -r);
    zeros += r == 0;
  }
  const double alpha = 0.7213 / (1 + 1.079 / m);
  const double estimate = alpha * m * m / sum;
  if (estimate <= 2.5 * m && zeros > 0) return std::round(m * std::log(m / zeros));  // small range
  return std::round(estimate);
}

}  // namespace

Result<AggFunction> ParseAggFunction(std::string_view name) {
  static constexpr std::pair<std::string_view, AggFunction> kNames[] = {
      {"count", AggFunction::kCount},   {"sum", AggFunction::kSum},
      {"mean", AggFunction::kMean},     {"min", AggFunction::kMin},
      {"max", AggFunction::kMax},       {"stddev", AggFunction::kStddev},
      {"last", AggFunction::kLast},     {"last_n", AggFunction::kLastN},
      {"count_distinct", AggFunction::kCountDistinct},
      {"seconds_since", AggFunction::kSecondsSince}};
  for (const auto& [n, f] : kNames) {
    if (n == name) return f;
  }
  return InvalidArgument("unknown aggregation function '" + std::string(name) +
                         "' (count, sum, mean, min, max, stddev, last, last_n, count_distinct, "
                         "seconds_since)");
}

std::string_view AggFunctionName(AggFunction f) {
  switch (f) {
    case AggFunction::kCount: return "count";
    case AggFunction::kSum: return "sum";
    case AggFunction::kMean: return "mean";
    case AggFunction::kMin: return "min";
    case AggFunction::kMax: return "max";
    case AggFunction::kStddev: return "stddev";
    case AggFunction::kLast: return "last";
    case AggFunction::kLastN: return "last_n";
    case AggFunction::kCountDistinct: return "count_distinct";
    case AggFunction::kSecondsSince: return "seconds_since";
  }
  return "unknown";
}

Result<int64_t> ParseDuration(std::string_view text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  const std::string_view unit(end, text.data() + text.size() - end);
  int64_t scale = 0;
  if (unit == "s") scale = kSecond;
  if (unit == "m") scale = 60 * kSecond;
  if (unit == "h") scale = 3600 * kSecond;
  if (unit == "d") scale = 86400 * kSecond;
  if (ec != std::errc() || n <= 0 || scale == 0 || n > INT64_MAX / scale) {
    return InvalidArgument("'" + std::string(text) +
                           "' is not a duration (a positive whole number and s, m, h or d: 10m, "
                           "24h, 30d)");
  }
  return n * scale;
}

int64_t DefaultTileUs(int64_t window_us) {
  int64_t tile = kRungs[0];
  for (int64_t r : kRungs) {
    if (r <= window_us / 60) tile = r;
  }
  return tile;
}

Result<std::shared_ptr<const WindowLayout>> WindowLayout::Create(
    int n_columns, std::vector<AggregationSpec> specs, int64_t allowed_lateness_us) {
  auto l = std::make_shared<WindowLayout>();
  l->n_columns_ = n_columns;
  l->allowed_lateness_us_ = allowed_lateness_us;
  for (AggregationSpec& s : specs) {
    const std::string what = std::string(AggFunctionName(s.function));
    if (s.column < 0 || s.column >= n_columns) return InvalidArgument(what + ": no such column");
    int level = -1;
    if (Windowed(s.function)) {
      if (s.window_us <= 0) return InvalidArgument(what + " needs a window");
      if (s.tile_us == 0) s.tile_us = DefaultTileUs(s.window_us);
      if (s.tile_us <= 0 || s.tile_us > s.window_us) {
        return InvalidArgument(what + ": the tile must be positive and at most the window");
      }
      auto it = std::find_if(l->levels_.begin(), l->levels_.end(),
                             [&](const Level& lv) { return lv.tile_us == s.tile_us; });
      if (it == l->levels_.end()) {
        l->levels_.push_back({s.tile_us, 0, std::vector<uint8_t>(n_columns, 0)});
        it = l->levels_.end() - 1;
      }
      // Enough tiles that a read at any time an event may still arrive for
      // (down to allowed_lateness before the latest) finds all its tiles.
      it->slots = std::max<size_t>(
          it->slots, static_cast<size_t>((s.window_us + allowed_lateness_us) / s.tile_us) + 2);
      uint8_t& fields = it->fields[s.column];
      fields |= kCount;
      switch (s.function) {
        case AggFunction::kSum: case AggFunction::kMean: fields |= kSum; break;
        case AggFunction::kStddev: fields |= kSum | kSumSq; break;
        case AggFunction::kMin: case AggFunction::kMax: fields |= kMinMax; break;
        case AggFunction::kCountDistinct: fields |= kHll; break;
        default: break;
      }
      level = static_cast<int>(it - l->levels_.begin());
      l->horizon_us_ = std::max(l->horizon_us_, s.window_us + allowed_lateness_us + s.tile_us);
    } else if (s.function == AggFunction::kLastN && (s.n < 1 || s.n > 100)) {
      return InvalidArgument("last_n needs n from 1 to 100");
    }
    l->max_last_n_ = std::max(l->max_last_n_, s.function == AggFunction::kLastN ? s.n : 1);
    l->spec_level_.push_back(level);
    l->n_outputs_ += s.function == AggFunction::kLastN ? s.n : 1;
  }
  l->specs_ = std::move(specs);
  return std::shared_ptr<const WindowLayout>(std::move(l));
}

EntityWindows::EntityWindows(std::shared_ptr<const WindowLayout> layout)
    : layout_(std::move(layout)), recent_(layout_->n_columns_) {
  for (const WindowLayout::Level& lv : layout_->levels_) rings_.emplace_back(lv.slots);
}

bool EntityWindows::Add(int64_t ts_us, std::span<const double> values) {
  if (latest_us_ != INT64_MIN && ts_us < latest_us_ - layout_->allowed_lateness_us_) return false;
  latest_us_ = std::max(latest_us_, ts_us);
  for (size_t level = 0; level < rings_.size(); ++level) AddToLevel(level, ts_us, values);
  const size_t keep = static_cast<size_t>(layout_->max_last_n_);
  for (int c = 0; c < layout_->n_columns_; ++c) {
    if (std::isnan(values[c])) continue;
    auto& items = recent_[c].items;
    // Latest first; among equal times the later arrival goes first.
    auto at = std::find_if(items.begin(), items.end(),
                           [&](const auto& item) { return item.first <= ts_us; });
    items.insert(at, {ts_us, values[c]});
    if (items.size() > keep) items.pop_back();
  }
  return true;
}

void EntityWindows::AddToLevel(size_t level, int64_t ts_us, std::span<const double> values) {
  const WindowLayout::Level& lv = layout_->levels_[level];
  const int64_t tile = FloorDiv(ts_us, lv.tile_us);
  const int64_t newest = FloorDiv(latest_us_, lv.tile_us);
  if (tile <= newest - static_cast<int64_t>(lv.slots)) return;  // no window reaches it any more
  Slot& slot = rings_[level][static_cast<size_t>(tile % static_cast<int64_t>(lv.slots))];
  if (slot.tile != tile) {  // a stale tile: reuse the slot
    slot.tile = tile;
    slot.columns.clear();
    slot.columns.resize(layout_->n_columns_);
  }
  for (int c = 0; c < layout_->n_columns_; ++c) {
    const double v = values[c];
    if (std::isnan(v) || lv.fields[c] == 0) continue;
    Partial& p = slot.columns[c];
    const int64_t micros = std::llround(v * 1e6);
    p.min = p.count == 0 ? v : std::min(p.min, v);
    p.max = p.count == 0 ? v : std::max(p.max, v);
    ++p.count;
    p.sum_micros += micros;
    p.sum_sq += static_cast<__int128>(micros) * micros;
    if (lv.fields[c] & WindowLayout::kHll) {
      if (p.hll == nullptr) p.hll = std::make_unique<std::array<uint8_t, 1024>>();
      HllAdd(*p.hll, v);
    }
  }
}

EntityWindows::Partial EntityWindows::Merge(size_t level, int column, int64_t from_tile,
                                            int64_t to_tile) const {
  const WindowLayout::Level& lv = layout_->levels_[level];
  Partial out;
  for (int64_t k = from_tile; k <= to_tile; ++k) {
    const Slot& slot = rings_[level][static_cast<size_t>(((k % static_cast<int64_t>(lv.slots)) +
                                                          static_cast<int64_t>(lv.slots)) %
                                                         static_cast<int64_t>(lv.slots))];
    if (slot.tile != k || slot.columns.empty()) continue;
    const Partial& p = slot.columns[column];
    if (p.count == 0) continue;
    out.min = out.count == 0 ? p.min : std::min(out.min, p.min);
    out.max = out.count == 0 ? p.max : std::max(out.max, p.max);
    out.count += p.count;
    out.sum_micros += p.sum_micros;
    out.sum_sq += p.sum_sq;
    if (p.hll != nullptr) {
      if (out.hll == nullptr) out.hll = std::make_unique<std::array<uint8_t, 1024>>();
      for (size_t r = 0; r < p.hll->size(); ++r) (*out.hll)[r] = std::max((*out.hll)[r], (*p.hll)[r]);
    }
  }
  return out;
}

void EntityWindows::Read(int64_t t_us, std::span<double> out) const {
  size_t o = 0;
  const auto& specs = layout_->specs_;
  for (size_t i = 0; i < specs.size(); ++i) {
    const AggregationSpec& s = specs[i];
    const auto& items = recent_[s.column].items;
    switch (s.function) {
      case AggFunction::kLast:
        out[o++] = items.empty() ? kNaN : items.front().second;
        continue;
      case AggFunction::kSecondsSince:
        out[o++] = items.empty() ? kNaN : static_cast<double>(t_us - items.front().first) / 1e6;
        continue;
      case AggFunction::kLastN:
        for (int j = 0; j < s.n; ++j) {
          out[o++] = static_cast<size_t>(j) < items.size() ? items[j].second : kNaN;
        }
        continue;
      default:
        break;
    }
    const size_t level = static_cast<size_t>(layout_->spec_level_[i]);
    const int64_t tile = layout_->levels_[level].tile_us;
    // Never older than the ring reaches back from the latest event (only a
    // read before latest - allowed_lateness, a late event's own, is cut).
    const int64_t reach = latest_us_ == INT64_MIN
                              ? INT64_MIN
                              : FloorDiv(latest_us_, tile) -
                                    static_cast<int64_t>(layout_->levels_[level].slots) + 1;
    const Partial p = Merge(level, s.column, std::max(FloorDiv(t_us - s.window_us, tile), reach),
                            FloorDiv(t_us, tile));
    const double n = static_cast<double>(p.count);
    const double mean = p.count ? static_cast<double>(p.sum_micros) / 1e6 / n : kNaN;
    switch (s.function) {
      case AggFunction::kCount: out[o++] = n; break;
      case AggFunction::kSum: out[o++] = static_cast<double>(p.sum_micros) / 1e6; break;
      case AggFunction::kMean: out[o++] = mean; break;
      case AggFunction::kMin: out[o++] = p.count ? p.min : kNaN; break;
      case AggFunction::kMax: out[o++] = p.count ? p.max : kNaN; break;
      case AggFunction::kStddev: {
        if (p.count == 0) {
          out[o++] = kNaN;
          break;
        }
        // n*S2 - S1^2 in 10^-12 units, exact in 128 bits, then scaled.
        const __int128 s1 = p.sum_micros;
        const __int128 num = static_cast<__int128>(p.count) * p.sum_sq - s1 * s1;
        const double var = static_cast<double>(num) / 1e12 / (n * n);
        out[o++] = std::sqrt(std::max(0.0, var));
        break;
      }
      case AggFunction::kCountDistinct: out[o++] = p.hll ? HllEstimate(*p.hll) : 0.0; break;
      default: break;
    }
  }
}

namespace {

constexpr uint8_t kFormat = 2;

// A HyperLogLog as bytes: 0 (none), 1 + the 1024 registers, or 2 + the
// non-zero registers as u16 (index << 6 | rank) when that is shorter (a
// tile's few distinct values take a few bytes, not 1 KB).
void PutHll(std::string* out, const std::array<uint8_t, 1024>* hll) {
  if (hll == nullptr) {
    PutRaw(out, uint8_t{0});
    return;
  }
  uint16_t nonzero = 0;
  for (uint8_t r : *hll) nonzero += r != 0;
  if (static_cast<size_t>(nonzero) * 2 + 2 >= hll->size()) {
    PutRaw(out, uint8_t{1});
    out->append(reinterpret_cast<const char*>(hll->data()), hll->size());
    return;
  }
  PutRaw(out, uint8_t{2});
  PutRaw(out, nonzero);
  for (size_t i = 0; i < hll->size(); ++i) {
    if ((*hll)[i] != 0) PutRaw(out, static_cast<uint16_t>(i << 6 | (*hll)[i]));
  }
}

bool TakeHll(std::string_view* in, std::unique_ptr<std::array<uint8_t, 1024>>* hll) {
  uint8_t kind = 0;
  if (!TakeRaw(in, &kind) || kind > 2) return false;
  if (kind == 0) return true;
  *hll = std::make_unique<std::array<uint8_t, 1024>>();
  if (kind == 1) {
    if (in->size() < 1024) return false;
    std::memcpy((*hll)->data(), in->data(), 1024);
    in->remove_prefix(1024);
    return true;
  }
  uint16_t n = 0;
  if (!TakeRaw(in, &n) || n > 1024) return false;
  for (uint16_t k = 0; k < n; ++k) {
    uint16_t e = 0;
    if (!TakeRaw(in, &e)) return false;
    (**hll)[e >> 6] = static_cast<uint8_t>(e & 63);
  }
  return true;
}

}  // namespace

std::string EntityWindows::Serialize() const {
  std::string out;
  PutRaw(&out, kFormat);
  PutRaw(&out, static_cast<uint32_t>(layout_->n_columns_));
  PutRaw(&out, static_cast<uint32_t>(rings_.size()));
  PutRaw(&out, latest_us_);
  for (size_t level = 0; level < rings_.size(); ++level) {
    const int64_t slots = static_cast<int64_t>(layout_->levels_[level].slots);
    const int64_t newest = latest_us_ == INT64_MIN ? 0 : FloorDiv(latest_us_, layout_->levels_[level].tile_us);
    std::vector<const Slot*> live;
    for (const Slot& slot : rings_[level]) {
      if (!slot.columns.empty() && slot.tile > newest - slots && slot.tile <= newest) {
        live.push_back(&slot);
      }
    }
    PutRaw(&out, static_cast<uint32_t>(live.size()));
    const std::vector<uint8_t>& fields = layout_->levels_[level].fields;
    for (const Slot* slot : live) {
      PutRaw(&out, slot->tile);
      for (size_t c = 0; c < slot->columns.size(); ++c) {  // only what the level's windows read
        const Partial& p = slot->columns[c];
        const uint8_t f = fields[c];
        if (f == 0) continue;
        PutRaw(&out, p.count);
        if (p.count == 0) continue;
        if (f & WindowLayout::kSum) PutRaw(&out, p.sum_micros);
        if (f & WindowLayout::kSumSq) PutRaw(&out, p.sum_sq);
        if (f & WindowLayout::kMinMax) {
          PutRaw(&out, p.min);
          PutRaw(&out, p.max);
        }
        if (f & WindowLayout::kHll) PutHll(&out, p.hll.get());
      }
    }
  }
  for (const Recent& r : recent_) {
    PutRaw(&out, static_cast<uint32_t>(r.items.size()));
    for (const auto& [ts, v] : r.items) {
      PutRaw(&out, ts);
      PutRaw(&out, v);
    }
  }
  return out;
}

Result<EntityWindows> EntityWindows::Parse(std::shared_ptr<const WindowLayout> layout,
                                           std::string_view in) {
  EntityWindows w(std::move(layout));
  const WindowLayout& l = *w.layout_;
  auto bad = [] { return InvalidArgument("aggregation state is corrupt or of another layout"); };
  uint8_t format = 0;
  uint32_t columns = 0, levels = 0;
  if (!TakeRaw(&in, &format) || format != kFormat || !TakeRaw(&in, &columns) ||
      columns != static_cast<uint32_t>(l.n_columns_) || !TakeRaw(&in, &levels) ||
      levels != w.rings_.size() || !TakeRaw(&in, &w.latest_us_)) {
    return bad();
  }
  for (size_t level = 0; level < w.rings_.size(); ++level) {
    const int64_t slots = static_cast<int64_t>(l.levels_[level].slots);
    uint32_t n = 0;
    if (!TakeRaw(&in, &n) || n > slots) return bad();
    for (uint32_t i = 0; i < n; ++i) {
      int64_t tile = 0;
      if (!TakeRaw(&in, &tile)) return bad();
      Slot& slot = w.rings_[level][static_cast<size_t>(((tile % slots) + slots) % slots)];
      slot.tile = tile;
      slot.columns.resize(l.n_columns_);
      const std::vector<uint8_t>& fields = l.levels_[level].fields;
      for (size_t c = 0; c < slot.columns.size(); ++c) {
        Partial& p = slot.columns[c];
        const uint8_t f = fields[c];
        if (f == 0) continue;
        if (!TakeRaw(&in, &p.count)) return bad();
        if (p.count == 0) continue;
        if ((f & WindowLayout::kSum) && !TakeRaw(&in, &p.sum_micros)) return bad();
        if ((f & WindowLayout::kSumSq) && !TakeRaw(&in, &p.sum_sq)) return bad();
        if ((f & WindowLayout::kMinMax) && (!TakeRaw(&in, &p.min) || !TakeRaw(&in, &p.max))) {
          return bad();
        }
        if ((f & WindowLayout::kHll) && !TakeHll(&in, &p.hll)) return bad();
      }
    }
  }
  for (Recent& r : w.recent_) {
    uint32_t n = 0;
    if (!TakeRaw(&in, &n) || n > static_cast<uint32_t>(std::max(1, l.max_last_n_))) return bad();
    r.items.resize(n);
    for (auto& [ts, v] : r.items) {
      if (!TakeRaw(&in, &ts) || !TakeRaw(&in, &v)) return bad();
    }
  }
  if (!in.empty()) return bad();
  return w;
}

}  // namespace rtml::features
