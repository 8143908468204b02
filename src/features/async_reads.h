// AsyncReads: online-store reads issued from an event loop without blocking
// it. Read() queues a batch's commands and returns at once; every batch
// queued during one turn of the loop goes to the store in one write, and
// batches already sent share the connection (pipelined), so the requests a
// loop has in hand share round trips instead of each waiting out its own.
// The batch's ReadDone runs later on the loop's thread, exactly once: when
// its replies are in, when its deadline passed (Unavailable, the connection
// kept: Redis still answers, later), or when the store failed (Unavailable,
// naming it; the circuit breaker is told, as for a session).
// Only backends with a network trip have one (Redis: a single node's on the
// loop's own socket, a cluster's on a thread, NewSessionReads): RocksDB and
// memory reads are local, and their sessions' Read is used instead.
// Thread-safety: the loop's thread only.
#pragma once

#include <chrono>
#include <memory>
#include <span>

#include "common/status.h"
#include "features/online_store.h"

namespace boost::asio {
class io_context;
}

namespace rtml::features {

class ReadDone {
 public:
  virtual void OnRead(Status status) = 0;

 protected:
  ~ReadDone() = default;
};

class AsyncReads {
 public:
  virtual ~AsyncReads() = default;
  // Reads every request into its `out` (as StoreSession::Read), giving up
  // at `deadline` (max(): only the store's own timeout). Never calls `done`
  // before it returns.
  // REQUIRES: `requests`, their keys and outputs, and `done` stay alive and
  // untouched until `done` runs.
  virtual void Read(std::span<const ReadRequest> requests,
                    std::chrono::steady_clock::time_point deadline, ReadDone* done) = 0;
};

// AsyncReads over a synchronous session (a Redis Cluster's), on a thread of
// its own: every read queued while it is busy goes in its next batch (one
// session Read for all of them); each is answered on `io`'s loop, or at its
// deadline, whichever comes first (what arrives after is dropped).
std::unique_ptr<AsyncReads> NewSessionReads(boost::asio::io_context& io,
                                            std::unique_ptr<StoreSession> session);

}  // namespace rtml::features
