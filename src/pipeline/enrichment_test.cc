// Scoring with inputs from the online feature store: key-only requests equal
// explicit ones, fallbacks to defaults with Feast statuses, and a Redis
// outage that degrades instead of failing, then recovers by itself.
#include <gtest/gtest.h>

#include "features/redis_store.h"
#include "pipeline/scorer.h"
#include "redis_server.h"

namespace rtml::pipeline {
namespace {

const std::string kData = std::string(RTML_SOURCE_DIR) + "/tests/testdata/";
constexpr int64_t kT0 = 1795651200LL * 1000000;  // 2026-11-26T00:00:00Z

class EnrichmentTest : public ::testing::Test {
 protected:
  void Build(std::unique_ptr<features::OnlineStore> online) {
    auto defs = features::Definitions::Load(kData + "features/features.yaml");
    ASSERT_TRUE(defs.ok()) << defs.status().ToString();
    store_ = std::make_unique<features::FeatureStore>(std::move(defs).value(), std::move(online),
                                                      clock_);
    auto scorer = Scorer::Create({.path = kData + "models_fs"}, store_.get(), {}, &metrics_);
    ASSERT_TRUE(scorer.ok()) << scorer.status().ToString();
    scorer_ = std::move(scorer).value();
  }

  void Push(int64_t user, double f3, std::optional<double> f4, int64_t ts_us) {
    std::string body = R"({"push_source_name": "user_stats", "df": {"user_id": [)" +
                       std::to_string(user) + R"(], "event_timestamp": [)" +
                       std::to_string(ts_us / 1e6) + R"(], "f3": [)" + std::to_string(f3) +
                       R"(], "f4": [)" + (f4 ? std::to_string(*f4) : "null") +
                       R"(], "country": ["FR"]}})";
    auto session = store_->online().NewSession();
    std::string out;
    Status s = store_->PushJson(body, *session, &out);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  simdjson::dom::element Score(std::string_view body) {
    Status s = scorer_->ScoreJson({}, body, &scratch_, &response_);
    EXPECT_TRUE(s.ok()) << body << " -> " << s.ToString();
    return parser_.parse(response_);
  }

  FakeClock clock_{kT0 + 60'000'000};
  observability::Registry metrics_;
  std::unique_ptr<features::FeatureStore> store_;
  std::unique_ptr<Scorer> scorer_;
  ScoreScratch scratch_;
  std::string response_;
  simdjson::dom::parser parser_;
};

TEST_F(EnrichmentTest, KeyOnlyRequestScoresLikeTheExplicitOne) {
  Build(features::NewMemoryStore());
  Push(1, 1.5, -2.0, kT0);
  auto enriched = Score(R"({"user_id": 1, "f1": 0.5, "f2": 3})");
  const double p = double(enriched["prediction"]);
  EXPECT_EQ(std::string_view(enriched["feature_store"]), "ok");
  EXPECT_EQ(enriched["feature_statuses"].get_object().size(), 0u);
  auto defaulted = enriched["defaulted"].get_array();
  ASSERT_EQ(defaulted.size(), 2u);  // f0 and f5 only; f3, f4 came from the store
  auto explicit_row = Score(R"({"features": {"f1": 0.5, "f2": 3, "f3": 1.5, "f4": -2.0}})");
  EXPECT_EQ(double(explicit_row["prediction"]), p);
  // A value in the request wins over the stored one.
  auto overridden = Score(R"({"features": {"user_id": 1, "f1": 0.5, "f2": 3, "f3": 9}})");
  EXPECT_NE(double(overridden["prediction"]), p);
}

TEST_F(EnrichmentTest, MissingAndStaleFeaturesFallBackAndSaySo) {
  Build(features::NewMemoryStore());
  Push(2, 0.25, std::nullopt, kT0);
  auto unknown = Score(R"({"user_id": 99, "f1": 1})");
  EXPECT_EQ(std::string_view(unknown["feature_statuses"]["f3"]), "NOT_FOUND");
  EXPECT_EQ(std::string_view(unknown["feature_statuses"]["f4"]), "NOT_FOUND");
  EXPECT_EQ(std::string_view(unknown["missing"].at(1)), "f4");  // no default: missing
  auto null_f4 = Score(R"({"user_id": 2, "f1": 1})");
  EXPECT_EQ(std::string_view(null_f4["feature_statuses"]["f4"]), "NULL_VALUE");
  EXPECT_FALSE(null_f4["feature_statuses"]["f3"].error() == simdjson::SUCCESS);
  clock_.Advance(3600LL * 1000000);  // past the view's one-hour TTL
  auto stale = Score(R"({"user_id": 2, "f1": 1})");
  EXPECT_EQ(std::string_view(stale["feature_statuses"]["f3"]), "OUTSIDE_MAX_AGE");
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find(R"(rtml_feature_store_values_total{backend="memory",status="OUTSIDE_MAX_AGE"} 2)"),
            std::string::npos)
      << text;
}

TEST_F(EnrichmentTest, BatchReadsOnceAndNeedsTheKey) {
  Build(features::NewMemoryStore());
  Push(1, 1.5, -2.0, kT0);
  Push(3, -1.0, 3.5, kT0);
  auto r = Score(R"({"instances": [{"user_id": 1, "f1": 0}, {"user_id": 3, "f1": 0},
                                   {"user_id": 4, "f1": 0}]})");
  EXPECT_EQ(r["predictions"].get_array().size(), 3u);
  EXPECT_EQ(r["feature_statuses"].at(2)["f3"].get_string().value(), "NOT_FOUND");
  EXPECT_NE(metrics_.Render().find(
                R"(rtml_feature_store_reads_total{backend="memory",outcome="ok"} 1)"),
            std::string::npos);
  Status s = scorer_->ScoreJson({}, R"({"instances": [{"user_id": 1, "f1": 0}, {"f1": 0}]})",
                                &scratch_, &response_);
  EXPECT_EQ(s.reason(), "missing_entity_key");
  EXPECT_EQ(s.field(), "instances[1].user_id");
  s = scorer_->ScoreJson({}, R"({"user_id": "1", "f1": 0})", &scratch_, &response_);
  EXPECT_EQ(s.reason(), "bad_entity_key");
}

TEST_F(EnrichmentTest, BatchOfEventsReadsTheStoreOnce) {
  Build(features::NewMemoryStore());
  Push(1, 1.5, -2.0, kT0);
  const std::vector<std::string_view> bodies = {R"({"user_id": 1, "f1": 0})",
                                                R"({"f1": 0})",  // no key
                                                R"({"user_id": 1, "f1": 0, "f3": 7})"};
  std::vector<EventResult> results(3);
  scorer_->ScoreBatch({}, bodies, &scratch_, &results);
  EXPECT_TRUE(results[0].status.ok());
  EXPECT_EQ(results[1].status.reason(), "missing_entity_key");
  EXPECT_TRUE(results[2].status.ok());
  EXPECT_EQ(results[0].response, [&] {
    std::string alone;
    EXPECT_TRUE(scorer_->ScoreJson({}, bodies[0], &scratch_, &alone).ok());
    return alone;
  }());
  EXPECT_NE(metrics_.Render().find(
                R"(rtml_feature_store_reads_total{backend="memory",outcome="ok"} 2)"),
            std::string::npos);  // one for the batch, one for the ScoreJson above
}

TEST_F(EnrichmentTest, RedisDownDegradesToDefaultsAndRecovers) {
  testing::RedisServer redis;
  Build(features::NewRedisStore({.port = redis.port(), .timeout_ms = 200,
                                 .retry_after_ms = 500, .key_prefix = "t"},
                                clock_));
  Push(1, 1.5, -2.0, kT0);
  EXPECT_EQ(std::string_view(Score(R"({"user_id": 1, "f1": 0, "f4": 1})")["feature_store"]),
            "ok");
  redis.Stop();
  // f3 has a default: scored, marked degraded.
  auto degraded = Score(R"({"user_id": 1, "f1": 0, "f4": 1})");
  EXPECT_EQ(std::string_view(degraded["feature_store"]), "degraded");
  EXPECT_EQ(std::string_view(degraded["defaulted"].at(1)), "f3");
  // f4 has none: the request cannot be answered honestly.
  Status s = scorer_->ScoreJson({}, R"({"user_id": 1, "f1": 0})", &scratch_, &response_);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("'f4' has no default"), std::string::npos) << s.message();
  EXPECT_NE(metrics_.Render().find(
                R"(rtml_requests_total{model="binary",version="1",path="http",outcome="degraded"} 1)"),
            std::string::npos);
  redis.Restart();  // an empty Redis: the data is gone, but the store is back
  clock_.Advance(600'000);
  auto back = Score(R"({"user_id": 1, "f1": 0, "f4": 1})");
  EXPECT_EQ(std::string_view(back["feature_store"]), "ok");
  EXPECT_EQ(std::string_view(back["feature_statuses"]["f3"]), "NOT_FOUND");
}

TEST(EnrichmentConfigTest, ModelMustMatchItsFeatureService) {
  observability::Registry metrics;
  auto no_store = Scorer::Create({.path = kData + "models_fs"}, nullptr, {}, &metrics);
  ASSERT_FALSE(no_store.ok());
  EXPECT_NE(no_store.status().message().find("no feature store is configured"),
            std::string::npos);
}

}  // namespace
}  // namespace rtml::pipeline
