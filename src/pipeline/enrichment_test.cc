// Scoring with inputs from the online feature store: key-only requests equal
// explicit ones, fallbacks to defaults with Feast statuses, and a Redis
// outage that degrades instead of failing, then recovers by itself.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "features/redis_store.h"
#include "pipeline/scorer.h"
#include "protocol/rtml_json.h"
#include "redis_server.h"

namespace rtml::pipeline {
namespace {

// rtml JSON payloads of `bodies`.
std::vector<Payload> AsJson(std::span<const std::string_view> bodies) {
  std::vector<Payload> out;
  for (std::string_view b : bodies) out.push_back(protocol::Json(b));
  return out;
}

const std::string kData = std::string(RTML_SOURCE_DIR) + "/tests/testdata/";
constexpr int64_t kT0 = 1795651200LL * 1000000;  // 2026-11-26T00:00:00Z

class EnrichmentTest : public ::testing::Test {
 protected:
  void Build(std::unique_ptr<features::OnlineStore> online,
             const std::string& models = kData + "models_fs") {
    auto defs = features::Definitions::Load(kData + "features/features.yaml");
    ASSERT_TRUE(defs.ok()) << defs.status().ToString();
    store_ = std::make_unique<features::FeatureStore>(std::move(defs).value(), std::move(online),
                                                      clock_);
    auto scorer = Scorer::Create({.path = models}, store_.get(), {}, &metrics_);
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
    Status s = scorer_->Score({}, protocol::Json(body), &scratch_, &response_);
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
  Status s = scorer_->Score({}, protocol::Json(R"({"instances": [{"user_id": 1, "f1": 0}, {"f1": 0}]})"),
                                &scratch_, &response_);
  EXPECT_EQ(s.reason(), "missing_entity_key");
  EXPECT_EQ(s.field(), "instances[1].user_id");
  s = scorer_->Score({}, protocol::Json(R"({"user_id": "1", "f1": 0})"), &scratch_, &response_);
  EXPECT_EQ(s.reason(), "bad_entity_key");
}

TEST_F(EnrichmentTest, BatchOfEventsReadsTheStoreOnce) {
  Build(features::NewMemoryStore());
  Push(1, 1.5, -2.0, kT0);
  const std::vector<std::string_view> bodies = {R"({"user_id": 1, "f1": 0})",
                                                R"({"f1": 0})",  // no key
                                                R"({"user_id": 1, "f1": 0, "f3": 7})"};
  std::vector<EventResult> results(3);
  scorer_->ScoreBatch({}, AsJson(bodies), &scratch_, &results);
  EXPECT_TRUE(results[0].status.ok());
  EXPECT_EQ(results[1].status.reason(), "missing_entity_key");
  EXPECT_TRUE(results[2].status.ok());
  EXPECT_EQ(results[0].response, [&] {
    std::string alone;
    EXPECT_TRUE(scorer_->Score({}, protocol::Json(bodies[0]), &scratch_, &alone).ok());
    return alone;
  }());
  EXPECT_NE(metrics_.Render().find(
                R"(rtml_feature_store_reads_total{backend="memory",outcome="ok"} 2)"),
            std::string::npos);  // one for the batch, one for the Score above
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
  Status s = scorer_->Score({}, protocol::Json(R"({"user_id": 1, "f1": 0})"), &scratch_, &response_);
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

// A repository whose model "binary" version 2 reads f3, f4 from the store and
// falls back as `fallback` says; version 1 takes only request inputs.
std::string FallbackRepo(const std::string& fallback) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() /
                        ("rtml_fallback_" + std::to_string(::getpid()) + "_" +
                         std::to_string(std::hash<std::string>{}(fallback)));
  fs::remove_all(root);
  const std::string file = "file: " + kData + "parity/xgb-debian/binary_logistic.json\n";
  const std::string inputs = R"(inputs:
  - {name: f0, default: 0.25}
  - {name: f1, required: true}
  - {name: f2}
  - {name: f3, default: 0.5}
  - {name: f4}
  - {name: f5, default: 1}
)";
  fs::create_directories(root / "binary" / "1");
  fs::create_directories(root / "binary" / "2");
  std::ofstream(root / "binary" / "1" / "model.yaml") << file << inputs;
  std::ofstream(root / "binary" / "2" / "model.yaml")
      << file << "feature_service: user_inputs\nfallback: " << fallback << "\n" << inputs;
  return root.string();
}

TEST_F(EnrichmentTest, FallbackAnswersWhenTheStoreCannotAndSaysSo) {
  testing::RedisServer redis;
  Build(features::NewRedisStore({.port = redis.port(), .timeout_ms = 200,
                                 .retry_after_ms = 500, .key_prefix = "t"},
                                clock_),
        FallbackRepo("{value: 0.125}"));
  Push(1, 1.5, -2.0, kT0);
  auto fine = Score(R"({"id": "a", "user_id": 1, "f1": 0})");
  EXPECT_EQ(fine["fallback"].error(), simdjson::NO_SUCH_FIELD);
  redis.Stop();
  // f4 has no default: without the store only the fallback can answer.
  auto one = Score(R"({"id": "b", "user_id": 1, "f1": 0})");
  EXPECT_EQ(std::string_view(one["id"]), "b");
  EXPECT_EQ(double(one["prediction"]), 0.125);
  EXPECT_TRUE(bool(one["fallback"]));
  EXPECT_EQ(std::string_view(one["fallback_reason"]), "feature_store_unavailable");
  EXPECT_EQ(std::string_view(one["fallback_kind"]), "constant");
  auto batch = Score(R"({"instances": [{"user_id": 1, "f1": 0}, {"user_id": 2, "f1": 1}]})");
  EXPECT_EQ(batch["predictions"].get_array().size(), 2u);
  // A bad request is still an error, never a fallback.
  Status bad = scorer_->Score({}, protocol::Json(R"({"user_id": 1})"), &scratch_, &response_);
  EXPECT_EQ(bad.reason(), "missing_feature");
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find(R"(rtml_fallbacks_total{model="binary",version="2",path="http",reason="feature_store_unavailable"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(rtml_requests_total{model="binary",version="2",path="http",outcome="fallback"} 2)"),
            std::string::npos);
  // Stream events fall back the same way, one answer each.
  const std::vector<std::string_view> bodies = {R"({"user_id": 1, "f1": 0})", R"({"f1": "x"})"};
  std::vector<EventResult> results(2);
  scorer_->ScoreBatch({.path = Path::kStream}, AsJson(bodies), &scratch_, &results);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status.ToString();
  EXPECT_NE(results[0].response.find(R"("fallback":true)"), std::string::npos);
  EXPECT_EQ(results[1].status.reason(), "wrong_type");
}

TEST_F(EnrichmentTest, FallbackVersionScoresWithoutTheStoreAndPastTheDeadline) {
  Build(features::NewMemoryStore(), FallbackRepo("{version: 1}"));
  Push(1, 1.5, -2.0, kT0);
  const std::string body = R"({"user_id": 1, "f0": 1, "f1": 0.5, "f2": 3})";
  // A deadline already passed: version 2 does not read the store; version 1 answers
  // from the request (user_id, which it does not take, is no error) and defaults.
  Status s = scorer_->Score(
      {.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1)},
      protocol::Json(body), &scratch_, &response_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto r = parser_.parse(response_);
  EXPECT_EQ(int64_t(r["version"]), 1);
  EXPECT_EQ(int64_t(r["fallback_from"]), 2);
  EXPECT_EQ(std::string_view(r["fallback_reason"]), "deadline_exceeded");
  EXPECT_EQ(std::string_view(r["fallback_kind"]), "version");
  EXPECT_EQ(r["feature_store"].error(), simdjson::NO_SUCH_FIELD);
  const double fallback_p = double(r["prediction"]);
  std::string v1;
  ASSERT_TRUE(scorer_->Score({.version = 1}, protocol::Json(R"({"f0": 1, "f1": 0.5, "f2": 3})"),
                             &scratch_, &v1)
                  .ok());
  EXPECT_EQ(double(parser_.parse(v1)["prediction"]), fallback_p);
  // Without a deadline the primary answers.
  EXPECT_EQ(int64_t(Score(body)["version"]), 2);
}

TEST_F(EnrichmentTest, AFallbackThatCannotAnswerLeavesTheErrorAndSaysWhy) {
  Build(features::NewMemoryStore(), FallbackRepo("{version: 3}"));
  Status s = scorer_->Score(
      {.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1)},
      protocol::Json(R"({"user_id": 1, "f1": 0})"), &scratch_, &response_);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("its fallback, version 3, is not loaded"), std::string::npos)
      << s.message();
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
