// OnlineStore backends against the same expectations: memory, RocksDB in a
// temporary folder, and a real redis-server on a free port.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <filesystem>

#include "features/online_reader.h"
#include "features/redis_store.h"
#include "features/rocksdb_store.h"
#include "redis_server.h"

namespace rtml::features {
namespace {

constexpr char kDefs[] = R"(
project: test
entities:
  - {name: user, join_key: user_id, dtype: int64}
  - {name: merchant, join_key: merchant_id, dtype: string}
feature_views:
  - name: user_stats
    entities: [user]
    ttl_seconds: 3600
    features:
      - {name: avg_amount, dtype: float}
      - {name: txn_count, dtype: int64}
      - {name: country, dtype: string}
  - name: pair
    entities: [user, merchant]
    features: [{name: visits, dtype: int64}]
feature_services:
  - {name: svc, features: [user_stats:avg_amount, pair:visits, user_stats:country]}
)";

constexpr int64_t kHour = 3600LL * 1000000;

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    defs_ = Definitions::Parse(kDefs, ".", "test").value();
    Open();
  }
  void TearDown() override {
    session_.reset();
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void Open() {
    session_.reset();
    store_.reset();
    if (GetParam() == "memory") {
      store_ = NewMemoryStore();
    } else if (GetParam() == "rocksdb") {
      if (dir_.empty()) {
        dir_ = std::filesystem::temp_directory_path() /
               ("rtml_store_test_" + std::to_string(getpid()));
      }
      store_ = OpenRocksDbStore({.path = dir_.string()}).value();
    } else {
      if (!redis_) redis_ = std::make_unique<testing::RedisServer>();
      // A fresh key prefix per test: the server is shared by the suite.
      static int n = 0;
      store_ = NewRedisStore({.port = redis_->port(), .retry_after_ms = 100,
                              .key_prefix = "test" + std::to_string(++n)}, clock_);
    }
    session_ = store_->NewSession();
  }

  WriteCounts Write(const std::string& view, int64_t ts, std::string key,
                    std::vector<EncodedValue> values) {
    WriteCounts c;
    std::vector<WriteRecord> recs{{std::move(key), ts, std::move(values)}};
    Status s = session_->Write(*defs_.FindView(view), recs, &c);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return c;
  }

  std::vector<OnlineReader::Cell> Get(std::vector<std::string> join_values, size_t rows,
                                      int64_t now) {
    auto reader = OnlineReader::Create(defs_, defs_.FindService("svc")->features).value();
    reader_ = std::make_unique<OnlineReader>(std::move(reader));
    Status s = reader_->Read(*session_, rows, join_values, &scratch_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::vector<OnlineReader::Cell> out;
    for (size_t r = 0; r < rows; ++r) {
      for (size_t f = 0; f < reader_->refs().size(); ++f) {
        out.push_back(reader_->Get(scratch_, r, f, now));
      }
    }
    return out;
  }

  Definitions defs_;
  FakeClock clock_{0};
  std::filesystem::path dir_;
  std::unique_ptr<OnlineStore> store_;
  std::unique_ptr<StoreSession> session_;
  std::unique_ptr<OnlineReader> reader_;
  OnlineReader::Scratch scratch_;
  static std::unique_ptr<testing::RedisServer> redis_;
};
std::unique_ptr<testing::RedisServer> StoreTest::redis_;

TEST_P(StoreTest, PushThenGetReturnsValuesPresent) {
  Write("user_stats", 10 * kHour, "7", {"12.5", "3", "FR"});
  Write("pair", 10 * kHour, EntityKeyOf(std::vector<std::string>{"7", "m1"}), {"4"});
  auto cells = Get({"7", "m1"}, 1, 10 * kHour + 1);
  ASSERT_EQ(reader_->join_keys(), (std::vector<std::string>{"user_id", "merchant_id"}));
  ASSERT_EQ(cells.size(), 3u);
  for (const auto& c : cells) EXPECT_EQ(c.status, FeatureStatus::kPresent);
  EXPECT_EQ(**cells[0].value, "12.5");
  EXPECT_EQ(**cells[1].value, "4");
  EXPECT_EQ(**cells[2].value, "FR");
  EXPECT_EQ(cells[0].event_ts_us, 10 * kHour);
}

TEST_P(StoreTest, OlderEventNeverOverwritesNewer) {
  EXPECT_EQ(Write("user_stats", 10 * kHour, "7", {"1", "1", "A"}).written, 1u);
  WriteCounts c = Write("user_stats", 9 * kHour, "7", {"2", "2", "B"});
  EXPECT_EQ(c.written, 0u);
  EXPECT_EQ(c.stale, 1u);
  EXPECT_EQ(**Get({"7", "m"}, 1, 10 * kHour)[0].value, "1");
  EXPECT_EQ(Write("user_stats", 11 * kHour, "7", {"3", std::nullopt, "C"}).written, 1u);
  auto cells = Get({"7", "m"}, 1, 11 * kHour);
  EXPECT_EQ(**cells[0].value, "3");
}

TEST_P(StoreTest, StatusesNotFoundNullAndOutsideMaxAge) {
  Write("user_stats", 10 * kHour, "7", {std::nullopt, "1", "FR"});
  auto cells = Get({"7", "m", "8", "m"}, 2, 10 * kHour + 5);
  EXPECT_EQ(cells[0].status, FeatureStatus::kNullValue);  // avg_amount null
  EXPECT_EQ(cells[1].status, FeatureStatus::kNotFound);   // no pair record
  EXPECT_EQ(cells[2].status, FeatureStatus::kPresent);
  EXPECT_EQ(cells[3].status, FeatureStatus::kNotFound);   // unknown user 8
  EXPECT_EQ(cells[5].status, FeatureStatus::kNotFound);
  // The view's TTL is an hour.
  auto later = Get({"7", "m"}, 1, 11 * kHour + 1);
  EXPECT_EQ(later[2].status, FeatureStatus::kOutsideMaxAge);
  EXPECT_EQ(later[2].value, nullptr);
}

TEST_P(StoreTest, MetadataRoundTrips) {
  EXPECT_FALSE(session_->GetMeta("registry").value().has_value());
  ASSERT_TRUE(session_->PutMeta("registry", "{\"v\":1}").ok());
  EXPECT_EQ(*session_->GetMeta("registry").value(), "{\"v\":1}");
}

TEST_P(StoreTest, WriteStateReplacesRecordsAndSetsMetadataTogether) {
  const FeatureView& view = *defs_.FindView("user_stats");
  std::string binary("a\0b\xff", 4);  // states are bytes
  std::vector<WriteRecord> recs{{"1", 200, {binary, std::nullopt}}};
  std::vector<std::pair<std::string, std::string>> meta{{"agg_offset/v/t/0", "42"}};
  ASSERT_TRUE(session_->WriteState(view, recs, meta).ok());
  recs[0].event_ts_us = 100;  // not last-writer-wins: the state's owner replaces it
  recs[0].values[0] = std::string("new");
  meta[0].second = "43";
  ASSERT_TRUE(session_->WriteState(view, recs, meta).ok());
  EXPECT_EQ(session_->GetMeta("agg_offset/v/t/0")->value_or(""), "43");
  std::vector<StoredRecord> out;
  std::vector<std::string> keys{"1"};
  const ReadRequest req{&view, keys, &out};
  ASSERT_TRUE(session_->Read(std::span<const ReadRequest>(&req, 1)).ok());
  ASSERT_TRUE(out[0].found);
  EXPECT_EQ(out[0].event_ts_us, 100);
  EXPECT_EQ(out[0].values[0].value_or(""), "new");
  recs[0].values[0] = binary;
  ASSERT_TRUE(session_->WriteState(view, recs, {}).ok());
  ASSERT_TRUE(session_->Read(std::span<const ReadRequest>(&req, 1)).ok());
  EXPECT_EQ(out[0].values[0].value_or(""), binary);
}

TEST_P(StoreTest, ManyEntitiesInOneRead) {
  std::vector<WriteRecord> recs;
  for (int i = 0; i < 300; ++i) {
    recs.push_back({std::to_string(i), kHour, {EncodeFloat(i * 0.5), EncodeInt(i), "X"}});
  }
  WriteCounts c;
  ASSERT_TRUE(session_->Write(*defs_.FindView("user_stats"), recs, &c).ok());
  EXPECT_EQ(c.written, 300u);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.insert(keys.end(), {std::to_string(i), "m"});
  auto cells = Get(keys, 300, kHour);
  EXPECT_EQ(**cells[3 * 123].value, "61.5");
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("memory", "rocksdb", "redis"));

TEST(RocksDbStoreTest, PersistsAcrossReopenAndRefusesASecondOpener) {
  auto defs = Definitions::Parse(kDefs, ".", "test").value();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("rtml_rocks_persist_" + std::to_string(getpid()));
  {
    auto store = OpenRocksDbStore({.path = dir.string()}).value();
    WriteCounts c;
    std::vector<WriteRecord> recs{{"1", kHour, {"1.5", "2", "DE"}}};
    ASSERT_TRUE(store->NewSession()->Write(*defs.FindView("user_stats"), recs, &c).ok());
    auto second = OpenRocksDbStore({.path = dir.string()});
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.status().message().find("another process"), std::string::npos)
        << second.status().message();
  }
  auto store = OpenRocksDbStore({.path = dir.string()}).value();
  std::vector<StoredRecord> out;
  std::vector<std::string> keys{"1"};
  std::vector<ReadRequest> req{{defs.FindView("user_stats"), keys, &out}};
  ASSERT_TRUE(store->NewSession()->Read(req).ok());
  ASSERT_TRUE(out[0].found);
  EXPECT_EQ(*out[0].values[2], "DE");
  std::filesystem::remove_all(dir);
}

// A Redis store session on a real redis-server, its breaker's cool-down
// (1 s) on a clock the test moves, and a read of one user_stats entity.
class RedisBreakerTest : public ::testing::Test {
 protected:
  Status Read(std::string entity) {
    keys_ = {std::move(entity)};
    std::vector<ReadRequest> req{{defs_.FindView("user_stats"), keys_, &out_}};
    return session_->Read(req);
  }
  // A command on a connection of its own, its reply dropped.
  void Command(const char* command) {
    redisContext* raw = redisConnect("127.0.0.1", redis_.port());
    ASSERT_TRUE(raw != nullptr && raw->err == 0);
    freeReplyObject(redisCommand(raw, command));
    redisFree(raw);
  }

  Definitions defs_ = Definitions::Parse(kDefs, ".", "test").value();
  testing::RedisServer redis_;
  FakeClock clock_{0};
  std::unique_ptr<OnlineStore> store_ = NewRedisStore(
      {.port = redis_.port(), .timeout_ms = 200, .retry_after_ms = 1000, .key_prefix = "t"},
      clock_);
  std::unique_ptr<StoreSession> session_ = store_->NewSession();
  std::vector<std::string> keys_;
  std::vector<StoredRecord> out_;
};

TEST_F(RedisBreakerTest, FailsFastWhileDownAndRecoversByItself) {
  ASSERT_TRUE(Read("1").ok());
  redis_.Stop();
  Status down = Read("1");
  EXPECT_EQ(down.code(), StatusCode::kUnavailable);
  EXPECT_EQ(down.reason(), "feature_store_unavailable");
  // While the breaker is open, no connection is even tried.
  Status fast = Read("1");
  EXPECT_NE(fast.message().find("retrying every 1000 ms"), std::string::npos) << fast.message();
  redis_.Restart();
  EXPECT_FALSE(Read("1").ok());  // still cooling down
  clock_.Advance(1'000'001);
  Status back = Read("1");
  EXPECT_TRUE(back.ok()) << back.ToString();
}

// The trial call after an outage answered with an error reply (Redis is up;
// the key is not a hash): the breaker closes, instead of staying half-open
// with every later call refused as "unavailable".
TEST_F(RedisBreakerTest, AnErrorReplyToTheTrialCallClosesTheBreaker) {
  ASSERT_TRUE(Read("1").ok());
  redis_.Stop();
  EXPECT_EQ(Read("1").reason(), "feature_store_unavailable");
  redis_.Restart();
  Command("SET t:fv:user_stats:2 oops");
  clock_.Advance(1'000'001);
  Status trial = Read("2");
  EXPECT_EQ(trial.reason(), "feature_store_error");
  EXPECT_NE(trial.message().find("WRONGTYPE"), std::string::npos) << trial.message();
  Status next = Read("1");  // the clock has not moved
  EXPECT_TRUE(next.ok()) << next.ToString();
}

// An error reply that says Redis cannot serve yet (here BUSY: a script runs
// past busy-reply-threshold) opens the breaker like a failed connection;
// once the script is gone and the cool-down passed, reads work again.
TEST_F(RedisBreakerTest, ABusyRedisOpensTheBreakerUntilItServesAgain) {
  ASSERT_TRUE(Read("1").ok());
  Command("CONFIG SET busy-reply-threshold 10");
  redisContext* script = redisConnect("127.0.0.1", redis_.port());
  ASSERT_TRUE(script != nullptr && script->err == 0);
  redisAppendCommand(script, "EVAL %s 0", "while true do end");
  int done = 0;
  while (!done) ASSERT_EQ(redisBufferWrite(script, &done), REDIS_OK);
  Status busy;
  for (int i = 0; busy.ok(); ++i) {  // until Redis says BUSY (after 10 ms of script)
    ASSERT_LT(i, 500) << "Redis never answered BUSY";
    usleep(10'000);
    busy = Read("1");
  }
  EXPECT_EQ(busy.reason(), "feature_store_error");
  EXPECT_NE(busy.message().find("BUSY"), std::string::npos) << busy.message();
  Status open = Read("1");  // the breaker is open: no call made
  EXPECT_NE(open.message().find("retrying every 1000 ms"), std::string::npos) << open.message();
  Command("SCRIPT KILL");
  redisFree(script);
  clock_.Advance(1'000'001);
  Status back = Read("1");
  EXPECT_TRUE(back.ok()) << back.ToString();
}

TEST(RedisStoreTest, AnErrorReplyMidBatchLeavesNoRepliesBehind) {
  auto defs = Definitions::Parse(kDefs, ".", "test").value();
  testing::RedisServer redis;
  auto store = NewRedisStore({.port = redis.port(), .key_prefix = "t"});
  auto session = store->NewSession();
  const FeatureView* view = defs.FindView("user_stats");
  WriteCounts counts;
  std::vector<WriteRecord> recs{{"1", kHour, {"1.5", "1", "FR"}}, {"3", kHour, {"3.5", "3", "DE"}}};
  ASSERT_TRUE(session->Write(*view, recs, &counts).ok());
  // Entity 2's key holds a string, not a hash: its HMGET is an error reply.
  redisContext* raw = redisConnect("127.0.0.1", redis.port());
  ASSERT_TRUE(raw != nullptr && raw->err == 0);
  freeReplyObject(redisCommand(raw, "SET t:fv:user_stats:2 oops"));
  redisFree(raw);
  std::vector<StoredRecord> out;
  std::vector<std::string> all{"1", "2", "3"};
  std::vector<ReadRequest> batch{{view, all, &out}};
  Status s = session->Read(batch);
  EXPECT_EQ(s.reason(), "feature_store_error");
  EXPECT_NE(s.message().find("WRONGTYPE"), std::string::npos) << s.message();
  // Entity 3's reply was not left on the connection to answer the next read.
  for (const char* entity : {"1", "3"}) {
    std::vector<std::string> one{entity};
    std::vector<ReadRequest> req{{view, one, &out}};
    ASSERT_TRUE(session->Read(req).ok());
    ASSERT_TRUE(out[0].found) << entity;
    EXPECT_EQ(out[0].values[1], std::string(entity)) << "entity " << entity << " read another's values";
  }
}

}  // namespace
}  // namespace rtml::features
