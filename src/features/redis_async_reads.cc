// Reads on one Redis node from an event loop: the loop's own socket, RESP
// written from the protocol's spec (arrays of bulk strings), replies parsed
// by hiredis's reader. One connection per loop, pipelined: commands queued
// in a turn go out in one write (a posted flush), replies are matched to
// batches in order, and a batch whose deadline passed is answered at once
// while its replies, when they come, are read and dropped.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <charconv>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "features/redis_connection.h"
#include "resilience/circuit_breaker.h"

namespace rtml::features::redis {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

void AppendNumber(std::string* out, size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out->append(buf, end);
}

// One bulk string: $<len>\r\n<bytes>\r\n
void AppendBulk(std::string* out, std::string_view s) {
  out->push_back('$');
  AppendNumber(out, s.size());
  out->append("\r\n").append(s).append("\r\n");
}

void AppendCommand(std::string* out, std::initializer_list<std::string_view> args) {
  out->push_back('*');
  AppendNumber(out, args.size());
  out->append("\r\n");
  for (std::string_view a : args) AppendBulk(out, a);
}

// HMGET <project>:fv:<view>:<entity> _ts <features...>, in RESP; what is
// the same for every entity of a view is built once per view.
class ReadEncoder {
 public:
  void Append(std::string* out, const RedisOptions& o, const FeatureView& view,
              std::string_view entity) {
    const View& v = For(o, view);
    out->append(v.head);
    out->push_back('$');
    AppendNumber(out, v.key_prefix.size() + entity.size());
    out->append("\r\n").append(v.key_prefix).append(entity).append("\r\n");
    out->append(v.tail);
  }

 private:
  struct View {
    const FeatureView* view = nullptr;
    std::string head, key_prefix, tail;
  };
  const View& For(const RedisOptions& o, const FeatureView& view) {
    for (const View& v : views_) {
      if (v.view == &view) return v;
    }
    View v{.view = &view};
    v.head = "*";
    AppendNumber(&v.head, 3 + view.features.size());
    v.head += "\r\n";
    AppendBulk(&v.head, "HMGET");
    v.key_prefix = o.key_prefix + ":fv:" + view.name + ":";
    AppendBulk(&v.tail, "_ts");
    for (const Feature& f : view.features) AppendBulk(&v.tail, f.name);
    views_.push_back(std::move(v));
    return views_.back();
  }
  std::vector<View> views_;  // the few views a loop reads
};

// Batches in the order their commands were queued: a vector used as a FIFO
// (a head index, compacted when half is done), so the steady state
// allocates nothing.
template <class T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  T& front() { return items_[head_]; }
  T& back() { return items_.back(); }
  void push_back(T t) { items_.push_back(std::move(t)); }
  void pop_front() {
    if (++head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    } else if (head_ > 64 && head_ * 2 > items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  // Moves every item out (in order), leaving it empty.
  std::vector<T> take() {
    std::vector<T> out(std::make_move_iterator(begin()), std::make_move_iterator(end()));
    items_.clear();
    head_ = 0;
    return out;
  }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
};

class RedisAsyncReads final : public AsyncReads {
 public:
  RedisAsyncReads(asio::io_context& io, const RedisOptions& o, const Clock& clock)
      : io_(io), timer_(io), resolver_(io), o_(o),
        address_(o.host + ":" + std::to_string(o.port)),
        timeout_(std::chrono::milliseconds(o.timeout_ms)),
        breaker_(/*failure_threshold=*/1, o.retry_after_ms, clock) {}
  ~RedisAsyncReads() override {
    if (reader_ != nullptr) redisReaderFree(reader_);
  }

  void Read(std::span<const ReadRequest> requests, SteadyClock::time_point deadline,
            ReadDone* done) override {
    const auto now = SteadyClock::now();
    if (now >= deadline) return Later(done, DeadlinePassed());
    size_t n = 0;
    for (const ReadRequest& r : requests) n += r.entity_keys.size();
    if (n == 0) return Later(done, Status::Ok());
    if (state_ == State::kDown) {
      if (!breaker_.Allow()) return Later(done, Down());
      Connect();
    }
    batches_.push_back({.done = done, .requests = requests, .deadline = deadline, .since = now,
                        .total = n});
    Queue(batches_.back());
    ArmAt(std::min(deadline, now + timeout_));
    if (state_ == State::kUp) PostFlush();
  }

 private:
  enum class State { kDown, kConnecting, kUp };
  struct Batch {
    ReadDone* done = nullptr;
    std::span<const ReadRequest> requests;  // emptied when abandoned: no longer ours
    SteadyClock::time_point deadline, since;
    size_t total = 0;                // replies it asks for
    size_t request = 0, entity = 0;  // where the next reply goes
    size_t left = 0;                 // replies still to come
    Status status;                   // the first error reply, if any
    bool abandoned = false;          // answered at its deadline; replies are dropped
    bool retried = false;            // sent again on a new connection once already
  };
  // One connection: what its handlers use stays alive with them, so a
  // write or read of a dropped connection never touches the next one.
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::string sending;  // the write in progress
    std::array<char, 16384> in;
    bool writing = false;
  };

  Status Unavailable(std::string what) const {
    return Status(StatusCode::kUnavailable, "Redis at " + address_ + " " + what,
                  "feature_store_unavailable");
  }
  Status Down() const {
    return Unavailable("is unavailable (retrying every " + std::to_string(o_.retry_after_ms) +
                       " ms)");
  }
  Status DeadlinePassed() const {
    return Unavailable("had not answered when the request's deadline passed");
  }

  // Runs `done` on the loop after the current handler (never within Read).
  void Later(ReadDone* done, Status s) {
    asio::post(io_, [done, s = std::move(s)] { done->OnRead(s); });
  }

  // A batch's commands onto the write queue, its cursor and outputs reset.
  void Queue(Batch& b) {
    b.request = b.entity = 0;
    b.left = b.total;
    for (const ReadRequest& r : b.requests) {
      r.out->assign(r.entity_keys.size(), StoredRecord{});
      for (const std::string& e : r.entity_keys) encoder_.Append(&out_, o_, *r.view, e);
    }
    Skip(b);
  }

  void Connect() {
    state_ = State::kConnecting;
    ++epoch_;
    used_ = false;
    conn_ = std::make_shared<Conn>(io_);
    progress_at_ = SteadyClock::now();
    if (reader_ != nullptr) redisReaderFree(reader_);
    reader_ = redisReaderCreate();
    // AUTH and SELECT go first: their replies come before any read's.
    std::string hello;
    handshake_ = 0;
    if (!o_.password.empty()) {
      AppendCommand(&hello, {"AUTH", o_.password});
      ++handshake_;
    }
    if (o_.db != 0) {
      AppendCommand(&hello, {"SELECT", std::to_string(o_.db)});
      ++handshake_;
    }
    out_.insert(0, hello);
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(o_.host, ec);
    if (!ec) return ConnectTo(tcp::endpoint(address, static_cast<uint16_t>(o_.port)));
    resolver_.async_resolve(
        o_.host, std::to_string(o_.port),
        [this, epoch = epoch_](boost::system::error_code ec, tcp::resolver::results_type found) {
          if (epoch != epoch_) return;
          if (ec || found.empty()) return Fail("cannot be resolved: " + ec.message());
          ConnectTo(*found.begin());
        });
  }

  void ConnectTo(const tcp::endpoint& at) {
    conn_->socket.async_connect(at, [this, c = conn_, epoch = epoch_](boost::system::error_code ec) {
      if (epoch != epoch_) return;
      if (ec) return Fail("cannot be connected to: " + ec.message());
      c->socket.set_option(tcp::no_delay(true), ec);
      state_ = State::kUp;
      ReadSome();
      Flush();
    });
  }

  void PostFlush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(io_, [this] {
      flush_posted_ = false;
      Flush();
    });
  }

  // Writes what was queued; what is queued meanwhile goes in the next write.
  void Flush() {
    if (state_ != State::kUp || conn_->writing || out_.empty()) return;
    std::swap(out_, conn_->sending);
    out_.clear();
    conn_->writing = true;
    asio::async_write(conn_->socket, asio::buffer(conn_->sending),
                      [this, c = conn_, epoch = epoch_](boost::system::error_code ec, size_t) {
                        c->writing = false;
                        if (epoch != epoch_) return;
                        if (ec) return Fail("failed a write: " + ec.message());
                        Flush();
                      });
  }

  void ReadSome() {
    conn_->socket.async_read_some(
        asio::buffer(conn_->in), [this, c = conn_, epoch = epoch_](boost::system::error_code ec,
                                                                    size_t n) {
          if (epoch != epoch_) return;
          OnData(*c, ec, n);
        });
  }

  void OnData(Conn& c, boost::system::error_code ec, size_t n) {
    if (ec) {
      // Redis closed an idle connection (a restart, its timeout): the next
      // read connects again, and nothing is held against Redis.
      if (batches_.empty() && handshake_ == 0) return Close();
      return Lost("closed the connection: " + ec.message());
    }
    progress_at_ = SteadyClock::now();
    if (redisReaderFeed(reader_, c.in.data(), n) != REDIS_OK) return Fail("sent an unreadable reply");
    const uint64_t epoch = epoch_;
    while (epoch == epoch_) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return Fail("sent an unreadable reply");
      if (raw == nullptr) break;
      Reply r(static_cast<redisReply*>(raw));
      OnReply(*r);
    }
    if (epoch == epoch_) ReadSome();
  }

  void OnReply(const redisReply& r) {
    used_ = true;
    if (handshake_ > 0) {
      --handshake_;
      if (r.type == REDIS_REPLY_ERROR) {
        return Fail("refused AUTH or SELECT: " + std::string(r.str, r.len));
      }
      return;
    }
    if (batches_.empty()) return Fail("sent a reply nothing asked for");
    Batch& b = batches_.front();
    if (!b.abandoned) {
      if (b.status.ok()) {
        const ReadRequest& q = b.requests[b.request];
        if (r.type == REDIS_REPLY_ERROR) {
          b.status = Status(StatusCode::kUnavailable,
                            "Redis at " + address_ + " answered an error: " +
                                std::string(r.str, r.len),
                            "feature_store_error");
        } else if (!DecodeReadReply(&r, q.view->features.size(), &(*q.out)[b.entity])) {
          b.status = Unavailable("sent an unexpected reply to a read");
        }
      }
      ++b.entity;
      Skip(b);
    }
    if (--b.left > 0) return;
    Batch finished = std::move(b);
    batches_.pop_front();
    breaker_.RecordSuccess();
    if (!finished.abandoned) finished.done->OnRead(std::move(finished.status));
  }

  // Moves a batch's cursor past requests with no entities left.
  static void Skip(Batch& b) {
    while (b.request < b.requests.size() && b.entity >= b.requests[b.request].entity_keys.size()) {
      ++b.request;
      b.entity = 0;
    }
  }

  void ArmAt(SteadyClock::time_point at) {
    if (at >= timer_at_) return;
    timer_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec != asio::error::operation_aborted) OnTimer();
    });
  }

  // When the connection counts as stalled: timeout_ms without a byte from
  // Redis while its oldest batch waits (replies that keep coming are
  // progress, however long the pipeline behind them).
  SteadyClock::time_point StalledAt() {
    return std::max(batches_.front().since, progress_at_) + timeout_;
  }

  // Answers batches whose deadline passed; fails the connection when Redis
  // has sent nothing for timeout_ms while a batch waits (Redis stalled).
  void OnTimer() {
    timer_at_ = SteadyClock::time_point::max();
    const auto now = SteadyClock::now();
    if (!batches_.empty() && now >= StalledAt()) {
      return Fail(state_ == State::kUp ? "did not answer within " + std::to_string(o_.timeout_ms) +
                                             " ms"
                                       : "did not accept a connection within " +
                                             std::to_string(o_.timeout_ms) + " ms");
    }
    expired_.clear();
    auto next = SteadyClock::time_point::max();
    for (Batch& b : batches_) {
      if (!b.abandoned && b.deadline <= now) {
        b.abandoned = true;
        b.requests = {};  // its caller may reuse them once answered
        expired_.push_back(b.done);
      }
      if (!b.abandoned) next = std::min(next, b.deadline);
    }
    if (!batches_.empty()) next = std::min(next, StalledAt());
    if (next != SteadyClock::time_point::max()) ArmAt(next);
    for (ReadDone* done : expired_) done->OnRead(DeadlinePassed());
  }

  void Close() {
    ++epoch_;
    boost::system::error_code ignored;
    if (conn_ != nullptr) conn_->socket.close(ignored);
    conn_.reset();  // its handlers hold it until they have run
    resolver_.cancel();
    state_ = State::kDown;
    handshake_ = 0;
    out_.clear();
  }

  // A connection that had answered went away with reads in flight (Redis
  // restarted, a proxy cut it): they are sent once more, at once, on a new
  // one, without holding it against Redis, as a session retries a stale
  // connection. Reads sent again already fail.
  void Lost(std::string what) {
    bool again = used_, waiting = false;
    for (Batch& b : batches_) {
      again = again && (b.abandoned || !b.retried);
      waiting = waiting || !b.abandoned;
    }
    if (!waiting) {  // only replies nobody waits for any more
      batches_.take();
      return Close();
    }
    if (!again) return Fail(std::move(what));
    std::vector<Batch> resend = batches_.take();
    Close();
    Connect();
    for (Batch& b : resend) {
      if (b.abandoned) continue;
      b.retried = true;
      b.status = Status::Ok();
      batches_.push_back(std::move(b));
      Queue(batches_.back());
    }
  }

  // Drops the connection and answers every batch in flight with why.
  void Fail(std::string what) {
    Close();
    breaker_.RecordFailure();
    const Status s = Unavailable(std::move(what));
    for (Batch& b : batches_.take()) {
      if (!b.abandoned) b.done->OnRead(s);
    }
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  SteadyClock::time_point timer_at_ = SteadyClock::time_point::max();
  tcp::resolver resolver_;
  const RedisOptions& o_;
  const std::string address_;
  const SteadyClock::duration timeout_;
  resilience::CircuitBreaker breaker_;
  State state_ = State::kDown;
  std::shared_ptr<Conn> conn_;  // null while down
  uint64_t epoch_ = 0;          // a connection's handlers run only while it is current
  bool used_ = false;           // the connection has answered
  SteadyClock::time_point progress_at_;  // when Redis last sent something
  redisReader* reader_ = nullptr;
  int handshake_ = 0;  // AUTH/SELECT replies still to come
  ReadEncoder encoder_;
  std::string out_;  // commands queued for the next write
  bool flush_posted_ = false;
  Fifo<Batch> batches_;  // in the order their commands were queued
  std::vector<ReadDone*> expired_;
};

}  // namespace

std::unique_ptr<AsyncReads> NewAsyncReads(asio::io_context& io, const RedisOptions& o,
                                          const Clock& clock) {
  return std::make_unique<RedisAsyncReads>(io, o, clock);
}

}  // namespace rtml::features::redis
