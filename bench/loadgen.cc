// loadgen: an open-loop HTTP load generator for overload benchmarks.
//
// Requests are due at a fixed rate whatever the server does (open loop, as
// real clients behave), each sent on a free keep-alive connection (up to
// --connections, opened as needed); a request that finds none waits client
// side and its latency still counts from when it was due, so a slow server
// cannot hide its queue (no coordinated omission). Latencies are kept per
// outcome: answered 200, refused 503 (with or without Retry-After), 504, and
// anything else; a separate connection probes GET /healthz every
// --health-every-ms. With --pid, the server's resident memory is sampled.
//
//   loadgen --port P --body FILE [--path /predict] [--rate R] [--duration S]
//           [--connections C] [--header 'Name: value'] [--health-every-ms 20]
//           [--pid PID] [--warmup 1] [--closed]
//
// The first --warmup seconds (connections opening, caches warming) are not
// counted: rates and percentiles are over the rest.
// --closed: no schedule; each connection sends its next request as soon as
// its answer arrives (to measure the best throughput). Prints one JSON
// object.
#include <utility>  // before Boost (Asio under g++ 12 in C++20 mode)

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int port = 8080;
  std::string path = "/predict";
  std::string body_file;
  double rate = 1000;
  double duration_s = 10;
  int connections = 256;
  std::vector<std::string> headers;
  int health_every_ms = 20;
  int pid = 0;
  bool closed = false;
  double warmup_s = 1;  // answers to requests due this early are not counted
};

struct Stats {
  std::map<std::string, std::vector<double>> latency_ms;  // by outcome
  std::map<std::string, int64_t> completed;               // by outcome
  int64_t retry_after_503 = 0;
  int64_t connect_errors = 0, io_errors = 0;
  std::vector<double> health_ms;
  int64_t health_failures = 0;
  int64_t max_rss_kb = 0;
  int64_t due = 0, sent = 0;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

class Generator {
 public:
  Generator(asio::io_context& io, const Options& o, std::string request)
      : io_(io), o_(o), request_(std::move(request)), tick_(io), health_timer_(io),
        rss_timer_(io), endpoint_(asio::ip::make_address("127.0.0.1"), o.port) {}

  void Start() {
    t0_ = Clock::now();
    warmup_ = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(o_.warmup_s));
    end_ = t0_ + std::chrono::milliseconds(static_cast<int64_t>(o_.duration_s * 1000));
    if (o_.closed) {
      for (int i = 0; i < o_.connections; ++i) Due(Clock::now());
    } else {
      Tick();
    }
    if (o_.health_every_ms > 0) Health();
    if (o_.pid > 0) SampleRss();
  }
  Stats& stats() { return stats_; }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : stream(io) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    Clock::time_point due;
  };

  void Tick() {
    const auto now = Clock::now();
    if (now >= end_) return Finish();
    const auto want = static_cast<int64_t>(Ms(now - t0_) / 1000 * o_.rate);
    while (stats_.due < want) {
      ++stats_.due;
      Due(t0_ + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(static_cast<double>(stats_.due) / o_.rate)));
    }
    tick_.expires_after(std::chrono::microseconds(200));
    tick_.async_wait([this](beast::error_code) { Tick(); });
  }

  void Due(Clock::time_point due) {
    if (!idle_.empty()) {
      std::shared_ptr<Conn> c = idle_.back();
      idle_.pop_back();
      return Send(c, due);
    }
    if (open_ < o_.connections) return Open(due);
    backlog_.push_back(due);  // every connection busy: waits client side
  }

  void Open(Clock::time_point due) {
    ++open_;
    auto c = std::make_shared<Conn>(io_);
    c->stream.async_connect(endpoint_, [this, c, due](beast::error_code ec) {
      if (ec) {
        ++stats_.connect_errors;
        --open_;
        return;
      }
      c->stream.socket().set_option(tcp::no_delay(true));
      Send(c, due);
    });
  }

  void Send(const std::shared_ptr<Conn>& c, Clock::time_point due) {
    if (done_) return;
    c->due = due;
    ++stats_.sent;
    asio::async_write(c->stream.socket(), asio::buffer(request_),
                      [this, c](beast::error_code ec, size_t) {
                        if (ec) return Broken(c);
                        c->res = {};
                        bhttp::async_read(c->stream, c->buffer, c->res,
                                          [this, c](beast::error_code ec, size_t) {
                                            if (ec) return Broken(c);
                                            Answered(c);
                                          });
                      });
  }

  void Answered(const std::shared_ptr<Conn>& c) {
    const unsigned code = c->res.result_int();
    const std::string outcome = code == 200 || code == 503 || code == 504
                                    ? std::to_string(code)
                                    : "other";
    // Throughput counts what completes after the warm-up; latency, what was
    // due after it.
    const auto now = Clock::now();
    if (now >= t0_ + warmup_) ++stats_.completed[outcome];
    if (c->due < t0_ + warmup_) return Next(c);
    stats_.latency_ms[outcome].push_back(Ms(now - c->due));
    if (code == 503 && c->res.find(bhttp::field::retry_after) != c->res.end()) {
      ++stats_.retry_after_503;
    }
    Next(c);
  }

  // The connection is free again: its next request, if one is waiting.
  void Next(const std::shared_ptr<Conn>& c) {
    if (done_) return;
    if (!c->res.keep_alive()) {  // the server closes it: open another
      --open_;
      if (o_.closed) return Open(Clock::now());
      if (!backlog_.empty()) {
        const auto due = backlog_.front();
        backlog_.pop_front();
        Open(due);
      }
      return;
    }
    if (o_.closed) return Send(c, Clock::now());
    if (!backlog_.empty()) {
      const auto due = backlog_.front();
      backlog_.pop_front();
      return Send(c, due);
    }
    idle_.push_back(c);
  }

  void Broken(const std::shared_ptr<Conn>& c) {
    if (done_) return;
    ++stats_.io_errors;
    --open_;
    beast::error_code ignored;
    c->stream.socket().close(ignored);
    if (o_.closed) Open(Clock::now());
  }

  void Health() {
    if (done_) return;
    auto c = std::make_shared<Conn>(io_);
    const auto start = Clock::now();
    c->stream.expires_after(std::chrono::seconds(2));
    c->stream.async_connect(endpoint_, [this, c, start](beast::error_code ec) {
      if (ec) return HealthDone(false, start);
      static const std::string kGet = "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";
      asio::async_write(c->stream.socket(), asio::buffer(kGet),
                        [this, c, start](beast::error_code ec, size_t) {
                          if (ec) return HealthDone(false, start);
                          bhttp::async_read(c->stream, c->buffer, c->res,
                                            [this, c, start](beast::error_code ec, size_t) {
                                              HealthDone(!ec && c->res.result_int() == 200,
                                                         start);
                                            });
                        });
    });
  }

  void HealthDone(bool ok, Clock::time_point start) {
    if (start < t0_ + warmup_) {
      // not counted
    } else if (ok) {
      stats_.health_ms.push_back(Ms(Clock::now() - start));
    } else {
      ++stats_.health_failures;
    }
    health_timer_.expires_at(start + std::chrono::milliseconds(o_.health_every_ms));
    health_timer_.async_wait([this](beast::error_code) { Health(); });
  }

  void SampleRss() {
    std::ifstream f("/proc/" + std::to_string(o_.pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("VmRSS:", 0) == 0) {
        stats_.max_rss_kb = std::max<int64_t>(stats_.max_rss_kb, std::atoll(line.c_str() + 6));
      }
    }
    if (done_) return;
    rss_timer_.expires_after(std::chrono::milliseconds(50));
    rss_timer_.async_wait([this](beast::error_code) { SampleRss(); });
  }

  void Finish() {
    done_ = true;
    elapsed_s_ = Ms(Clock::now() - t0_) / 1000;
    io_.stop();
  }

 public:
  // The counted time (after the warm-up).
  double elapsed_s() const {
    return std::max(1e-3, (elapsed_s_ > 0 ? elapsed_s_ : o_.duration_s) - o_.warmup_s);
  }
  void StopAt() {
    tick_.expires_at(end_);
    tick_.async_wait([this](beast::error_code) { Finish(); });
  }

 private:
  asio::io_context& io_;
  const Options& o_;
  std::string request_;
  asio::steady_timer tick_, health_timer_, rss_timer_;
  tcp::endpoint endpoint_;
  Clock::time_point t0_, end_;
  Clock::duration warmup_{};
  std::vector<std::shared_ptr<Conn>> idle_;
  std::deque<Clock::time_point> backlog_;
  int open_ = 0;
  bool done_ = false;
  double elapsed_s_ = 0;
  Stats stats_;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void Print(Stats& s, double elapsed_s, double offered_per_s) {
  std::printf("{\"elapsed_s\": %.3f, \"offered_per_s\": %.1f, \"due\": %lld, \"sent\": %lld, "
              "\"outcomes\": {",
              elapsed_s, offered_per_s, static_cast<long long>(s.due),
              static_cast<long long>(s.sent));
  bool first = true;
  for (auto& [outcome, v] : s.latency_ms) {
    std::printf("%s\"%s\": {\"count\": %zu, \"per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
                "\"max_ms\": %.3f}",
                first ? "" : ", ", outcome.c_str(), v.size(),
                static_cast<double>(s.completed[outcome]) / elapsed_s, Percentile(v, 0.5),
                Percentile(v, 0.99), Percentile(v, 1.0));
    first = false;
  }
  std::printf("}, \"retry_after_503\": %lld, \"connect_errors\": %lld, \"io_errors\": %lld, "
              "\"health\": {\"count\": %zu, \"failures\": %lld, \"p50_ms\": %.3f, "
              "\"p99_ms\": %.3f, \"max_ms\": %.3f}, \"max_rss_mb\": %.1f}\n",
              static_cast<long long>(s.retry_after_503), static_cast<long long>(s.connect_errors),
              static_cast<long long>(s.io_errors), s.health_ms.size(),
              static_cast<long long>(s.health_failures), Percentile(s.health_ms, 0.5),
              Percentile(s.health_ms, 0.99), Percentile(s.health_ms, 1.0),
              static_cast<double>(s.max_rss_kb) / 1024);
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--closed") {
      o->closed = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (k == "--port") o->port = std::atoi(v.c_str());
    else if (k == "--path") o->path = v;
    else if (k == "--body") o->body_file = v;
    else if (k == "--rate") o->rate = std::atof(v.c_str());
    else if (k == "--duration") o->duration_s = std::atof(v.c_str());
    else if (k == "--connections") o->connections = std::atoi(v.c_str());
    else if (k == "--header") o->headers.push_back(v);
    else if (k == "--health-every-ms") o->health_every_ms = std::atoi(v.c_str());
    else if (k == "--pid") o->pid = std::atoi(v.c_str());
    else if (k == "--warmup") o->warmup_s = std::atof(v.c_str());
    else return false;
  }
  return !o->body_file.empty() && o->rate > 0 && o->connections > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: loadgen --port P --body FILE [--path /predict] [--rate R] "
                 "[--duration S] [--connections C] [--header 'Name: value'] "
                 "[--health-every-ms 20] [--pid PID] [--warmup 1] [--closed]\n");
    return 2;
  }
  std::ifstream f(o.body_file);
  if (!f) {
    std::fprintf(stderr, "loadgen: cannot read %s\n", o.body_file.c_str());
    return 2;
  }
  std::stringstream body;
  body << f.rdbuf();
  std::string request = "POST " + o.path + " HTTP/1.1\r\nHost: bench\r\n" +
                        "Content-Type: application/json\r\n";
  for (const auto& h : o.headers) request += h + "\r\n";
  request += "Content-Length: " + std::to_string(body.str().size()) + "\r\n\r\n" + body.str();
  asio::io_context io(1);
  Generator g(io, o, std::move(request));
  g.Start();
  if (o.closed) g.StopAt();
  io.run();
  Print(g.stats(), g.elapsed_s(), o.closed ? 0 : o.rate);
  return 0;
}
