// HttpServer: HTTP/1.1 with keep-alive on Boost.Beast, one io_context and
// one thread per event loop, each loop with its own SO_REUSEPORT acceptor on
// the same port so the kernel spreads connections and no state is shared
// between loops.
//
// Each connection reuses its read buffer and response object; requests are
// handed to a Handler on the loop's thread together with that loop's
// ThreadState (per-thread scratch).
// Heavy requests (the handler says which: predicts) wait their turn in the
// loop's FIFO, which the loop scores one request at a time between its reads,
// so cheap requests (health, metrics, reads) are answered as soon as they
// arrive, and the loop knows how long its queue has waited and what it holds.
// Admission control (resilience/admission.h) refuses new heavy work at once
// when the queue is past its bounds (503 with Retry-After) or cannot meet the
// request's deadline (504); queued work whose deadline passes is answered 504
// without being started. A deadline comes from the X-Request-Timeout-Ms
// header, else ServerOptions::default_timeout_ms.
// A handler answers at once, or hands back
// Deferred work for what would block a loop (file I/O, a materialization):
// the server runs it on its one background worker, in arrival order, then
// writes the response on the connection's loop.
// Oversized bodies get 413, unparseable requests 400, idle connections are
// closed after idle_timeout_s. With ServerOptions::tls every connection is
// HTTPS (a TLS handshake first, within idle_timeout_s); with a client CA, a
// client without a certificate from it is refused at the handshake.
// Thread-safety: Start()/Stop() from one controlling thread. The Handler is
// called concurrently from every loop thread, never twice at once for the same
// ThreadState.
// Ownership: borrows the Handler, which must outlive the server.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "resilience/admission.h"

namespace rtml::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// HTTPS on the same server: Beast's SSL streams over OpenSSL (TLS 1.2 and
// 1.3). With a client CA, every client must present a certificate that
// chains to it (mutual TLS); the handshake fails otherwise.
struct TlsOptions {
  std::string cert_file;       // PEM certificate chain; empty = plain HTTP
  std::string key_file;        // PEM private key of the certificate
  std::string client_ca_file;  // PEM CAs for client certificates; empty = none asked
  bool enabled() const { return !cert_file.empty(); }
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port (see HttpServer::port())
  int threads = 1;
  size_t max_body_bytes = 1 << 20;
  int idle_timeout_s = 60;
  resilience::AdmissionLimits admission;  // for queued (heavy) requests
  double default_timeout_ms = 0;          // deadline of requests without one; 0 = none
  TlsOptions tls;
};

// The header a client sets its deadline with, in milliseconds.
inline constexpr std::string_view kTimeoutHeader = "X-Request-Timeout-Ms";

// A queued request's answer, given later on the loop's thread after I/O the
// handler started there (a feature-store read) instead of when Handle()
// returns: the handler moves RequestContext::later out, fills the response
// when its I/O is done and calls Send(), once, with the rows it scored and
// the loop time finishing it took (for the queue's estimates). Until then
// the server keeps the request and response alive and leaves them alone.
class LaterAnswer {
 public:
  virtual ~LaterAnswer() = default;
  virtual void Send(int64_t rows, std::chrono::nanoseconds service) = 0;
};

// What the server knows of a request beyond its bytes.
struct RequestContext {
  using Clock = std::chrono::steady_clock;
  // When the client stops waiting; max() = no deadline.
  Clock::time_point deadline = Clock::time_point::max();
  // When the request was read (the epoch for requests not queued: now).
  Clock::time_point received{};
  // How long a queued request waited for its turn (0 for the others).
  std::chrono::nanoseconds queue_wait{0};
  // Set by the handler: the rows a queued request scored (for the loop's
  // estimates of queued work).
  int64_t rows = 0;
  // Queued requests only: the handle to answer later with (see LaterAnswer).
  std::shared_ptr<LaterAnswer> later;
};

// Per-loop state a Handler keeps (scratch buffers); one per server thread.
class ThreadState {
 public:
  virtual ~ThreadState() = default;
};

// Work that fills a response off the event loops. It runs on the server's
// background worker; the request and response it was given stay alive (and
// untouched by the loop) until it returns.
using Deferred = std::function<void(Response& res)>;

class Handler {
 public:
  virtual ~Handler() = default;
  // `io` runs the loop the state belongs to (for I/O started on it).
  virtual std::unique_ptr<ThreadState> NewThreadState(boost::asio::io_context& io) = 0;
  // Whether the loop's handler already holds as many later answers as it
  // takes: its queue then waits (under admission control) until one is sent.
  virtual bool Busy(const ThreadState& state) const { return false; }
  // Whether `req` is heavy work that waits its turn in the loop's queue,
  // under admission control. Must be cheap: it runs before any other work.
  virtual bool Queued(const Request& req) const { return false; }
  // Fills `res` (status, headers, body) for `req` and returns an empty
  // Deferred; or returns the work that will fill it on the background worker.
  // Must not throw or block.
  virtual Deferred Handle(const Request& req, Response& res, ThreadState& state,
                          RequestContext& context) = 0;
  // Fills `res` for queued work refused before it started: `why` is
  // Unavailable (overloaded), DeadlineExceeded, or InvalidArgument (a bad
  // deadline header). The server adds Retry-After.
  virtual void HandleRefused(const Request& req, const Status& why, Response& res,
                             ThreadState& state) {
    res.result(bhttp::status::service_unavailable);
  }
  // Fills `res` for a request that could not be read (`status` 400 or 413).
  // `target` is the request's target when its header was read, else empty.
  virtual void HandleUnreadable(bhttp::status status, std::string_view why,
                                std::string_view target, Response& res) = 0;
};

// One background thread running Deferred jobs in order.
// Thread-safety: Post() from any thread; Stop() from the owner, once.
class BackgroundWorker {
 public:
  BackgroundWorker();
  ~BackgroundWorker();
  void Post(std::function<void()> job);
  // Finishes the running job, drops the queued ones, joins the thread.
  void Stop();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                   // GUARDED_BY(mu_)
  std::thread thread_;
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler* handler);
  ~HttpServer();

  // Binds every loop's acceptor and starts the threads. Fails, naming the
  // address, when the port is taken or the host is not local, and naming the
  // file when a TLS certificate, key or CA cannot be used.
  Status Start();
  // The bound port (useful with port 0).
  int port() const { return port_; }
  // Requests waiting in the loops' queues now, and their estimated rows.
  // From any thread while the server runs (for gauges).
  struct QueueStats {
    int64_t requests = 0;
    int64_t rows = 0;
  };
  QueueStats Queued() const;
  // Graceful end: stops accepting, lets every request in progress finish and
  // answer (with "Connection: close"), closes idle keep-alive connections,
  // and waits for them all to end, at most `grace`; then Stop().
  void Shutdown(std::chrono::milliseconds grace);
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void Stop();

 private:
  class Loop;
  struct Tls;  // the server's TLS context, when options_.tls is enabled

  ServerOptions options_;
  Handler* handler_;
  int port_ = 0;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
  std::unique_ptr<BackgroundWorker> worker_;
  std::unique_ptr<Tls> tls_;
  std::atomic<bool> stopped_{false};
};

}  // namespace rtml::http
