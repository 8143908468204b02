#include <utility>  // before Boost (Asio under g++ 12 in C++20 mode)

#include "http/server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace rtml::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// "/slow" hands back Deferred work that waits until released; anything else
// answers at once on the loop.
class SlowHandler : public Handler {
 public:
  std::unique_ptr<ThreadState> NewThreadState(asio::io_context&) override { return std::make_unique<ThreadState>(); }
  Deferred Handle(const Request& req, Response& res, ThreadState&, RequestContext&) override {
    if (req.target() != "/slow") {
      res.result(bhttp::status::ok);
      res.body() = "fast";
      return {};
    }
    loop_thread_ = std::this_thread::get_id();  // Handle runs on the loop
    return [this](Response& r) {
      on_worker_ = std::this_thread::get_id() != loop_thread_;
      started_.set_value();
      release_.get_future().wait();
      r.result(bhttp::status::ok);
      r.body() = "slow";
    };
  }
  void HandleUnreadable(bhttp::status status, std::string_view, std::string_view,
                        Response& res) override {
    res.result(status);
  }

  std::promise<void> started_, release_;
  std::thread::id loop_thread_;
  std::atomic<bool> on_worker_{false};
};

std::string Get(int port, const std::string& target) {
  asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  Request req(bhttp::verb::get, target, 11);
  req.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(stream, req);
  boost::beast::flat_buffer buffer;
  Response res;
  bhttp::read(stream, buffer, res);
  return res.body();
}

TEST(HttpServerTest, DeferredWorkRunsOffTheLoopWhichKeepsAnswering) {
  SlowHandler handler;
  HttpServer server({.port = 0, .threads = 1}, &handler);
  ASSERT_TRUE(server.Start().ok());
  auto slow = std::async(std::launch::async, [&] { return Get(server.port(), "/slow"); });
  handler.started_.get_future().wait();  // the slow request's work is running
  EXPECT_EQ(Get(server.port(), "/fast"), "fast");  // the only loop still answers
  EXPECT_EQ(slow.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  handler.release_.set_value();
  EXPECT_EQ(slow.get(), "slow");
  EXPECT_TRUE(handler.on_worker_.load());
  server.Stop();
}

TEST(HttpServerTest, StopsWhileDeferredWorkIsQueued) {
  SlowHandler handler;
  auto server = std::make_unique<HttpServer>(ServerOptions{.port = 0, .threads = 1}, &handler);
  ASSERT_TRUE(server->Start().ok());
  auto slow = std::async(std::launch::async, [&] {
    try {
      return Get(server->port(), "/slow");
    } catch (const std::exception&) {
      return std::string("closed");
    }
  });
  handler.started_.get_future().wait();
  std::thread stopper([&] { server->Stop(); });
  handler.release_.set_value();  // the running job finishes; Stop() then joins
  stopper.join();
  slow.wait();
  SUCCEED();
}

// "/later" is queued work the handler answers later: it keeps the answer
// until "/release" (answered at once) sends it, on the loop.
class LaterHandler : public Handler {
 public:
  std::unique_ptr<ThreadState> NewThreadState(asio::io_context&) override {
    return std::make_unique<ThreadState>();
  }
  bool Queued(const Request& req) const override { return req.target() == "/later"; }
  Deferred Handle(const Request& req, Response& res, ThreadState&,
                  RequestContext& context) override {
    res.result(bhttp::status::ok);
    if (req.target() == "/later") {
      later_ = std::move(context.later);
      held_ = &res;
      taken_.set_value();
      return {};
    }
    res.body() = req.target() == "/release" && later_ ? "released" : "fast";
    if (req.target() == "/release" && later_) {
      held_->body() = "later";
      std::exchange(later_, nullptr)->Send(1, std::chrono::microseconds(5));
    }
    return {};
  }
  void HandleUnreadable(bhttp::status status, std::string_view, std::string_view,
                        Response& res) override {
    res.result(status);
  }

  std::promise<void> taken_;
  std::shared_ptr<LaterAnswer> later_;
  Response* held_ = nullptr;
};

TEST(HttpServerTest, AQueuedRequestAnsweredLaterLeavesTheLoopFree) {
  LaterHandler handler;
  HttpServer server({.port = 0, .threads = 1}, &handler);
  ASSERT_TRUE(server.Start().ok());
  auto later = std::async(std::launch::async, [&] { return Get(server.port(), "/later"); });
  handler.taken_.get_future().wait();  // the handler holds its answer
  EXPECT_EQ(Get(server.port(), "/fast"), "fast");  // the one loop goes on
  EXPECT_EQ(later.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  EXPECT_EQ(Get(server.port(), "/release"), "released");
  EXPECT_EQ(later.get(), "later");
  server.Stop();
}

// "/score" is queued work as big as its body says (an estimate learned from
// nothing yet: 40 bytes a row, 10 us a row); a body of 'h's holds its
// thread until released. "/fast" answers at once. Each records its thread.
class ScoringHandler : public Handler {
 public:
  std::unique_ptr<ThreadState> NewThreadState(asio::io_context&) override {
    return std::make_unique<ThreadState>();
  }
  bool Queued(const Request& req) const override { return req.target() == "/score"; }
  Deferred Handle(const Request& req, Response& res, ThreadState&,
                  RequestContext& context) override {
    res.result(bhttp::status::ok);
    const bool fast = req.target() != "/score";
    (fast ? fast_thread_ : score_thread_) = std::this_thread::get_id();
    if (!fast && !req.body().empty() && req.body()[0] == 'h') {
      ++holding_;
      release_.wait();
    }
    context.rows = 1;
    res.body() = fast ? "fast" : "scored";
    return {};
  }
  void HandleRefused(const Request&, const Status& why, Response& res, ThreadState&) override {
    res.result(why.code() == StatusCode::kUnavailable ? bhttp::status::service_unavailable
                                                      : bhttp::status::gateway_timeout);
    res.body() = why.reason();
  }
  void HandleUnreadable(bhttp::status status, std::string_view, std::string_view,
                        Response& res) override {
    res.result(status);
  }

  std::promise<void> released_;
  std::shared_future<void> release_ = released_.get_future().share();
  std::atomic<int> holding_{0};
  std::thread::id fast_thread_, score_thread_;
};

Response Post(int port, const std::string& body, const std::string& timeout_ms = "") {
  asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  Request req(bhttp::verb::post, "/score", 11);
  req.set(bhttp::field::host, "127.0.0.1");
  if (!timeout_ms.empty()) req.set(kTimeoutHeader, timeout_ms);
  req.body() = body;
  req.prepare_payload();
  bhttp::write(stream, req);
  boost::beast::flat_buffer buffer;
  Response res;
  bhttp::read(stream, buffer, res);
  return res;
}

TEST(HttpServerTest, BigWorkIsScoredOffTheLoopWhichGoesOnAnsweringAndRefusing) {
  ScoringHandler handler;
  ServerOptions options{.port = 0, .threads = 1};
  options.admission.max_queue_ms = 50;
  HttpServer server(options, &handler);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(Get(server.port(), "/fast"), "fast");

  // Big work (2,000 bytes: 50 rows, 0.5 ms at the priors) goes to the
  // scoring thread: one runs there (and holds it), one waits there, one here.
  const std::string big(2000, 'h');
  std::vector<std::future<Response>> held;
  struct Release {  // on every way out, so that a failure does not hang
    ScoringHandler& handler;
    ~Release() {
      try {
        handler.released_.set_value();
      } catch (const std::future_error&) {  // already released
      }
    }
  } release{handler};
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::async(std::launch::async, [&] { return Post(server.port(), big); }));
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (handler.holding_.load() == 0 || server.Queued().requests < 3) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << server.Queued().requests;
    std::this_thread::yield();
  }
  EXPECT_NE(handler.score_thread_, handler.fast_thread_);
  // The loop goes on meanwhile: cheap requests, and small work, which it
  // scores itself.
  EXPECT_EQ(Get(server.port(), "/fast"), "fast");
  EXPECT_EQ(Post(server.port(), "x").body(), "scored");
  EXPECT_EQ(handler.score_thread_, handler.fast_thread_);
  // Big work that cannot meet its deadline behind what is queued: 504,
  // unstarted.
  const Response late = Post(server.port(), std::string(2000, 'x'), "1");
  EXPECT_EQ(late.result(), bhttp::status::gateway_timeout);
  EXPECT_EQ(late.body(), "deadline_exceeded");

  // Once the queue's head has waited past http.max_queue_ms, big work is
  // refused at once, with Retry-After...
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  const Response refused = Post(server.port(), big);
  EXPECT_EQ(refused.result(), bhttp::status::service_unavailable);
  EXPECT_EQ(refused.body(), "queue_wait");
  EXPECT_EQ(refused[bhttp::field::retry_after], "1");
  // ... while small work, served by the loop, is not held up.
  EXPECT_EQ(Post(server.port(), "x").body(), "scored");

  handler.released_.set_value();
  for (auto& f : held) EXPECT_EQ(f.get().body(), "scored");
  server.Stop();
}

}  // namespace
}  // namespace rtml::http
