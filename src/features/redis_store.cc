#include "features/redis_store.h"

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstring>
#include <utility>

#include "resilience/circuit_breaker.h"

namespace rtml::features {
namespace {

constexpr char kWriteScript[] =
    "local cur = redis.call('HGET', KEYS[1], '_ts')\n"
    "if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], '_ts', ARGV[1], unpack(ARGV, 2))\n"
    "return 1\n";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;
using SteadyClock = std::chrono::steady_clock;

class RedisSession final : public StoreSession {
 public:
  RedisSession(const RedisOptions& o, const Clock& clock)
      : o_(o), breaker_(/*failure_threshold=*/1, o.retry_after_ms, clock) {}
  ~RedisSession() override { Drop(); }

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
    if (!s.ok() && stale_connection_) {
      stale_connection_ = false;
      s = op();
    }
    if (s.ok()) used_ = true;
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
      RETURN_IF_ERROR(Ready());
      const bool cut = left < std::chrono::milliseconds(o_.timeout_ms);
      if (cut) SetTimeout(left);
      cut_by_deadline_ = cut;
      Status s = ReadOnce(requests);
      cut_by_deadline_ = false;
      if (cut && ctx_ != nullptr) SetTimeout(std::chrono::milliseconds(o_.timeout_ms));
      if (s.ok()) {
        used_ = true;
        return s;
      }
      const bool retry = stale_connection_ && attempt == 0;
      stale_connection_ = false;
      if (SteadyClock::now() >= deadline) return DeadlinePassed();
      if (!retry) return s;
    }
  }

  void SetTimeout(std::chrono::microseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000000),
               static_cast<suseconds_t>(t.count() % 1000000)};
    redisSetTimeout(ctx_, tv);
  }

  Status DeadlinePassed() const {
    return Status(StatusCode::kUnavailable,
                  "the request's deadline passed before Redis at " + Address() + " answered",
                  "feature_store_unavailable");
  }

  Status WriteOnce(const FeatureView& view, std::span<const WriteRecord> records,
                   WriteCounts* counts) {
    RETURN_IF_ERROR(Ready());
    constexpr size_t kChunk = 512;
    for (size_t start = 0; start < records.size(); start += kChunk) {
      const size_t end = std::min(records.size(), start + kChunk);
      for (size_t i = start; i < end; ++i) AppendWrite(view, records[i]);
      for (size_t i = start; i < end; ++i) {
        ASSIGN_OR_RETURN(Reply r, NextReply());
        if (r->type != REDIS_REPLY_INTEGER) return Fail("unexpected reply to a write", r.get());
        ++(r->integer == 1 ? counts->written : counts->stale);
      }
    }
    breaker_.RecordSuccess();
    return Status::Ok();
  }

  Status ReadOnce(std::span<const ReadRequest> requests) {
    RETURN_IF_ERROR(Ready());
    for (const ReadRequest& req : requests) {
      for (const std::string& e : req.entity_keys) AppendRead(*req.view, e);
    }
    for (const ReadRequest& req : requests) {
      req.out->assign(req.entity_keys.size(), StoredRecord{});
      for (size_t i = 0; i < req.entity_keys.size(); ++i) {
        ASSIGN_OR_RETURN(Reply r, NextReply());
        RETURN_IF_ERROR(Decode(r.get(), req.view->features.size(), &(*req.out)[i]));
      }
    }
    breaker_.RecordSuccess();
    return Status::Ok();
  }

  Status WriteStateOnce(const FeatureView& view, std::span<const WriteRecord> records,
                        std::span<const std::pair<std::string, std::string>> meta) {
    RETURN_IF_ERROR(Ready());
    AppendArgs({"MULTI"});
    for (const WriteRecord& r : records) {
      AppendArgs(WithFields({"HSET", Key(view, r.entity_key), "_ts",
                             std::to_string(r.event_ts_us)}, view, r));
    }
    for (const auto& [k, v] : meta) AppendArgs({"SET", o_.key_prefix + ":meta:" + k, v});
    AppendArgs({"EXEC"});
    for (size_t i = 0; i < records.size() + meta.size() + 1; ++i) {  // +OK, then QUEUED each
      ASSIGN_OR_RETURN(Reply r, NextReply());
    }
    ASSIGN_OR_RETURN(Reply exec, NextReply());
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != records.size() + meta.size()) {
      return Fail("the state transaction was not applied", exec.get());
    }
    breaker_.RecordSuccess();
    return Status::Ok();
  }

  Status PutMetaOnce(std::string_view key, std::string_view value) {
    RETURN_IF_ERROR(Ready());
    const std::string k = o_.key_prefix + ":meta:" + std::string(key);
    const char* argv[] = {"SET", k.data(), value.data()};
    const size_t len[] = {3, k.size(), value.size()};
    redisAppendCommandArgv(ctx_, 3, argv, len);
    ASSIGN_OR_RETURN(Reply r, NextReply());
    breaker_.RecordSuccess();
    return Status::Ok();
  }

  Result<std::optional<std::string>> GetMetaOnce(std::string_view key) {
    RETURN_IF_ERROR(Ready());
    const std::string k = o_.key_prefix + ":meta:" + std::string(key);
    const char* argv[] = {"GET", k.data()};
    const size_t len[] = {3, k.size()};
    redisAppendCommandArgv(ctx_, 2, argv, len);
    ASSIGN_OR_RETURN(Reply r, NextReply());
    breaker_.RecordSuccess();
    if (r->type == REDIS_REPLY_NIL) return std::optional<std::string>();
    return std::optional<std::string>(std::string(r->str, r->len));
  }

  // Connects if needed; fails fast while the breaker is open.
  Status Ready() {
    if (ctx_ != nullptr) return Status::Ok();
    if (!breaker_.Allow()) {
      return Status(StatusCode::kUnavailable,
                    "Redis at " + Address() + " is unavailable (retrying every " +
                        std::to_string(o_.retry_after_ms) + " ms)",
                    "feature_store_unavailable");
    }
    timeval tv{o_.timeout_ms / 1000, (o_.timeout_ms % 1000) * 1000};
    used_ = false;
    ctx_ = redisConnectWithTimeout(o_.host.c_str(), o_.port, tv);
    if (ctx_ == nullptr || ctx_->err) return Fail("cannot connect", nullptr);
    redisSetTimeout(ctx_, tv);
    if (!o_.password.empty()) RETURN_IF_ERROR(Simple({"AUTH", o_.password}));
    if (o_.db != 0) RETURN_IF_ERROR(Simple({"SELECT", std::to_string(o_.db)}));
    return Status::Ok();
  }

  Status Simple(std::vector<std::string> args) {
    std::vector<const char*> argv;
    std::vector<size_t> len;
    for (const auto& a : args) argv.push_back(a.data()), len.push_back(a.size());
    redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), len.data());
    ASSIGN_OR_RETURN(Reply r, NextReply());
    return Status::Ok();
  }

  std::string Address() const { return o_.host + ":" + std::to_string(o_.port); }
  std::string Key(const FeatureView& view, std::string_view entity) const {
    return o_.key_prefix + ":fv:" + view.name + ":" + std::string(entity);
  }

  // `args` followed by the record's present values as field, value pairs.
  static std::vector<std::string> WithFields(std::vector<std::string> args,
                                             const FeatureView& view, const WriteRecord& r) {
    for (size_t f = 0; f < r.values.size() && f < view.features.size(); ++f) {
      if (!r.values[f]) continue;
      args.push_back(view.features[f].name);
      args.push_back(*r.values[f]);
    }
    return args;
  }

  void AppendWrite(const FeatureView& view, const WriteRecord& r) {
    AppendArgs(WithFields({"EVAL", kWriteScript, "1", Key(view, r.entity_key),
                           std::to_string(r.event_ts_us)}, view, r));
  }

  // HMGET <key> _ts <features...>: only the key changes between entities,
  // so the argument vector is built once per view and batch.
  void AppendRead(const FeatureView& view, std::string_view entity) {
    if (read_view_ != &view) {
      read_view_ = &view;
      argv_.assign({"HMGET", nullptr, "_ts"});
      len_.assign({5, 0, 3});
      for (const Feature& f : view.features) {
        argv_.push_back(f.name.data());
        len_.push_back(f.name.size());
      }
    }
    key_ = o_.key_prefix;
    key_ += ":fv:";
    key_ += view.name;
    key_ += ':';
    key_ += entity;
    argv_[1] = key_.data();
    len_[1] = key_.size();
    redisAppendCommandArgv(ctx_, static_cast<int>(argv_.size()), argv_.data(), len_.data());
  }

  void AppendArgs(const std::vector<std::string>& args) {
    read_view_ = nullptr;
    argv_.clear();
    len_.clear();
    for (const auto& a : args) argv_.push_back(a.data()), len_.push_back(a.size());
    redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv_.data(), len_.data());
  }

  Result<Reply> NextReply() {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
      return Fail("connection failed", nullptr);
    }
    Reply r(static_cast<redisReply*>(raw));
    if (r->type == REDIS_REPLY_ERROR) {
      return Status(StatusCode::kUnavailable,
                    "Redis at " + Address() + " answered an error: " +
                        std::string(r->str, r->len),
                    "feature_store_error");
    }
    return r;
  }

  Status Decode(const redisReply* r, size_t n_features, StoredRecord* out) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n_features + 1) {
      return Fail("unexpected reply to a read", r);
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) return Status::Ok();  // no record
    out->found = true;
    out->event_ts_us = std::strtoll(r->element[0]->str, nullptr, 10);
    out->values.assign(n_features, std::nullopt);
    for (size_t f = 0; f < n_features; ++f) {
      const redisReply* v = r->element[f + 1];
      if (v->type == REDIS_REPLY_STRING) out->values[f] = std::string(v->str, v->len);
    }
    return Status::Ok();
  }

  // Drops the connection (its pipeline state is unknown). A connection that
  // had worked is worth one immediate retry; otherwise the breaker opens.
  Status Fail(std::string_view what, const redisReply*) {
    std::string detail = ctx_ != nullptr && ctx_->err ? std::string(": ") + ctx_->errstr : "";
    const bool was_used = ctx_ != nullptr && used_;
    Drop();
    if (cut_by_deadline_) {
      // Cut short by a request's deadline: Redis may be fine.
    } else if (was_used) {
      stale_connection_ = true;
    } else {
      breaker_.RecordFailure();
    }
    return Status(StatusCode::kUnavailable,
                  "Redis at " + Address() + ": " + std::string(what) + detail,
                  "feature_store_unavailable");
  }

  void Drop() {
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
  }

  const RedisOptions& o_;
  resilience::CircuitBreaker breaker_;
  redisContext* ctx_ = nullptr;
  bool used_ = false;              // the connection has answered at least once
  bool stale_connection_ = false;  // the last failure was on a used connection
  bool cut_by_deadline_ = false;   // the running read's timeout is a request's deadline
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();  // of the next Read
  std::vector<const char*> argv_;
  std::vector<size_t> len_;
  const FeatureView* read_view_ = nullptr;  // whose HMGET arguments argv_ holds
  std::string key_;
};

class RedisStore final : public OnlineStore {
 public:
  RedisStore(RedisOptions o, const Clock& clock) : o_(std::move(o)), clock_(clock) {}
  std::string_view backend() const override { return "redis"; }
  std::unique_ptr<StoreSession> NewSession() override {
    return std::make_unique<RedisSession>(o_, clock_);
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
