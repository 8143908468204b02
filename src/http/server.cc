#include "http/server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <type_traits>

#include "common/threads.h"

namespace rtml::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

using Clock = std::chrono::steady_clock;

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A loop alternates between rounds of its I/O (reads, cheap requests,
// refusals, writes: whatever is ready) and turns of its queue of up to kTurn
// (a turn also ends after the request that passes it), so I/O never waits
// behind more than one turn. I/O comes first: reading and refusing is what
// keeps an overloaded loop's answers fast, and costs far less than scoring
// what it refuses; only under a flood of it does a round end at kIoRound,
// so that queued work still gets a turn in every kIoRound + kTurn.
constexpr auto kTurn = std::chrono::microseconds(250);
constexpr auto kIoRound = std::chrono::milliseconds(2);
// The scheduler slice a scoring thread asks for: longer than the default
// (0.75 ms x (1 + log2 of the cores, up to 8): 3 ms at most), so that its
// loop, on the default, preempts it on waking.
constexpr int kScorerSliceUs = 10000;

class Session;
class WorkQueue;

// What a loop shares with its sessions (loop thread, except `live`, which a
// shutting-down thread reads).
struct LoopShared {
  bool draining = false;
  std::atomic<int> live{0};  // sessions alive
  WorkQueue* queue = nullptr;
};

// A queued request, from its admission until it is answered.
struct Item {
  std::shared_ptr<Session> session;  // null once answered by the deadline timer
  Clock::time_point enqueued, deadline;
  size_t bytes = 0;
  int64_t rows = 0;     // estimated
  double ms = 0;        // estimated
  double ahead_ms = 0;  // estimated service queued ahead of it when admitted
};

// What became of a request its loop's scoring thread took.
struct Scored {
  Clock::time_point start;  // when its turn came
  double ms = 0;            // how long its run took
  int64_t rows = 0;
  enum class How { kRefused, kNow, kLater, kDeferred } how = How::kRefused;
};

// A loop's scoring thread: runs the heavy requests PlaceWork() sends off the
// loop, in the order the loop hands them over, with its own ThreadState and
// io_context (their feature-store reads run there), so that the loop goes on
// reading, refusing and answering while they are scored. What it ran goes
// back to the loop (WorkQueue::ScorerDone), which writes the answers.
// It asks for long scheduler slices, so that its loop, waking with a shorter
// one, preempts it at once (RequestSchedulerSlice).
// Thread-safety: Hand() and Start()/Stop() from the loop's owner or thread;
// the rest runs on its own thread.
class ScoringThread {
 public:
  ScoringThread(Handler& handler, asio::io_context& loop_io)
      : handler_(handler), loop_io_(loop_io), state_(handler.NewThreadState(io_)) {}
  ~ScoringThread() { Stop(); }
  void Start(WorkQueue* queue);
  // Loop thread: the request will be run here, after those handed before.
  void Hand(Item item);
  // Stops (what is pending is dropped) and joins. Idempotent.
  void Stop();

 private:
  void Main();
  void RunOne();

  Handler& handler_;
  asio::io_context& loop_io_;
  asio::io_context io_{1};
  std::unique_ptr<ThreadState> state_;  // after io_: its reads are on io_
  WorkQueue* queue_ = nullptr;
  std::deque<Item> pending_;  // this thread's
  std::thread thread_;
};

// A loop's heavy requests (mechanism; resilience::Admit and PlaceWork
// decide), in two FIFOs: small ones the loop scores itself, a Turn() of them
// between two rounds of its I/O (see HttpServer::Loop::Run), so the reads,
// cheap requests and refusals of other connections run between two turns;
// big ones it hands to its ScoringThread, at most kScorerDepth at a time so
// that what waits stays here, under admission control and deadlines.
// Loop thread only.
class WorkQueue {
 public:
  WorkQueue(asio::io_context& io, const ServerOptions& options, const Handler& handler,
            ThreadState& state, ScoringThread& scorer)
      : io_(io), timer_(io), options_(options), handler_(handler), state_(state),
        scorer_thread_(scorer) {}
  // Queues the session's request (read, not started), or answers it at once:
  // 503/504 when admission refuses it, 400 when its deadline header is bad.
  void Submit(std::shared_ptr<Session> session);
  // What it holds now, for gauges (any thread).
  int64_t depth() const { return depth_.load(std::memory_order_relaxed); }
  int64_t rows() const { return rows_.load(std::memory_order_relaxed); }
  // Whether a turn would do anything: live work for the loop, and a handler
  // not Busy.
  bool Ready() const { return loop_.live > 0 && !handler_.Busy(state_); }
  // Answers the oldest live requests of the loop's FIFO (or refuses those
  // whose deadline passed while they waited) for up to kTurn.
  void Turn();
  // A request answered later took `ms` of its thread's time in all.
  void ObserveLater(size_t bytes, int64_t rows, double ms) { estimate_.Observe(bytes, rows, ms); }
  // The scoring thread ran (or refused) `item`: answers it, learns from it,
  // hands over the next.
  void ScorerDone(Item item, const Scored& scored);

 private:
  // One FIFO and what it holds: rows, estimated service, live requests
  // (with, for the scorer's, those handed over and not yet run).
  struct Fifo {
    std::deque<Item> items;
    int64_t rows = 0;
    double ms = 0;
    size_t live = 0;
    resilience::WaitEstimator wait;
  };
  resilience::LoopLoad Load(Fifo& fifo, Clock::time_point now);
  void Forget(Fifo& fifo, int64_t rows, double ms);
  void HandOver();
  void ArmTimer(Clock::time_point at);
  void OnTimer();

  static constexpr int kScorerDepth = 2;  // handed over and not yet run

  asio::io_context& io_;
  asio::steady_timer timer_;
  Clock::time_point timer_at_ = Clock::time_point::max();
  const ServerOptions& options_;
  const Handler& handler_;
  ThreadState& state_;
  ScoringThread& scorer_thread_;
  resilience::LoadEstimator estimate_;
  Fifo loop_, scorer_;
  int handed_ = 0;
  std::atomic<int64_t> depth_{0}, rows_{0};  // both FIFOs' live and rows, published
  void Publish() {
    depth_.store(static_cast<int64_t>(loop_.live + scorer_.live), std::memory_order_relaxed);
    rows_.store(loop_.rows + scorer_.rows, std::memory_order_relaxed);
  }
};

// One keep-alive connection, as the loop and its queue see it; lives as
// long as an operation holds it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  virtual ~Session() = default;
  virtual void Start() = 0;
  // Draining: a session waiting for its next request is closed; one in the
  // middle of a request answers it first (with "Connection: close").
  virtual void CloseIfIdle() = 0;
  virtual const Request& request() const = 0;
  // Runs the handler for the request with `state`, on that state's thread
  // (the loop's, or its scoring thread's); returns the rows it scored and
  // how it answers: kNow, the response is filled, for Answer(); kLater, the
  // handler answers with LaterAnswer::Send(); kDeferred, the background
  // worker fills the response and has it written.
  using How = Scored::How;
  struct Ran {
    int64_t rows = 0;
    How how = How::kNow;
  };
  virtual Ran Run(RequestContext& context, ThreadState& state) = 0;
  // Loop thread: writes the response Run() filled.
  virtual void Answer() = 0;
  // How long Run() took for a request answered later (added to its finish).
  virtual void set_started_ms(double ms) = 0;
  // Loop thread: answers a queued request that will not be started.
  virtual void Refuse(const Status& why, int retry_after_s) = 0;
  // The handle a queued request may be answered later with.
  virtual std::shared_ptr<LaterAnswer> Later() = 0;
};

// A Session over a plain TCP stream or a TLS one (TlsStream).
template <class Stream>
class StreamSession final : public Session, public LaterAnswer {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  StreamSession(Stream stream, const ServerOptions& options, Handler* handler,
                ThreadState* state, BackgroundWorker* worker, std::shared_ptr<LoopShared> shared)
      : stream_(std::move(stream)), options_(options), handler_(handler), state_(state),
        worker_(worker), shared_(std::move(shared)) {
    buffer_.reserve(4096);
    shared_->live.fetch_add(1);
  }
  ~StreamSession() override { shared_->live.fetch_sub(1); }

  void Start() override {
    beast::error_code ignored;
    Tcp().socket().set_option(tcp::no_delay(true), ignored);
    if constexpr (kTls) {
      // The handshake (and, with a client CA, the client's certificate)
      // must come within the idle timeout.
      Tcp().expires_after(std::chrono::seconds(options_.idle_timeout_s));
      stream_.async_handshake(ssl::stream_base::server, [self = Self()](beast::error_code ec) {
        if (ec) return self->Close();  // no certificate, a bad one, or not TLS at all
        self->Read();
      });
    } else {
      Read();
    }
  }

  void CloseIfIdle() override {
    if (!busy_) Close();
  }

 private:
  std::shared_ptr<StreamSession> Self() {
    return std::static_pointer_cast<StreamSession>(shared_from_this());
  }
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(16 * 1024);
    Tcp().expires_after(std::chrono::seconds(options_.idle_timeout_s));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = Self()](beast::error_code ec, size_t) {
                               self->OnHeader(ec);
                             });
  }

  // Clients that send "Expect: 100-continue" wait for an interim 100 before
  // sending the body; answer it, then read the body.
  void OnHeader(beast::error_code ec) {
    if (ec || parser_->is_done()) return OnRead(ec);
    const auto& req = parser_->get();
    auto expect = req.find(bhttp::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                               [self = Self()](beast::error_code ec, size_t) {
                                 if (ec) return self->Close();
                                 self->ReadBody();
                               });
    }
    if (ParseBuffered()) return;
    ReadBody();
  }

  // The body (all of a small request) usually came with the header: parsing
  // it from the buffer now spares a turn of the loop per request. True when
  // that ended the request (read, or failed).
  bool ParseBuffered() {
    beast::error_code ec;
    parser_->eager(true);
    while (!parser_->is_done() && buffer_.size() > 0) {
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more) return false;
      if (ec) break;
      if (used == 0) return false;
    }
    if (!ec && !parser_->is_done()) return false;
    OnRead(ec);
    return true;
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = Self()](beast::error_code ec, size_t) {
                        self->OnRead(ec);
                      });
  }

  void OnRead(beast::error_code ec) {
    busy_ = true;
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      return Close();
    }
    res_.clear();
    res_.body().clear();
    res_.version(11);
    if (ec) {
      const bhttp::status status = ec == bhttp::error::body_limit
                                       ? bhttp::status::payload_too_large
                                       : bhttp::status::bad_request;
      // The start line may be read even when a header field failed (an
      // oversized Content-Length fails while the fields are parsed).
      const std::string_view target = parser_->get().target();
      handler_->HandleUnreadable(status, ec.message(), target, res_);
      res_.keep_alive(false);
      return Write();
    }
    const Request& req = parser_->get();
    res_.version(req.version());
    if (handler_->Queued(req)) return shared_->queue->Submit(shared_from_this());
    RequestContext context;
    if (Run(context, *state_).how == How::kNow) Answer();
  }

 public:
  const Request& request() const override { return parser_->get(); }

  Ran Run(RequestContext& context, ThreadState& state) override {
    const Request& req = parser_->get();
    const bool offered = context.later != nullptr;
    Deferred work = handler_->Handle(req, res_, state, context);
    if (offered && context.later == nullptr) return {context.rows, How::kLater};
    if (work) {
      RunDeferred(std::move(work));
      return {context.rows, How::kDeferred};
    }
    return {context.rows, How::kNow};
  }
  void Answer() override {
    res_.keep_alive(parser_->get().keep_alive());
    Write();
  }
  void set_started_ms(double ms) override { started_ms_ = ms; }

  std::shared_ptr<LaterAnswer> Later() override { return Self(); }

  // LaterAnswer: the handler filled the response after I/O on the thread it
  // ran on; it is written on the loop (at once when that is this thread).
  void Send(int64_t rows, std::chrono::nanoseconds service) override {
    asio::dispatch(stream_.get_executor(), [self = Self(), rows, service] {
      self->Tcp().expires_after(std::chrono::seconds(self->options_.idle_timeout_s));
      self->Answer();
      self->shared_->queue->ObserveLater(self->parser_->get().body().size(), rows,
                                         self->started_ms_ + Millis(service));
    });
  }

  void Refuse(const Status& why, int retry_after_s) override {
    const Request& req = parser_->get();
    handler_->HandleRefused(req, why, res_, *state_);
    if (retry_after_s > 0) res_.set(bhttp::field::retry_after, std::to_string(retry_after_s));
    res_.keep_alive(req.keep_alive());
    Write();
  }

 private:

  // Runs `work` on the background worker, then writes on this loop. The
  // session (and so the request and response) stays alive meanwhile.
  void RunDeferred(Deferred work) {
    worker_->Post([self = Self(), work = std::move(work)] {
      work(self->res_);
      asio::post(self->stream_.get_executor(), [self] {
        // The read's timeout may have passed while the work ran.
        self->Tcp().expires_after(std::chrono::seconds(self->options_.idle_timeout_s));
        self->res_.keep_alive(self->parser_->get().keep_alive());
        self->Write();
      });
    });
  }

  void Write() {
    if (shared_->draining) res_.keep_alive(false);
    res_.prepare_payload();
    bhttp::async_write(stream_, res_, [self = Self()](beast::error_code ec, size_t) {
      self->OnWrite(ec);
    });
  }

  void OnWrite(beast::error_code ec) {
    busy_ = false;
    if (ec) return Close();
    if (!res_.keep_alive() || shared_->draining) return CloseAfterAnswer();
    Read();
  }

  // The last answer is written: over TLS, say so (close_notify) so that the
  // client can tell the end from a cut, for at most a second; then close.
  void CloseAfterAnswer() {
    if constexpr (kTls) {
      Tcp().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = Self()](beast::error_code) { self->Close(); });
    } else {
      Close();
    }
  }

  void Close() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().socket().close(ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Response res_;
  const ServerOptions& options_;
  Handler* handler_;
  ThreadState* state_;
  BackgroundWorker* worker_;
  // Shared: a session can outlive its loop's members (a handler the loop's
  // io_context destroys last holds it).
  std::shared_ptr<LoopShared> shared_;
  bool busy_ = false;  // between a request read and its response written
  double started_ms_ = 0;  // Run()'s time for a request answered later
};

Status DeadlinePassed(Clock::duration waited) {
  return Status(StatusCode::kDeadlineExceeded,
                "the request's deadline passed after " + std::to_string(std::llround(Millis(waited))) +
                    " ms in the queue; not started",
                "deadline_exceeded");
}

// The context a queued request runs with, its turn having come at `start`.
RequestContext Started(const Item& item, Clock::time_point start) {
  return {.deadline = item.deadline,
          .received = item.enqueued,
          .queue_wait = start - item.enqueued,
          .later = item.session->Later()};
}

void WorkQueue::Submit(std::shared_ptr<Session> session) {
  const auto now = Clock::now();
  const Request& req = session->request();
  auto timeout = resilience::ParseTimeoutMs(req[kTimeoutHeader], kTimeoutHeader);
  if (!timeout.ok()) return session->Refuse(timeout.status(), 0);
  std::optional<double> budget_ms = *timeout;
  if (!budget_ms && options_.default_timeout_ms > 0) budget_ms = options_.default_timeout_ms;
  const size_t bytes = req.body().size();
  const int64_t rows = estimate_.Rows(bytes);
  const resilience::Work work{
      .rows = rows, .service_ms = estimate_.ServiceMs(rows), .budget_ms = budget_ms};
  const bool on_loop = resilience::PlaceWork(work) == resilience::Lane::kLoop;
  Fifo& fifo = on_loop ? loop_ : scorer_;
  const resilience::LoopLoad load = Load(fifo, now);
  const resilience::Admission a = resilience::Admit(options_.admission, load, work);
  if (a.verdict != resilience::Verdict::kAdmit) {
    return session->Refuse(resilience::RefusalStatus(a, options_.admission, load, work),
                           a.retry_after_s);
  }
  Item item{.session = std::move(session), .enqueued = now, .deadline = Clock::time_point::max(),
            .bytes = bytes, .rows = work.rows, .ms = work.service_ms, .ahead_ms = fifo.ms};
  if (budget_ms) {
    item.deadline = now + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double, std::milli>(*budget_ms));
    if (item.deadline < timer_at_) ArmTimer(item.deadline);
  }
  fifo.rows += item.rows;
  fifo.ms += item.ms;
  ++fifo.live;
  fifo.items.push_back(std::move(item));
  Publish();
  if (!on_loop) HandOver();
}

// The loop's own FIFO is served next by the loop (unless its handler waits
// on I/O); the scorer's by another thread, whose head's wait counts.
resilience::LoopLoad WorkQueue::Load(Fifo& fifo, Clock::time_point now) {
  while (!fifo.items.empty() && !fifo.items.front().session) fifo.items.pop_front();
  if (fifo.live == 0) return {};
  return {.oldest_wait_ms = fifo.items.empty() ? 0 : Millis(now - fifo.items.front().enqueued),
          .queued_ms = fifo.wait.WaitMs(fifo.ms),
          .queued_rows = fifo.rows,
          .served_next = &fifo == &loop_ && !handler_.Busy(state_)};
}

// A turn of several small requests spares a poll of the sockets per
// request; kTurn bounds what the loop's I/O waits for.
void WorkQueue::Turn() {
  const auto turn_start = Clock::now();
  auto start = turn_start;
  while (true) {
    while (!loop_.items.empty() && !loop_.items.front().session) loop_.items.pop_front();
    if (loop_.items.empty() || handler_.Busy(state_)) break;
    Item item = std::move(loop_.items.front());
    loop_.items.pop_front();
    Forget(loop_, item.rows, item.ms);
    loop_.wait.ObserveWait(item.ahead_ms, Millis(start - item.enqueued));
    if (start >= item.deadline) {
      item.session->Refuse(DeadlinePassed(start - item.enqueued), 0);
    } else {
      RequestContext context = Started(item, start);
      const Session::Ran ran = item.session->Run(context, state_);
      if (ran.how == Session::How::kNow) item.session->Answer();
      const auto end = Clock::now();
      if (ran.how == Session::How::kLater) {
        item.session->set_started_ms(Millis(end - start));  // observed once it is answered
      } else {
        estimate_.Observe(item.bytes, ran.rows, Millis(end - start));
      }
      start = end;
    }
    if (start - turn_start >= kTurn) break;
  }
}

// The scorer's FIFO's next requests go over while it holds fewer than
// kScorerDepth not yet run: it never waits for the loop between two, and
// the rest wait here, where deadlines and admission see them.
void WorkQueue::HandOver() {
  while (handed_ < kScorerDepth) {
    while (!scorer_.items.empty() && !scorer_.items.front().session) scorer_.items.pop_front();
    if (scorer_.items.empty()) return;
    ++handed_;
    scorer_thread_.Hand(std::move(scorer_.items.front()));
    scorer_.items.pop_front();
  }
}

void WorkQueue::ScorerDone(Item item, const Scored& scored) {
  --handed_;
  Forget(scorer_, item.rows, item.ms);
  scorer_.wait.ObserveWait(item.ahead_ms, Millis(scored.start - item.enqueued));
  switch (scored.how) {
    case Scored::How::kRefused:
      item.session->Refuse(DeadlinePassed(scored.start - item.enqueued), 0);
      break;
    case Scored::How::kNow:
      item.session->Answer();
      estimate_.Observe(item.bytes, scored.rows, scored.ms);
      break;
    case Scored::How::kDeferred:
      estimate_.Observe(item.bytes, scored.rows, scored.ms);
      break;
    case Scored::How::kLater:  // observed once it is answered
      break;
  }
  HandOver();
}

void WorkQueue::Forget(Fifo& fifo, int64_t rows, double ms) {
  --fifo.live;
  fifo.rows -= rows;
  fifo.ms -= ms;
  if (fifo.live == 0) {  // no drift from floating-point sums
    fifo.rows = 0;
    fifo.ms = 0;
  }
  Publish();
}

void WorkQueue::ArmTimer(Clock::time_point at) {
  timer_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([this](beast::error_code ec) {
    if (ec != asio::error::operation_aborted) OnTimer();
  });
}

// Answers 504 to every queued request whose deadline has passed, without
// waiting for its turn, and re-arms for the earliest deadline left. (One
// handed to the scoring thread is refused there if its turn comes late.)
void WorkQueue::OnTimer() {
  timer_at_ = Clock::time_point::max();
  const auto now = Clock::now();
  Clock::time_point next = Clock::time_point::max();
  for (Fifo* fifo : {&loop_, &scorer_}) {
    for (Item& item : fifo->items) {
      if (!item.session) continue;
      if (item.deadline <= now) {
        Forget(*fifo, item.rows, item.ms);
        fifo->wait.ObserveWait(item.ahead_ms, Millis(now - item.enqueued));  // it waited at least this
        std::shared_ptr<Session> session = std::move(item.session);
        session->Refuse(DeadlinePassed(now - item.enqueued), 0);
      } else {
        next = std::min(next, item.deadline);
      }
    }
  }
  if (next != Clock::time_point::max()) ArmTimer(next);
}

void ScoringThread::Start(WorkQueue* queue) {
  queue_ = queue;
  thread_ = std::thread([this] { Main(); });
}

void ScoringThread::Hand(Item item) {
  asio::post(io_, [this, item = std::move(item)]() mutable { pending_.push_back(std::move(item)); });
}

void ScoringThread::Stop() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

// Like its loop: the handlers that are ready (requests handed over, replies
// of its reads), then one request, and so on; it sleeps when neither waits.
void ScoringThread::Main() {
  NameThisThread("rtml-scorer");
  RequestSchedulerSlice(kScorerSliceUs);
  auto guard = asio::make_work_guard(io_);
  while (!io_.stopped()) {
    const size_t ran = io_.poll();
    if (!pending_.empty() && !handler_.Busy(*state_)) {
      RunOne();
    } else if (ran == 0) {
      io_.run_one();
    }
  }
}

void ScoringThread::RunOne() {
  Item item = std::move(pending_.front());
  pending_.pop_front();
  Scored scored{.start = Clock::now()};
  if (scored.start < item.deadline) {
    RequestContext context = Started(item, scored.start);
    const Session::Ran ran = item.session->Run(context, *state_);
    scored.ms = Millis(Clock::now() - scored.start);
    scored.rows = ran.rows;
    scored.how = ran.how;
    if (ran.how == Scored::How::kLater) item.session->set_started_ms(scored.ms);
  }
  asio::post(loop_io_, [queue = queue_, item = std::move(item), scored]() mutable {
    queue->ScorerDone(std::move(item), scored);
  });
}

}  // namespace

BackgroundWorker::BackgroundWorker() {
  thread_ = std::thread([this] {
    NameThisThread("rtml-background");
    LowerThisThreadPriority();  // its work must not compete with the loops
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  });
}

BackgroundWorker::~BackgroundWorker() { Stop(); }

void BackgroundWorker::Post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void BackgroundWorker::Stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    dropped.swap(jobs_);
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

class HttpServer::Loop {
 public:
  Loop(const ServerOptions& options, Handler* handler, BackgroundWorker* worker,
       ssl::context* tls, bool with_reuseport = true)
      : io_(1), acceptor_(io_), options_(options), handler_(handler),
        state_(handler->NewThreadState(io_)), worker_(worker), tls_(tls),
        reuseport_(with_reuseport), scorer_(*handler, io_),
        queue_(io_, options, *handler, *state_, scorer_) {
    shared_->queue = &queue_;
  }

  Status Bind(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && reuseport_) acceptor_.set_option(ReusePort(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on " + endpoint.address().to_string() + ":" +
                        std::to_string(endpoint.port()) + ": " + ec.message() +
                        " (is another server using the port? choose one with --port)");
    }
    return Status::Ok();
  }

  int port() const { return acceptor_.local_endpoint().port(); }

  // The loop: a round of ready I/O handlers (for up to kIoRound), then a
  // turn of the queue, and so on; it sleeps in the reactor when neither has
  // work.
  // (Asio's run() would put a posted turn ahead of the completions the
  // reactor gathers while it runs, so a read could wait behind several.)
  void Run() {
    NameThisThread("rtml-http");
    Accept();
    auto guard = asio::make_work_guard(io_);  // queued requests are work too
    while (!io_.stopped()) {
      size_t ran = 0;
      for (const auto until = Clock::now() + kIoRound; io_.poll_one() > 0;) {
        if (++ran % 8 == 0 && Clock::now() >= until) break;
      }
      if (queue_.Ready()) {
        queue_.Turn();
      } else if (ran == 0) {
        io_.run_one();
      }
    }
  }

  void Stop() {
    asio::post(io_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      io_.stop();
    });
  }

  // Stops accepting and closes idle sessions; busy ones close after answering.
  void Drain() {
    asio::post(io_, [this] {
      shared_->draining = true;
      beast::error_code ignored;
      acceptor_.close(ignored);
      for (auto& weak : sessions_) {
        if (auto session = weak.lock()) session->CloseIfIdle();
      }
      sessions_.clear();
    });
  }
  int live() const { return shared_->live.load(); }
  const WorkQueue& queue() const { return queue_; }
  void StartScorer() { scorer_.Start(&queue_); }
  // After the loop's thread has ended: the scoring thread posts to its loop.
  void StopScorer() { scorer_.Stop(); }

 private:
  void Accept() {
    acceptor_.async_accept(io_, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        std::shared_ptr<Session> session;
        if (tls_ != nullptr) {
          session = std::make_shared<StreamSession<TlsStream>>(
              TlsStream(std::move(socket), *tls_), options_, handler_, state_.get(), worker_,
              shared_);
        } else {
          session = std::make_shared<StreamSession<beast::tcp_stream>>(
              beast::tcp_stream(std::move(socket)), options_, handler_, state_.get(), worker_,
              shared_);
        }
        if (sessions_.size() >= 1024) {  // keep the list to the live ones
          std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
        }
        sessions_.push_back(session);
        session->Start();
      }
      Accept();
    });
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  const ServerOptions& options_;
  Handler* handler_;
  std::unique_ptr<ThreadState> state_;
  BackgroundWorker* worker_;
  ssl::context* tls_;  // null: plain HTTP
  bool reuseport_;
  std::shared_ptr<LoopShared> shared_ = std::make_shared<LoopShared>();
  ScoringThread scorer_;
  WorkQueue queue_;
  std::vector<std::weak_ptr<Session>> sessions_;  // for Drain(); loop thread only
};

struct HttpServer::Tls {
  ssl::context context{ssl::context::tls_server};
};

namespace {

Status TlsFailure(std::string_view key, const std::string& file, std::string_view what,
                  const beast::error_code& ec) {
  return FailedPrecondition("http.tls." + std::string(key) + ": cannot use '" + file + "': " +
                            std::string(what) + (ec ? " (" + ec.message() + ")" : std::string()));
}

// The TLS context for `o`: TLS 1.2 or later, the certificate chain and its
// key (checked to match), and with a client CA, client certificates required.
Status ConfigureTls(const TlsOptions& o, ssl::context& ctx) {
  namespace fs = std::filesystem;
  const std::pair<std::string_view, const std::string*> files[] = {
      {"cert", &o.cert_file}, {"key", &o.key_file}, {"client_ca", &o.client_ca_file}};
  for (const auto& [key, file] : files) {
    std::error_code fec;
    if (!file->empty() && !fs::is_regular_file(*file, fec)) {
      return TlsFailure(key, *file, "no such file", {});
    }
  }
  if (o.key_file.empty()) {
    return FailedPrecondition("http.tls.key: the certificate's private key (PEM) is needed with "
                              "http.tls.cert");
  }
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  beast::error_code ec;
  ctx.use_certificate_chain_file(o.cert_file, ec);
  if (ec) return TlsFailure("cert", o.cert_file, "not a PEM certificate chain", ec);
  ctx.use_private_key_file(o.key_file, ssl::context::pem, ec);
  if (ec && ec.message().find("mismatch") != std::string::npos) {
    return TlsFailure("key", o.key_file, "it is not the key of " + o.cert_file, {});
  }
  if (ec) return TlsFailure("key", o.key_file, "not a PEM private key", ec);
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return TlsFailure("key", o.key_file, "it is not the key of " + o.cert_file, {});
  }
  if (!o.client_ca_file.empty()) {
    ctx.load_verify_file(o.client_ca_file, ec);
    if (ec) return TlsFailure("client_ca", o.client_ca_file, "not PEM CA certificates", ec);
    ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return Status::Ok();
}

}  // namespace

HttpServer::HttpServer(ServerOptions options, Handler* handler)
    : options_(std::move(options)), handler_(handler) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  beast::error_code ec;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (ec) {
    return FailedPrecondition("http.host '" + options_.host + "' is not an IP address");
  }
  if (options_.tls.enabled() && tls_ == nullptr) {
    auto tls = std::make_unique<Tls>();
    RETURN_IF_ERROR(ConfigureTls(options_.tls, tls->context));
    tls_ = std::move(tls);
  }
  ssl::context* tls = tls_ != nullptr ? &tls_->context : nullptr;
  const int n = std::max(1, options_.threads);
  port_ = options_.port;
  // SO_REUSEPORT would let a second rtml share a port silently; a plain bind
  // first fails if anything (including another rtml) holds it.
  if (port_ != 0) {
    Loop probe(options_, handler_, nullptr, nullptr, /*with_reuseport=*/false);
    RETURN_IF_ERROR(probe.Bind(tcp::endpoint(address, static_cast<uint16_t>(port_))));
  }
  worker_ = std::make_unique<BackgroundWorker>();
  for (int i = 0; i < n; ++i) {
    auto loop = std::make_unique<Loop>(options_, handler_, worker_.get(), tls);
    // The first loop may pick a free port; the others share it.
    RETURN_IF_ERROR(loop->Bind(tcp::endpoint(address, static_cast<uint16_t>(port_))));
    port_ = loop->port();
    loops_.push_back(std::move(loop));
  }
  for (auto& loop : loops_) {
    loop->StartScorer();
    threads_.emplace_back([l = loop.get()] { l->Run(); });
  }
  return Status::Ok();
}

HttpServer::QueueStats HttpServer::Queued() const {
  QueueStats q;
  for (const auto& loop : loops_) {
    q.requests += loop->queue().depth();
    q.rows += loop->queue().rows();
  }
  return q;
}

void HttpServer::Shutdown(std::chrono::milliseconds grace) {
  if (stopped_.load()) return;
  for (auto& loop : loops_) loop->Drain();
  const auto until = std::chrono::steady_clock::now() + grace;
  auto live = [&] {
    int n = 0;
    for (auto& loop : loops_) n += loop->live();
    return n;
  };
  while (live() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Stop();
}

void HttpServer::Stop() {
  if (stopped_.exchange(true)) return;
  for (auto& loop : loops_) loop->Stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  for (auto& loop : loops_) loop->StopScorer();
  // Jobs hold sessions whose sockets belong to the loops: end them first.
  if (worker_) worker_->Stop();
  loops_.clear();
  worker_.reset();
}

}  // namespace rtml::http
