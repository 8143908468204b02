// Redis backend: the online store shared by many rtml replicas.
//
// Key layout (documented in docs/operations.md): one hash per entity and view,
//   <project>:fv:<view>:<entity key>  ->  {_ts: <event time, µs>, <feature>: <value>, ...}
// (absent field = null), and metadata at <project>:meta:<key>. Writes run a
// small Lua script that applies a record only if it is not older than the
// stored one (last-writer-wins, atomically in Redis). Reads pipeline one
// HMGET per (view, entity) and collect the replies: one round trip per batch.
//
// Each session owns one connection, with connect/command timeouts and a
// circuit breaker: after repeated failures it answers Unavailable at once and
// probes Redis again after a cool-down, reconnecting by itself.
//
// With cluster_nodes, the store speaks Redis Cluster (redis_cluster.h): a
// session reads the slot map from the seeds, keeps a connection per master,
// sends a batch's commands to the masters their keys' slots live on (one
// pipelined round trip per master touched), follows MOVED (re-reading the
// map) and ASK (a slot being migrated), and re-reads the map when a master
// stops answering (a failover). Stream feature views are refused there:
// their states and offsets are written in one transaction, which a cluster
// allows within one slot only.
// Thread-safety: a session is used by one thread; the store hands out many.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "features/online_store.h"

namespace rtml::features {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string password;
  int timeout_ms = 100;       // connect and per-command
  int retry_after_ms = 1000;  // circuit breaker cool-down
  std::string key_prefix = "default";  // the project name
  // Redis Cluster: seed nodes (host:port) to read the slot map from; when
  // set, host/port and db are not used (a cluster has database 0 only).
  std::vector<std::string> cluster_nodes;
};

// Does not connect: sessions connect on first use (and reconnect).
std::unique_ptr<OnlineStore> NewRedisStore(const RedisOptions& options,
                                           const Clock& clock = SystemClock::Get());

}  // namespace rtml::features
