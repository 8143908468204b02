// One hiredis connection to one Redis node, as the Redis store's sessions
// use it (mechanism; the sessions decide what to send and when to retry):
// connects on demand with the configured timeouts, AUTH and SELECT; pipelines
// commands (Append*) and reads their replies in order; on a failure drops the
// connection (its pipeline state is unknown) and tells the circuit breaker,
// unless the connection had worked before (then it is "stale": worth one
// immediate retry on a new one) or the timeout was a request's deadline; an
// error reply tells the breaker too (see ErrorReply).
// And the commands both the single-node and the cluster sessions build.
// Thread-safety: one thread at a time.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "features/async_reads.h"
#include "features/online_store.h"
#include "features/redis_store.h"
#include "resilience/circuit_breaker.h"

namespace rtml::features::redis {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

class Connection {
 public:
  Connection(const RedisOptions& o, std::string host, int port, const Clock& clock);
  ~Connection() { Drop(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects if needed; fails fast while the breaker is open.
  Status Ready();
  void Append(int argc, const char** argv, const size_t* len) {
    redisAppendCommandArgv(ctx_, argc, argv, len);
  }
  void AppendArgs(const std::vector<std::string>& args);
  // Writes what was appended to the socket now (NextReply would, when
  // called): so that several nodes' pipelines are in flight at once.
  Status Flush();
  // The next reply. An error reply is a Status ("feature_store_error") and
  // drops the connection (the replies behind it are unread), unless
  // `errors_as_replies` (the cluster session reads MOVED and ASK).
  Result<Reply> NextReply(bool errors_as_replies = false);
  // Drops the connection; the Status names the node and what failed.
  Status Fail(std::string_view what);
  // An error reply ends the pipeline: drops the connection (the replies
  // behind it are unread) and tells the breaker what it says of the node:
  // up, unless it cannot serve yet (loading its data, busy in a script, its
  // master down). The Status ("feature_store_error") quotes the error.
  Status ErrorReply(std::string_view error);
  void Drop();

  // The socket timeout for what follows (a request's time left), and back.
  void SetTimeout(std::chrono::microseconds t);
  void ResetTimeout() { SetTimeout(std::chrono::milliseconds(o_.timeout_ms)); }
  bool connected() const { return ctx_ != nullptr; }

  void RecordSuccess() {
    used_ = true;
    breaker_.RecordSuccess();
  }
  // Whether the last failure was on a connection that had answered before
  // (and clears it).
  bool TakeStale() { return std::exchange(stale_, false); }
  // While set, a failure is the request's deadline, not the node's.
  void set_cut_by_deadline(bool cut) { cut_by_deadline_ = cut; }
  const std::string& address() const { return address_; }
  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  const RedisOptions& o_;
  std::string host_;
  int port_;
  std::string address_;
  resilience::CircuitBreaker breaker_;
  redisContext* ctx_ = nullptr;
  bool used_ = false;
  bool stale_ = false;
  bool cut_by_deadline_ = false;
  std::vector<const char*> argv_;
  std::vector<size_t> len_;
};

// <project>:fv:<view>:<entity key>
std::string Key(const RedisOptions& o, const FeatureView& view, std::string_view entity);
// <project>:meta:<key>
std::string MetaKey(const RedisOptions& o, std::string_view key);

// EVAL of the last-writer-wins script for one record (reply: 1 written,
// 0 stale).
std::vector<std::string> WriteCommand(const RedisOptions& o, const FeatureView& view,
                                      const WriteRecord& r);
// HSET of a record's state (WriteState), field by field.
std::vector<std::string> StateCommand(const RedisOptions& o, const FeatureView& view,
                                      const WriteRecord& r);

// HMGET <key> _ts <features...> for one view and many entities: the
// argument vector is built once per view, only the key changes.
class ReadCommand {
 public:
  void Append(Connection& c, const RedisOptions& o, const FeatureView& view,
              std::string_view entity);

 private:
  const FeatureView* view_ = nullptr;
  std::vector<const char*> argv_;
  std::vector<size_t> len_;
  std::string key_;
};

// A session on a Redis Cluster (redis_cluster_store.cc).
std::unique_ptr<StoreSession> NewClusterSession(const RedisOptions& o, const Clock& clock);

// A reply to ReadCommand into *out.
Status DecodeRead(Connection& c, const redisReply* r, size_t n_features, StoredRecord* out);
// The same without a connection to fail: false when `r` is not a read's reply.
bool DecodeReadReply(const redisReply* r, size_t n_features, StoredRecord* out);

// Reads on one Redis node from an event loop (redis_async_reads.cc).
std::unique_ptr<AsyncReads> NewAsyncReads(boost::asio::io_context& io, const RedisOptions& o,
                                          const Clock& clock);

}  // namespace rtml::features::redis
