// Redis Cluster's routing, as the cluster specification gives it: a key's
// hash slot (CRC16-XMODEM of the key, or of its {hash tag}, mod 16384), the
// map of which master serves each slot (read from CLUSTER NODES), and the
// redirections a node answers with: MOVED (the slot lives elsewhere now:
// refresh the map) and ASK (this key, this once, at another node, after
// ASKING: a slot being migrated).
//
// Policy only, no sockets: the Redis store (redis_store.cc) asks where keys
// go, groups a batch by node (one pipelined round trip per node touched)
// and follows redirections.
// Thread-safety: values; a SlotMap is read-only once built.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rtml::features::redis_cluster {

inline constexpr int kSlots = 16384;

// CRC16-XMODEM (polynomial 0x1021, initial value 0), the cluster's hash.
uint16_t Crc16(std::string_view bytes);

// The slot of `key`: of its hash tag when it has one (the bytes between the
// first '{' and the next '}', when not empty), else of the whole key.
int KeySlot(std::string_view key);

struct Node {
  std::string host;
  int port = 0;
  std::string Address() const { return host + ":" + std::to_string(port); }
  bool operator==(const Node&) const = default;
};

// host:port (IPv6 as [addr]:port) -> Node; nullopt when unreadable.
std::optional<Node> ParseNode(std::string_view address);

class SlotMap {
 public:
  // From the text of CLUSTER NODES: the masters that are not failing, and
  // the slot ranges each serves ("0-5460", "5461"; migration entries like
  // "[5461->-id]" are skipped: the source still serves the slot, and ASK
  // sends a client to the target for keys already moved).
  // InvalidArgument when a line is unreadable or no slot has a master.
  static Result<SlotMap> FromClusterNodes(std::string_view text);

  // The node serving `slot` (index into nodes()), or -1 if none does.
  int NodeFor(int slot) const { return owner_[static_cast<size_t>(slot)]; }
  const std::vector<Node>& nodes() const { return nodes_; }
  // Slots no master serves (the cluster is down for them).
  int unserved() const;

 private:
  std::vector<Node> nodes_;
  std::array<int16_t, kSlots> owner_{};
};

struct Redirect {
  enum class Kind { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  int slot = 0;
  Node node;
};

// "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381" (a node's error
// reply; "MOVED 3999 :6381" gives an empty host: the answering node's);
// nullopt for any other error.
std::optional<Redirect> ParseRedirect(std::string_view error);

}  // namespace rtml::features::redis_cluster
