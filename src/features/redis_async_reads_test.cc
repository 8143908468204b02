// The Redis store's reads from an event loop, against a real redis-server
// (and a server that accepts and never answers, for the stalls).
#include <utility>  // before Boost (Asio under g++ 12 in C++20 mode)

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "features/async_reads.h"
#include "features/redis_store.h"
#include "redis_server.h"

namespace rtml::features {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

constexpr char kDefs[] = R"(
project: test
entities:
  - {name: user, join_key: user_id, dtype: int64}
feature_views:
  - name: user_stats
    entities: [user]
    features:
      - {name: avg_amount, dtype: float}
      - {name: country, dtype: string}
  - name: user_flags
    entities: [user]
    features: [{name: flagged, dtype: bool}]
)";

// One read in flight: its keys, outputs and outcome.
struct Read final : ReadDone {
  std::vector<std::string> keys;
  std::vector<StoredRecord> out, out2;
  std::vector<ReadRequest> requests;
  std::optional<Status> status;
  SteadyClock::time_point answered;
  void OnRead(Status s) override {
    EXPECT_FALSE(status) << "answered twice";
    status = std::move(s);
    answered = SteadyClock::now();
  }
};

class AsyncReadsTest : public ::testing::Test {
 protected:
  void SetUp() override { defs_ = Definitions::Parse(kDefs, ".", "test").value(); }
  const FeatureView& view(const char* name) { return *defs_.FindView(name); }
  std::unique_ptr<Read> Start(AsyncReads& reads, std::vector<std::string> keys,
                              SteadyClock::time_point deadline = SteadyClock::time_point::max()) {
    auto r = std::make_unique<Read>();
    r->keys = std::move(keys);
    r->requests = {{&view("user_stats"), r->keys, &r->out}};
    reads.Read(r->requests, deadline, r.get());
    EXPECT_FALSE(r->status) << "answered within Read()";
    return r;
  }
  // Runs the loop until every read is answered (10 s at most).
  void RunUntil(const std::vector<Read*>& reads) {
    const auto give_up = SteadyClock::now() + std::chrono::seconds(10);
    auto all = [&] {
      for (Read* r : reads) {
        if (!r->status) return false;
      }
      return true;
    };
    while (!all() && SteadyClock::now() < give_up) {
      io_.restart();  // it stops whenever it runs out of work
      io_.run_one_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(all()) << "reads not answered in 10 s";
  }
  static long long Info(int port, const char* field) {
    redisContext* c = redisConnect("127.0.0.1", port);
    auto* r = static_cast<redisReply*>(redisCommand(c, "INFO"));
    std::string info(r->str, r->len);
    freeReplyObject(r);
    redisFree(c);
    const size_t at = info.find(std::string(field) + ":");
    return at == std::string::npos ? -1 : std::stoll(info.substr(at + std::strlen(field) + 1));
  }

  Definitions defs_;
  asio::io_context io_;
};

TEST_F(AsyncReadsTest, ManyReadsShareOneConnectionAndEqualTheSessions) {
  testing::RedisServer redis;
  auto store = NewRedisStore({.port = redis.port(), .key_prefix = "t"});
  auto session = store->NewSession();
  std::vector<WriteRecord> records;
  for (int u = 0; u < 40; u += 2) {
    records.push_back({std::to_string(u), 1000 + u, {std::to_string(u) + ".5", u % 4 ? "DE" : std::optional<std::string>()}});
  }
  WriteCounts counts;
  ASSERT_TRUE(session->Write(view("user_stats"), records, &counts).ok());
  std::vector<WriteRecord> flags{{"4", 7, {"true"}}};
  ASSERT_TRUE(session->Write(view("user_flags"), flags, &counts).ok());

  auto reads = store->NewAsyncReads(io_);
  ASSERT_NE(reads, nullptr);
  const long long connections_before = Info(redis.port(), "total_connections_received");
  // Forty single-entity reads and one of two views, queued in one turn.
  std::vector<std::unique_ptr<Read>> pending;
  for (int u = 0; u < 40; ++u) pending.push_back(Start(*reads, {std::to_string(u)}));
  auto two = std::make_unique<Read>();
  two->keys = {"4", "5"};
  two->requests = {{&view("user_stats"), two->keys, &two->out},
                   {&view("user_flags"), two->keys, &two->out2}};
  reads->Read(two->requests, SteadyClock::time_point::max(), two.get());
  std::vector<Read*> all;
  for (auto& r : pending) all.push_back(r.get());
  all.push_back(two.get());
  RunUntil(all);
  // One connection for all the reads (and one for this INFO).
  EXPECT_EQ(Info(redis.port(), "total_connections_received"), connections_before + 2);

  for (int u = 0; u < 40; ++u) {
    Read& r = *pending[u];
    ASSERT_TRUE(r.status->ok()) << r.status->ToString();
    std::vector<StoredRecord> want;
    std::vector<std::string> key{std::to_string(u)};
    std::vector<ReadRequest> req{{&view("user_stats"), key, &want}};
    ASSERT_TRUE(session->Read(req).ok());
    ASSERT_EQ(r.out.size(), 1u);
    EXPECT_EQ(r.out[0].found, want[0].found) << u;
    EXPECT_EQ(r.out[0].event_ts_us, want[0].event_ts_us) << u;
    EXPECT_EQ(r.out[0].values, want[0].values) << u;
    EXPECT_EQ(r.out[0].found, u % 2 == 0) << u;
  }
  ASSERT_TRUE(two->status->ok());
  EXPECT_EQ(*two->out[0].values[0], "4.5");
  EXPECT_FALSE(two->out[1].found);
  EXPECT_EQ(*two->out2[0].values[0], "true");
  EXPECT_FALSE(two->out2[1].found);
}

TEST_F(AsyncReadsTest, AnErrorReplyFailsOnlyItsReadAndTheNextReadsAreRight) {
  testing::RedisServer redis;
  auto store = NewRedisStore({.port = redis.port(), .key_prefix = "t"});
  std::vector<WriteRecord> records{{"1", 1, {"1.5", "FR"}}, {"3", 3, {"3.5", "DE"}}};
  WriteCounts counts;
  ASSERT_TRUE(store->NewSession()->Write(view("user_stats"), records, &counts).ok());
  redisContext* raw = redisConnect("127.0.0.1", redis.port());
  freeReplyObject(redisCommand(raw, "SET t:fv:user_stats:2 oops"));  // not a hash
  redisFree(raw);
  auto reads = store->NewAsyncReads(io_);
  auto bad = Start(*reads, {"1", "2", "3"});
  auto good = Start(*reads, {"3", "1"});
  RunUntil({bad.get(), good.get()});
  EXPECT_EQ(bad->status->reason(), "feature_store_error");
  EXPECT_NE(bad->status->message().find("WRONGTYPE"), std::string::npos) << bad->status->message();
  ASSERT_TRUE(good->status->ok()) << good->status->ToString();
  EXPECT_EQ(*good->out[0].values[1], "DE");
  EXPECT_EQ(*good->out[1].values[1], "FR");
}

TEST_F(AsyncReadsTest, SelectsTheDatabaseAndAuthenticates) {
  testing::RedisServer redis;
  redisContext* raw = redisConnect("127.0.0.1", redis.port());
  freeReplyObject(redisCommand(raw, "CONFIG SET requirepass s3cret"));
  redisFree(raw);
  RedisOptions o{.port = redis.port(), .db = 3, .password = "s3cret", .key_prefix = "t"};
  auto store = NewRedisStore(o);
  std::vector<WriteRecord> records{{"9", 9, {"9.5", "PL"}}};
  WriteCounts counts;
  ASSERT_TRUE(store->NewSession()->Write(view("user_stats"), records, &counts).ok());
  auto reads = store->NewAsyncReads(io_);
  auto r = Start(*reads, {"9"});
  RunUntil({r.get()});
  ASSERT_TRUE(r->status->ok()) << r->status->ToString();
  EXPECT_EQ(*r->out[0].values[1], "PL");

  o.password = "wrong";
  auto refused_store = NewRedisStore(o);
  auto refused_reads = refused_store->NewAsyncReads(io_);
  auto refused = Start(*refused_reads, {"9"});
  RunUntil({refused.get()});
  EXPECT_EQ(refused->status->reason(), "feature_store_unavailable");
  EXPECT_NE(refused->status->message().find("refused AUTH"), std::string::npos)
      << refused->status->message();
}

TEST_F(AsyncReadsTest, AStalledRedisCostsTheDeadlineThenTheTimeoutThenFailsFast) {
  // A server that accepts connections and never answers.
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> accepted;
  std::function<void()> accept = [&] {
    silent.async_accept([&](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      accepted.push_back(std::make_unique<asio::ip::tcp::socket>(std::move(s)));
      accept();
    });
  };
  accept();
  auto store = NewRedisStore({.port = silent.local_endpoint().port(), .timeout_ms = 150,
                              .retry_after_ms = 60000, .key_prefix = "t"});
  auto reads = store->NewAsyncReads(io_);
  const auto t0 = SteadyClock::now();
  auto cut = Start(*reads, {"1"}, t0 + std::chrono::milliseconds(30));
  auto waits = Start(*reads, {"2"});
  RunUntil({cut.get()});
  const double cut_ms = std::chrono::duration<double, std::milli>(cut->answered - t0).count();
  EXPECT_EQ(cut->status->code(), StatusCode::kUnavailable);
  EXPECT_NE(cut->status->message().find("deadline"), std::string::npos) << cut->status->message();
  EXPECT_GE(cut_ms, 30);
  EXPECT_LT(cut_ms, 60);
  EXPECT_FALSE(waits->status) << "a read without a deadline waits for the store's timeout";
  RunUntil({waits.get()});
  const double waited_ms = std::chrono::duration<double, std::milli>(waits->answered - t0).count();
  EXPECT_NE(waits->status->message().find("did not answer within 150 ms"), std::string::npos)
      << waits->status->message();
  EXPECT_GE(waited_ms, 150);
  EXPECT_LT(waited_ms, 400);
  // The breaker is open: the next read fails at once, without a connection.
  const size_t connections = accepted.size();
  auto fast = Start(*reads, {"3"});
  RunUntil({fast.get()});
  EXPECT_NE(fast->status->message().find("retrying every 60000 ms"), std::string::npos)
      << fast->status->message();
  EXPECT_EQ(accepted.size(), connections);
}

TEST_F(AsyncReadsTest, AnIdleConnectionRedisClosedIsReopenedWithoutAFailure) {
  testing::RedisServer redis;
  auto store = NewRedisStore({.port = redis.port(), .retry_after_ms = 60000, .key_prefix = "t"});
  auto reads = store->NewAsyncReads(io_);
  auto first = Start(*reads, {"1"});
  RunUntil({first.get()});
  ASSERT_TRUE(first->status->ok());
  redisContext* raw = redisConnect("127.0.0.1", redis.port());
  freeReplyObject(redisCommand(raw, "CLIENT KILL TYPE normal SKIPME yes"));
  redisFree(raw);
  io_.run_for(std::chrono::milliseconds(100));  // the loop sees the close
  auto second = Start(*reads, {"1"});
  RunUntil({second.get()});
  EXPECT_TRUE(second->status->ok()) << second->status->ToString();
}

// A Redis stand-in on the test's loop: answers each HMGET of a 2-feature
// view with one record, after `delay`; `close_after` commands on its first
// connection, it closes that connection instead of answering.
class FakeRedis {
 public:
  FakeRedis(asio::io_context& io, std::chrono::milliseconds delay, int close_after = -1)
      : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), delay_(delay),
        close_after_(close_after) {
    Accept();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int connections() const { return connections_; }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io), timer(io) {}
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    std::array<char, 4096> in;
    std::string out;
    int seen = 0;
    bool first = false;
  };
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<Conn>(io_);
      c->socket = std::move(s);
      c->first = connections_++ == 0;
      ReadFrom(c);
      Accept();
    });
  }
  void ReadFrom(std::shared_ptr<Conn> c) {
    c->socket.async_read_some(asio::buffer(c->in), [this, c](boost::system::error_code ec,
                                                              size_t n) {
      if (ec) return;
      std::string_view data(c->in.data(), n);
      int commands = 0;
      for (size_t at = data.find("HMGET"); at != std::string_view::npos;
           at = data.find("HMGET", at + 1)) {
        ++commands;
      }
      c->seen += commands;
      if (c->first && close_after_ >= 0 && c->seen > close_after_) {
        boost::system::error_code ignored;
        c->socket.close(ignored);
        return;
      }
      for (int i = 0; i < commands; ++i) c->out += "*3\r\n$4\r\n1000\r\n$3\r\n1.5\r\n$2\r\nDE\r\n";
      c->timer.expires_after(delay_);
      c->timer.async_wait([c](boost::system::error_code) {
        auto out = std::make_shared<std::string>(std::exchange(c->out, {}));
        asio::async_write(c->socket, asio::buffer(*out), [c, out](boost::system::error_code, size_t) {});
      });
      ReadFrom(c);
    });
  }
  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  std::chrono::milliseconds delay_;
  int close_after_;
  int connections_ = 0;
};

TEST_F(AsyncReadsTest, RepliesThatComeAfterTheDeadlineTouchNothingOfTheCaller) {
  FakeRedis redis(io_, std::chrono::milliseconds(60));
  auto store = NewRedisStore({.port = redis.port(), .timeout_ms = 1000, .key_prefix = "t"});
  auto reads = store->NewAsyncReads(io_);
  auto cut = Start(*reads, {"1", "2"}, SteadyClock::now() + std::chrono::milliseconds(20));
  auto waits = Start(*reads, {"3"});
  RunUntil({cut.get()});
  EXPECT_NE(cut->status->message().find("deadline"), std::string::npos);
  cut.reset();  // the caller is gone: its late replies must not be written anywhere
  RunUntil({waits.get()});
  ASSERT_TRUE(waits->status->ok()) << waits->status->ToString();
  ASSERT_TRUE(waits->out[0].found);
  EXPECT_EQ(*waits->out[0].values[1], "DE");
}

TEST_F(AsyncReadsTest, AConnectionThatDropsWithReadsInFlightIsRetriedOnceOnANewOne) {
  // The first connection answers one read, then closes on the next.
  FakeRedis redis(io_, std::chrono::milliseconds(0), /*close_after=*/1);
  auto store = NewRedisStore({.port = redis.port(), .retry_after_ms = 60000, .key_prefix = "t"});
  auto reads = store->NewAsyncReads(io_);
  auto first = Start(*reads, {"1"});
  RunUntil({first.get()});
  ASSERT_TRUE(first->status->ok());
  auto second = Start(*reads, {"2"});
  RunUntil({second.get()});
  EXPECT_TRUE(second->status->ok()) << second->status->ToString();
  EXPECT_EQ(redis.connections(), 2);
  // The breaker was not told: the next read goes through.
  auto third = Start(*reads, {"3"});
  RunUntil({third.get()});
  EXPECT_TRUE(third->status->ok()) << third->status->ToString();
}

}  // namespace
}  // namespace rtml::features
