#include "pipeline/scorer.h"
#include "protocol/rtml_json.h"

#include <gtest/gtest.h>

#include <cmath>

namespace rtml::pipeline {
namespace {

// rtml JSON payloads of `bodies`.
std::vector<Payload> AsJson(std::span<const std::string_view> bodies) {
  std::vector<Payload> out;
  for (std::string_view b : bodies) out.push_back(protocol::Json(b));
  return out;
}

const std::string kRepo = std::string(RTML_SOURCE_DIR) + "/tests/testdata/models";

class ScorerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto r = model::ModelRepository::Load(kRepo, "binary");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo_ = std::move(r).value().release();
  }

  Scorer& MakeScorer(ScoringOptions opts = {}) {
    scorers_.push_back(
        Scorer::Create({.path = kRepo, .default_model = "binary"}, nullptr, opts, &metrics_)
            .value());
    return *scorers_.back();
  }

  // Scores and parses the response; fails the test on error.
  simdjson::dom::element Score(Scorer& s, std::string_view body, ScoreTarget t = {}) {
    Status st = s.Score(t, protocol::Json(body), &scratch_, &response_);
    EXPECT_TRUE(st.ok()) << body << " -> " << st.ToString();
    return parser_.parse(response_);
  }

  Status Error(Scorer& s, std::string_view body, ScoreTarget t = {}) {
    Status st = s.Score(t, protocol::Json(body), &scratch_, &response_);
    EXPECT_FALSE(st.ok()) << body;
    return st;
  }

  float Direct(std::vector<float> row, std::string_view model = "binary", int64_t version = 1) {
    const model::ModelVersion* v = repo_->Find(model)->Get(version);
    std::vector<float> out(v->model->num_outputs());
    EXPECT_TRUE(v->model->Predict(row, 1, out).ok());
    return out[0];
  }

  static model::ModelRepository* repo_;
  observability::Registry metrics_;
  std::vector<std::unique_ptr<Scorer>> scorers_;
  ScoreScratch scratch_;
  std::string response_;
  simdjson::dom::parser parser_;
};
model::ModelRepository* ScorerTest::repo_ = nullptr;

TEST_F(ScorerTest, ScoresOneNamedRowLikeTheModelItself) {
  Scorer& s = MakeScorer();
  auto r = Score(s, R"({"features": {"f1": 0.5, "f2": -1.25, "f3": 3, "f4": 0.1}, "id": "t-1"})");
  EXPECT_EQ(std::string_view(r["model"]), "binary");
  EXPECT_EQ(int64_t(r["version"]), 2);  // highest version by default
  EXPECT_EQ(std::string_view(r["id"]), "t-1");
  const float expected = Direct({0.25f, 0.5f, -1.25f, 3, 0.1f, 1}, "binary", 2);
  EXPECT_EQ(static_cast<float>(double(r["prediction"])), expected);
  auto defaulted = r["defaulted"].get_array();
  ASSERT_EQ(defaulted.size(), 2u);
  EXPECT_EQ(std::string_view(defaulted.at(0)), "f0");
  EXPECT_EQ(std::string_view(defaulted.at(1)), "f5");
  EXPECT_EQ(r["missing"].get_array().size(), 0u);
}

TEST_F(ScorerTest, FlatBodyIsOneRow) {
  Scorer& s = MakeScorer();
  auto r = Score(s, R"({"f1": 0.5, "f2": -1.25, "id": 9})", {"binary", 1});
  EXPECT_EQ(int64_t(r["id"]), 9);
  EXPECT_EQ(static_cast<float>(double(r["prediction"])),
            Direct({0.25f, 0.5f, -1.25f, NAN, NAN, 1}));
}

TEST_F(ScorerTest, OrderedRowsAndExplicitVersion) {
  Scorer& s = MakeScorer();
  auto r = Score(s, R"({"features": [1, 2, 3, null, 5, 6]})", {"binary", 1});
  EXPECT_EQ(int64_t(r["version"]), 1);
  EXPECT_EQ(static_cast<float>(double(r["prediction"])), Direct({1, 2, 3, NAN, 5, 6}));
  EXPECT_EQ(std::string_view(r["missing"].get_array().at(0)), "f3");
}

TEST_F(ScorerTest, NativeAndXgboostBackendsAgree) {
  Scorer& s = MakeScorer();
  const char* body = R"({"features": {"f0": 1.5, "f1": -0.5, "f2": 2, "f4": -3, "f5": 2}})";
  const double native = double(Score(s, body, {"binary", 1})["prediction"]);
  const double reference = double(Score(s, body, {"binary", 2})["prediction"]);
  EXPECT_NEAR(native, reference, 1e-6);
}

TEST_F(ScorerTest, BatchesMixObjectsAndArrays) {
  Scorer& s = MakeScorer();
  auto r = Score(s, R"({"instances": [{"f1": 1}, [1, 2, 3, 4, 5, 6], {"f1": 2, "f3": 7}]})",
                 {"binary", 1});
  auto preds = r["predictions"].get_array();
  ASSERT_EQ(preds.size(), 3u);
  EXPECT_EQ(static_cast<float>(double(preds.at(1))), Direct({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(static_cast<float>(double(preds.at(0))), Direct({0.25f, 1, NAN, NAN, NAN, 1}));
  EXPECT_EQ(r["defaulted"].get_array().size(), 3u);
  EXPECT_EQ(r["defaulted"].at(1).get_array().size(), 0u);
}

TEST_F(ScorerTest, ClassesAreLabelledProbabilities) {
  Scorer& s = MakeScorer();
  auto r = Score(s, R"({"features": {"f1": 1, "f2": 0.5}})", {"iris", std::nullopt});
  auto p = r["prediction"];
  const double sum = double(p["low"]) + double(p["mid"]) + double(p["high"]);
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST_F(ScorerTest, UnknownFeaturePolicyPerModel) {
  Scorer& s = MakeScorer();
  EXPECT_EQ(Error(s, R"({"features": {"f1": 1, "zz": 2}})").reason(), "unknown_feature");
  Score(s, R"({"features": {"f1": 1, "zz": 2}})", {"reg", std::nullopt});  // model says ignore
  Scorer& lenient = MakeScorer({.ignore_unknown_features = true});
  Score(lenient, R"({"features": {"f1": 1, "zz": 2}})");
}

struct BadCase {
  const char* body;
  StatusCode code;
  const char* reason;
  const char* field;
  const char* mention;
};

TEST_F(ScorerTest, RejectsEachBadInputWithReasonAndField) {
  Scorer& s = MakeScorer({.max_batch_size = 2});
  const BadCase cases[] = {
      {R"({"features": {"f1": 1,}})", StatusCode::kInvalidArgument, "malformed_json", "",
       "at byte 22"},
      {R"({"features": {"f1": 1}} trailing)", StatusCode::kInvalidArgument, "malformed_json", "",
       "at byte 24"},
      {"", StatusCode::kInvalidArgument, "malformed_json", "", "at byte 0"},
      {"[1,2]", StatusCode::kInvalidArgument, "bad_request", "", "JSON object"},
      {R"({"id": 3})", StatusCode::kInvalidArgument, "bad_request", "", "needs \"features\""},
      {R"({"f1": 1, "features": {"f1": 1}})", StatusCode::kInvalidArgument, "bad_request",
       "features", "once"},
      {R"({"features": {"f1": "x"}})", StatusCode::kInvalidArgument, "wrong_type",
       "features.f1", "must be a number"},
      {R"({"features": {"f1": 1, "f2": 101}})", StatusCode::kInvalidArgument, "out_of_range",
       "features.f2", "outside [-100, 100]"},
      {R"({"features": {"f2": 1}})", StatusCode::kInvalidArgument, "missing_feature",
       "features.f1", "required"},
      {R"({"features": {"f1": 1, "f5": 1.5}})", StatusCode::kInvalidArgument, "wrong_type",
       "features.f5", "integer"},
      {R"({"features": [1, 2]})", StatusCode::kInvalidArgument, "wrong_length", "features",
       "exactly 6"},
      {R"({"features": 5})", StatusCode::kInvalidArgument, "wrong_type", "features", ""},
      {R"({"instances": [{"f1": 1}, {"f1": 1}, {"f1": 1}]})", StatusCode::kPayloadTooLarge,
       "batch_too_large", "instances", "maximum of 2"},
      {R"({"instances": [{"f1": 1}, {"f2": 1}]})", StatusCode::kInvalidArgument,
       "missing_feature", "instances[1].f1", ""},
      {R"({"instances": []})", StatusCode::kInvalidArgument, "bad_request", "instances", "empty"},
      {R"({"instances": [3]})", StatusCode::kInvalidArgument, "wrong_type", "instances[0]", ""},
      {R"({"features": {"f1": 1}, "colour": 1})", StatusCode::kInvalidArgument, "bad_request",
       "colour", "once"},
      {R"({"f1": 1, "colour": 1})", StatusCode::kInvalidArgument, "unknown_feature", "colour",
       "unknown feature"},
      {R"({"f2": 1})", StatusCode::kInvalidArgument, "missing_feature", "f1", "required"},
      {R"({"features": {"f1": 1}, "instances": []})", StatusCode::kInvalidArgument,
       "bad_request", "instances", "once"},
      {R"({"features": {"f1": 1}, "id": [1]})", StatusCode::kInvalidArgument, "wrong_type", "id",
       ""},
  };
  for (const BadCase& c : cases) {
    Status st = Error(s, c.body);
    EXPECT_EQ(st.code(), c.code) << c.body << ": " << st.ToString();
    EXPECT_EQ(st.reason(), c.reason) << c.body << ": " << st.ToString();
    EXPECT_EQ(st.field(), c.field) << c.body;
    EXPECT_NE(st.message().find(c.mention), std::string::npos) << c.body << ": " << st.message();
  }
  // And it still scores afterwards.
  Score(s, R"({"features": {"f1": 1}})");
}

TEST_F(ScorerTest, BatchOfBodiesAnswersEachLikeScore) {
  Scorer& s = MakeScorer({.max_batch_size = 3});
  const std::vector<std::string_view> bodies = {
      R"({"features": {"f1": 0.5, "f2": 2}, "id": "a"})",
      R"({"features": {"f1": "bad"}})",
      R"({"instances": [{"f1": 1}, [1, 2, 3, 4, 5, 6]], "id": 7})",
      R"(not json)",
      R"({"f1": -3, "f3": 4})",
      R"({"instances": [{"f1": 1}, {"f1": 1}, {"f1": 1}, {"f1": 1}]})",
  };
  std::vector<EventResult> results(bodies.size());
  s.ScoreBatch({"binary", 1}, AsJson(bodies), &scratch_, &results);
  for (size_t i = 0; i < bodies.size(); ++i) {
    std::string alone;
    Status expected = s.Score({"binary", 1}, protocol::Json(bodies[i]), &scratch_, &alone);
    EXPECT_EQ(results[i].status.ok(), expected.ok()) << bodies[i];
    EXPECT_EQ(results[i].status.reason(), expected.reason()) << bodies[i];
    if (expected.ok()) EXPECT_EQ(results[i].response, alone) << bodies[i];
  }
  EXPECT_EQ(results[5].status.reason(), "batch_too_large");
  std::vector<EventResult> unknown(1);
  const std::vector<std::string_view> one = {R"({"f1": 1})"};
  s.ScoreBatch({"nope", std::nullopt}, AsJson(one), &scratch_, &unknown);
  EXPECT_EQ(unknown[0].status.reason(), "unknown_model");
}

TEST_F(ScorerTest, UnknownModelOrVersionIsNotFound) {
  Scorer& s = MakeScorer();
  Status a = Error(s, R"({"features": {"f1": 1}})", {"nope", std::nullopt});
  EXPECT_EQ(a.code(), StatusCode::kNotFound);
  EXPECT_EQ(a.reason(), "unknown_model");
  Status b = Error(s, R"({"features": {"f1": 1}})", {"binary", 9});
  EXPECT_EQ(b.reason(), "unknown_version");
  EXPECT_NE(b.message().find("no version 9"), std::string::npos);
}

TEST_F(ScorerTest, CountsRequestsAndPredictionsByPathAndOutcome) {
  Scorer& s = MakeScorer();
  Score(s, R"({"instances": [{"f1": 1}, {"f1": 2}]})", {"binary", 1});
  Error(s, R"({"features": {"f1": "x"}})", {"binary", 1});
  Error(s, R"({"features": {"f1": 1}})", {"nope", std::nullopt});  // no model: not counted here
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find(R"(rtml_predictions_total{model="binary",version="1",path="http"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(rtml_predictions_total{model="binary",version="1",path="stream"} 0)"),
            std::string::npos);
  for (const char* line :
       {R"(rtml_requests_total{model="binary",version="1",path="http",outcome="ok"} 1)",
        R"(rtml_requests_total{model="binary",version="1",path="http",outcome="degraded"} 0)",
        R"(rtml_requests_total{model="binary",version="1",path="http",outcome="error"} 1)"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace rtml::pipeline
