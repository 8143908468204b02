#include "features/redis_cluster.h"

#include <charconv>

namespace rtml::features::redis_cluster {
namespace {

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<int> Int(std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool HasFlag(std::string_view flags, std::string_view flag) {
  size_t i = 0;
  while (i <= flags.size()) {
    const size_t comma = flags.find(',', i);
    const std::string_view f = flags.substr(i, comma == std::string_view::npos ? flags.npos : comma - i);
    if (f == flag) return true;
    if (comma == std::string_view::npos) break;
    i = comma + 1;
  }
  return false;
}

}  // namespace

uint16_t Crc16(std::string_view bytes) {
  uint16_t crc = 0;
  for (unsigned char b : bytes) {
    crc ^= static_cast<uint16_t>(b) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

int KeySlot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) % kSlots;
}

std::optional<Node> ParseNode(std::string_view address) {
  address = address.substr(0, address.find('@'));  // ip:port@cport
  address = address.substr(0, address.find(','));  // ip:port@cport,hostname
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const auto port = Int(address.substr(colon + 1));
  if (!port || *port <= 0 || *port > 65535 || host.empty()) return std::nullopt;
  return Node{std::string(host), *port};
}

Result<SlotMap> SlotMap::FromClusterNodes(std::string_view text) {
  SlotMap map;
  map.owner_.fill(-1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto f = Fields(line);
    if (f.empty()) continue;
    if (f.size() < 8) {
      return InvalidArgument("CLUSTER NODES: unreadable line '" + std::string(line) + "'");
    }
    const std::string_view flags = f[2];
    if (!HasFlag(flags, "master") || HasFlag(flags, "fail") || HasFlag(flags, "noaddr") ||
        HasFlag(flags, "handshake")) {
      continue;
    }
    const auto node = ParseNode(f[1]);
    if (!node) return InvalidArgument("CLUSTER NODES: unreadable address '" + std::string(f[1]) + "'");
    const auto index = static_cast<int16_t>(map.nodes_.size());
    bool serves = false;
    for (size_t i = 8; i < f.size(); ++i) {
      const std::string_view range = f[i];
      if (range.front() == '[') continue;  // a slot being imported or migrated
      const size_t dash = range.find('-');
      const auto lo = Int(range.substr(0, dash));
      const auto hi = dash == std::string_view::npos ? lo : Int(range.substr(dash + 1));
      if (!lo || !hi || *lo < 0 || *hi >= kSlots || *lo > *hi) {
        return InvalidArgument("CLUSTER NODES: unreadable slot range '" + std::string(range) + "'");
      }
      for (int s = *lo; s <= *hi; ++s) map.owner_[static_cast<size_t>(s)] = index;
      serves = true;
    }
    if (serves) map.nodes_.push_back(*node);
  }
  if (map.nodes_.empty()) {
    return InvalidArgument("CLUSTER NODES: no master serves any slot (is the cluster created?)");
  }
  return map;
}

int SlotMap::unserved() const {
  int n = 0;
  for (int16_t o : owner_) n += o < 0;
  return n;
}

std::optional<Redirect> ParseRedirect(std::string_view error) {
  const auto f = Fields(error);
  if (f.size() != 3) return std::nullopt;
  Redirect r;
  if (f[0] == "MOVED") {
    r.kind = Redirect::Kind::kMoved;
  } else if (f[0] == "ASK") {
    r.kind = Redirect::Kind::kAsk;
  } else {
    return std::nullopt;
  }
  const auto slot = Int(f[1]);
  // ":6380": the host of the node that answered (Redis 7 sends it so when
  // its own address is unknown to it); the caller fills it in.
  const bool same_host = f[2].starts_with(":");
  const auto node = ParseNode(same_host ? "h" + std::string(f[2]) : std::string(f[2]));
  if (!slot || *slot < 0 || *slot >= kSlots || !node) return std::nullopt;
  r.slot = *slot;
  r.node = *node;
  if (same_host) r.node.host.clear();
  return r;
}

}  // namespace rtml::features::redis_cluster
