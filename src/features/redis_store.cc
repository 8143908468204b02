#include "features/redis_store.h"

#include <chrono>
#include <utility>

#include "features/redis_connection.h"

namespace rtml::features {
namespace {

using redis::Connection;
using redis::Reply;
using SteadyClock = std::chrono::steady_clock;

// A session on one Redis server (features.redis.host/port).
class RedisSession final : public StoreSession {
 public:
  RedisSession(const RedisOptions& o, const Clock& clock) : o_(o), conn_(o, o.host, o.port, clock) {}

  Status Write(const FeatureView& view, std::span<const WriteRecord> records,
               WriteCounts* counts) override {
    // Writes are last-writer-wins, so applying a record twice is harmless.
    return Retrying([&] { return WriteOnce(view, records, counts); });
  }
  Status Read(std::span<const ReadRequest> requests) override {
    const auto deadline = std::exchange(deadline_, SteadyClock::time_point::max());
    if (deadline == SteadyClock::time_point::max()) {
      return Retrying([&] { return ReadOnce(requests); });
    }
    return ReadBy(deadline, requests);
  }
  void SetDeadline(std::chrono::steady_clock::time_point deadline) override {
    deadline_ = deadline;
  }
  // MULTI ... EXEC: Redis applies the transaction as a whole. Replacing a
  // state with the same bytes is harmless, so a retry is safe.
  Status WriteState(const FeatureView& view, std::span<const WriteRecord> records,
                    std::span<const std::pair<std::string, std::string>> meta) override {
    return Retrying([&] { return WriteStateOnce(view, records, meta); });
  }
  Status PutMeta(std::string_view key, std::string_view value) override {
    return Retrying([&] { return PutMetaOnce(key, value); });
  }
  Result<std::optional<std::string>> GetMeta(std::string_view key) override {
    std::optional<std::string> value;
    Status s = Retrying([&]() -> Status {
      ASSIGN_OR_RETURN(value, GetMetaOnce(key));
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return value;
  }

 private:
  // Runs `op`; if it failed on a connection that had worked before (Redis
  // restarted, or closed an idle connection), runs it once more on a new one.
  template <typename Op>
  Status Retrying(Op op) {
    Status s = op();
    if (!s.ok() && conn_.TakeStale()) s = op();
    return s;
  }

  // A read that must end by `deadline`: the socket timeout is cut to the
  // time left when that is shorter than timeout_ms, and a failure once the
  // deadline passed is the request's, not Redis's (the breaker is not told).
  // A stale connection is retried once, at once, in the time left.
  Status ReadBy(SteadyClock::time_point deadline, std::span<const ReadRequest> requests) {
    using std::chrono::microseconds;
    for (int attempt = 0;; ++attempt) {
      const auto left = std::chrono::duration_cast<microseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) return DeadlinePassed();
      RETURN_IF_ERROR(conn_.Ready());
      const bool cut = left < std::chrono::milliseconds(o_.timeout_ms);
      if (cut) conn_.SetTimeout(left);
      conn_.set_cut_by_deadline(cut);
      Status s = ReadOnce(requests);
      conn_.set_cut_by_deadline(false);
      if (cut) conn_.ResetTimeout();
      if (s.ok()) return s;
      const bool retry = conn_.TakeStale() && attempt == 0;
      if (SteadyClock::now() >= deadline) return DeadlinePassed();
      if (!retry) return s;
    }
  }

  Status DeadlinePassed() const {
    return Status(StatusCode::kUnavailable,
                  "the request's deadline passed before Redis at " + conn_.address() + " answered",
                  "feature_store_unavailable");
  }

  Status WriteOnce(const FeatureView& view, std::span<const WriteRecord> records,
                   WriteCounts* counts) {
    RETURN_IF_ERROR(conn_.Ready());
    constexpr size_t kChunk = 512;
    for (size_t start = 0; start < records.size(); start += kChunk) {
      const size_t end = std::min(records.size(), start + kChunk);
      for (size_t i = start; i < end; ++i) conn_.AppendArgs(redis::WriteCommand(o_, view, records[i]));
      for (size_t i = start; i < end; ++i) {
        ASSIGN_OR_RETURN(Reply r, conn_.NextReply());
        if (r->type != REDIS_REPLY_INTEGER) return conn_.Fail("unexpected reply to a write");
        ++(r->integer == 1 ? counts->written : counts->stale);
      }
    }
    conn_.RecordSuccess();
    return Status::Ok();
  }

  Status ReadOnce(std::span<const ReadRequest> requests) {
    RETURN_IF_ERROR(conn_.Ready());
    for (const ReadRequest& req : requests) {
      for (const std::string& e : req.entity_keys) read_.Append(conn_, o_, *req.view, e);
    }
    for (const ReadRequest& req : requests) {
      req.out->assign(req.entity_keys.size(), StoredRecord{});
      for (size_t i = 0; i < req.entity_keys.size(); ++i) {
        ASSIGN_OR_RETURN(Reply r, conn_.NextReply());
        RETURN_IF_ERROR(redis::DecodeRead(conn_, r.get(), req.view->features.size(), &(*req.out)[i]));
      }
    }
    conn_.RecordSuccess();
    return Status::Ok();
  }

  Status WriteStateOnce(const FeatureView& view, std::span<const WriteRecord> records,
                        std::span<const std::pair<std::string, std::string>> meta) {
    RETURN_IF_ERROR(conn_.Ready());
    conn_.AppendArgs({"MULTI"});
    for (const WriteRecord& r : records) conn_.AppendArgs(redis::StateCommand(o_, view, r));
    for (const auto& [k, v] : meta) conn_.AppendArgs({"SET", redis::MetaKey(o_, k), v});
    conn_.AppendArgs({"EXEC"});
    for (size_t i = 0; i < records.size() + meta.size() + 1; ++i) {  // +OK, then QUEUED each
      ASSIGN_OR_RETURN(Reply r, conn_.NextReply());
    }
    ASSIGN_OR_RETURN(Reply exec, conn_.NextReply());
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != records.size() + meta.size()) {
      return conn_.Fail("the state transaction was not applied");
    }
    conn_.RecordSuccess();
    return Status::Ok();
  }

  Status PutMetaOnce(std::string_view key, std::string_view value) {
    RETURN_IF_ERROR(conn_.Ready());
    conn_.AppendArgs({"SET", redis::MetaKey(o_, key), std::string(value)});
    ASSIGN_OR_RETURN(Reply r, conn_.NextReply());
    conn_.RecordSuccess();
    return Status::Ok();
  }

  Result<std::optional<std::string>> GetMetaOnce(std::string_view key) {
    RETURN_IF_ERROR(conn_.Ready());
    conn_.AppendArgs({"GET", redis::MetaKey(o_, key)});
    ASSIGN_OR_RETURN(Reply r, conn_.NextReply());
    conn_.RecordSuccess();
    if (r->type == REDIS_REPLY_NIL) return std::optional<std::string>();
    return std::optional<std::string>(std::string(r->str, r->len));
  }

  const RedisOptions& o_;
  Connection conn_;
  redis::ReadCommand read_;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();  // of the next Read
};

class RedisStore final : public OnlineStore {
 public:
  RedisStore(RedisOptions o, const Clock& clock) : o_(std::move(o)), clock_(clock) {}
  std::string_view backend() const override { return "redis"; }
  std::unique_ptr<StoreSession> NewSession() override {
    if (!o_.cluster_nodes.empty()) return redis::NewClusterSession(o_, clock_);
    return std::make_unique<RedisSession>(o_, clock_);
  }
  // A cluster's reads run on a session (its redirections and map refreshes
  // are synchronous), on a thread of their own.
  std::unique_ptr<AsyncReads> NewAsyncReads(boost::asio::io_context& io) override {
    if (!o_.cluster_nodes.empty()) return NewSessionReads(io, redis::NewClusterSession(o_, clock_));
    return redis::NewAsyncReads(io, o_, clock_);
  }

 private:
  RedisOptions o_;
  const Clock& clock_;
};

}  // namespace

std::unique_ptr<OnlineStore> NewRedisStore(const RedisOptions& options, const Clock& clock) {
  return std::make_unique<RedisStore>(options, clock);
}

}  // namespace rtml::features
