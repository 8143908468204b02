#include "features/redis_connection.h"

#include <cstdlib>
#include <utility>

namespace rtml::features::redis {
namespace {

constexpr char kWriteScript[] =
    "local cur = redis.call('HGET', KEYS[1], '_ts')\n"
    "if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], '_ts', ARGV[1], unpack(ARGV, 2))\n"
    "return 1\n";

// `args` followed by the record's present values as field, value pairs.
std::vector<std::string> WithFields(std::vector<std::string> args, const FeatureView& view,
                                    const WriteRecord& r) {
  for (size_t f = 0; f < r.values.size() && f < view.features.size(); ++f) {
    if (!r.values[f]) continue;
    args.push_back(view.features[f].name);
    args.push_back(*r.values[f]);
  }
  return args;
}

}  // namespace

Connection::Connection(const RedisOptions& o, std::string host, int port, const Clock& clock)
    : o_(o), host_(std::move(host)), port_(port), address_(host_ + ":" + std::to_string(port_)),
      breaker_(/*failure_threshold=*/1, o.retry_after_ms, clock) {}

Status Connection::Ready() {
  if (ctx_ != nullptr) return Status::Ok();
  if (!breaker_.Allow()) {
    return Status(StatusCode::kUnavailable,
                  "Redis at " + address_ + " is unavailable (retrying every " +
                      std::to_string(o_.retry_after_ms) + " ms)",
                  "feature_store_unavailable");
  }
  timeval tv{o_.timeout_ms / 1000, (o_.timeout_ms % 1000) * 1000};
  used_ = false;
  ctx_ = redisConnectWithTimeout(host_.c_str(), port_, tv);
  if (ctx_ == nullptr || ctx_->err) return Fail("cannot connect");
  redisSetTimeout(ctx_, tv);
  auto simple = [&](std::vector<std::string> args) -> Status {
    AppendArgs(args);
    ASSIGN_OR_RETURN(Reply r, NextReply());
    return Status::Ok();
  };
  if (!o_.password.empty()) RETURN_IF_ERROR(simple({"AUTH", o_.password}));
  if (o_.db != 0) RETURN_IF_ERROR(simple({"SELECT", std::to_string(o_.db)}));
  return Status::Ok();
}

void Connection::AppendArgs(const std::vector<std::string>& args) {
  argv_.clear();
  len_.clear();
  for (const auto& a : args) argv_.push_back(a.data()), len_.push_back(a.size());
  redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv_.data(), len_.data());
}

Status Connection::Flush() {
  int done = 0;
  do {
    if (redisBufferWrite(ctx_, &done) == REDIS_ERR) return Fail("connection failed");
  } while (!done);
  return Status::Ok();
}

Result<Reply> Connection::NextReply(bool errors_as_replies) {
  void* raw = nullptr;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) return Fail("connection failed");
  Reply r(static_cast<redisReply*>(raw));
  if (r->type == REDIS_REPLY_ERROR && !errors_as_replies) {
    // The caller stops reading here: the replies queued behind this one
    // would answer its next commands. A new connection starts clean.
    return ErrorReply(std::string_view(r->str, r->len));
  }
  return r;
}

Status Connection::ErrorReply(std::string_view error) {
  Drop();
  // Left untold, a breaker whose trial call this was would stay half-open.
  const bool not_serving = error.starts_with("LOADING") || error.starts_with("BUSY") ||
                           error.starts_with("MASTERDOWN");
  not_serving ? breaker_.RecordFailure() : breaker_.RecordSuccess();
  return Status(StatusCode::kUnavailable,
                "Redis at " + address_ + " answered an error: " + std::string(error),
                "feature_store_error");
}

Status Connection::Fail(std::string_view what) {
  std::string detail = ctx_ != nullptr && ctx_->err ? std::string(": ") + ctx_->errstr : "";
  const bool was_used = ctx_ != nullptr && used_;
  Drop();
  if (was_used) {
    stale_ = true;  // worth one retry on a new connection, if there is time
  } else if (!cut_by_deadline_) {
    breaker_.RecordFailure();  // (a timeout cut to a request's deadline says nothing of Redis)
  }
  return Status(StatusCode::kUnavailable, "Redis at " + address_ + ": " + std::string(what) + detail,
                "feature_store_unavailable");
}

void Connection::Drop() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

void Connection::SetTimeout(std::chrono::microseconds t) {
  if (ctx_ == nullptr) return;
  timeval tv{static_cast<time_t>(t.count() / 1000000),
             static_cast<suseconds_t>(t.count() % 1000000)};
  redisSetTimeout(ctx_, tv);
}

std::string Key(const RedisOptions& o, const FeatureView& view, std::string_view entity) {
  std::string key = o.key_prefix;
  key += ":fv:";
  key += view.name;
  key += ':';
  key += entity;
  return key;
}

std::string MetaKey(const RedisOptions& o, std::string_view key) {
  return o.key_prefix + ":meta:" + std::string(key);
}

std::vector<std::string> WriteCommand(const RedisOptions& o, const FeatureView& view,
                                      const WriteRecord& r) {
  return WithFields({"EVAL", kWriteScript, "1", Key(o, view, r.entity_key),
                     std::to_string(r.event_ts_us)},
                    view, r);
}

std::vector<std::string> StateCommand(const RedisOptions& o, const FeatureView& view,
                                      const WriteRecord& r) {
  return WithFields({"HSET", Key(o, view, r.entity_key), "_ts", std::to_string(r.event_ts_us)},
                    view, r);
}

void ReadCommand::Append(Connection& c, const RedisOptions& o, const FeatureView& view,
                         std::string_view entity) {
  if (view_ != &view) {
    view_ = &view;
    argv_.assign({"HMGET", nullptr, "_ts"});
    len_.assign({5, 0, 3});
    for (const Feature& f : view.features) {
      argv_.push_back(f.name.data());
      len_.push_back(f.name.size());
    }
  }
  key_ = o.key_prefix;
  key_ += ":fv:";
  key_ += view.name;
  key_ += ':';
  key_ += entity;
  argv_[1] = key_.data();
  len_[1] = key_.size();
  c.Append(static_cast<int>(argv_.size()), argv_.data(), len_.data());
}

Status DecodeRead(Connection& c, const redisReply* r, size_t n_features, StoredRecord* out) {
  if (!DecodeReadReply(r, n_features, out)) return c.Fail("unexpected reply to a read");
  return Status::Ok();
}

bool DecodeReadReply(const redisReply* r, size_t n_features, StoredRecord* out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n_features + 1) return false;
  if (r->element[0]->type != REDIS_REPLY_STRING) return true;  // no record
  out->found = true;
  out->event_ts_us = std::strtoll(r->element[0]->str, nullptr, 10);
  out->values.assign(n_features, std::nullopt);
  for (size_t f = 0; f < n_features; ++f) {
    const redisReply* v = r->element[f + 1];
    if (v->type == REDIS_REPLY_STRING) out->values[f] = std::string(v->str, v->len);
  }
  return true;
}

}  // namespace rtml::features::redis
