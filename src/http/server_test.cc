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

}  // namespace
}  // namespace rtml::http
