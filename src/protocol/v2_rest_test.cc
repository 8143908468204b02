#include "protocol/v2_rest.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstring>

#include "pipeline/scorer.h"
#include "protocol/rtml_json.h"

namespace rtml::protocol {
namespace {

using pipeline::Path;
using pipeline::Payload;
using pipeline::ScoreTarget;

const std::string kRepo = std::string(RTML_SOURCE_DIR) + "/tests/testdata/models";

class V2RestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scorer_ = pipeline::Scorer::Create({.path = kRepo, .default_model = "binary"}, nullptr, {},
                                       &metrics_)
                  .value();
  }

  Status Infer(std::string_view model, const Payload& p) {
    return scorer_->Score({.model = model, .path = Path::kV2Rest}, p, &scratch_, &response_);
  }
  simdjson::dom::element Ok(std::string_view model, std::string_view body) {
    Status s = Infer(model, V2Json(body));
    EXPECT_TRUE(s.ok()) << body << " -> " << s.ToString();
    return parser_.parse(response_);
  }
  Status Bad(std::string_view model, std::string_view body) {
    Status s = Infer(model, V2Json(body));
    EXPECT_FALSE(s.ok()) << body << " -> " << response_;
    return s;
  }
  // rtml's own JSON answer for the same rows, to compare with.
  double Native(std::string_view model, std::string_view body) {
    std::string out;
    EXPECT_TRUE(scorer_->Score({.model = model}, Json(body), &scratch_, &out).ok()) << body;
    return double(parser_.parse(out)["prediction"]);
  }

  observability::Registry metrics_;
  std::unique_ptr<pipeline::Scorer> scorer_;
  pipeline::ScoreScratch scratch_;
  std::string response_;
  simdjson::dom::parser parser_;
};

TEST_F(V2RestTest, PerFeatureTensorsScoreAsTheNativeBody) {
  auto r = Ok("binary", R"({"id": "r1", "inputs": [
      {"name": "f1", "datatype": "FP32", "shape": [2], "data": [0.5, -1]},
      {"name": "f2", "datatype": "FP64", "shape": [2, 1], "data": [[1.5], [2]]},
      {"name": "f5", "datatype": "INT64", "shape": [2], "data": [3, 4]}]})");
  EXPECT_EQ(std::string_view(r["id"]), "r1");
  EXPECT_EQ(std::string_view(r["model_name"]), "binary");
  EXPECT_EQ(std::string_view(r["model_version"]), "2");
  auto out = r["outputs"].at(0);
  EXPECT_EQ(std::string_view(out["name"]), "probability");
  EXPECT_EQ(std::string_view(out["datatype"]), "FP32");
  EXPECT_EQ(int64_t(out["shape"].at(0)), 2);
  EXPECT_EQ(out["shape"].get_array().size(), 1u);
  const double p0 = double(out["data"].at(0)), p1 = double(out["data"].at(1));
  EXPECT_DOUBLE_EQ(p0, Native("binary", R"({"f1": 0.5, "f2": 1.5, "f5": 3})"));
  EXPECT_DOUBLE_EQ(p1, Native("binary", R"({"f1": -1, "f2": 2, "f5": 4})"));
}

TEST_F(V2RestTest, OneMatrixTensorInModelOrderAndNaNIsAbsent) {
  auto r = Ok("binary", R"({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 6],
      "data": [1, 0.5, 2, 3, 4, 5]}]})");
  const double matrix = double(r["outputs"].at(0)["data"].at(0));  // before the parser is reused
  EXPECT_DOUBLE_EQ(matrix, Native("binary", R"({"features": [1, 0.5, 2, 3, 4, 5]})"));
  // Binary FP32 with a NaN for f0: its default (0.25) is used, as for an absent value.
  const float row[6] = {std::nanf(""), 0.5f, 2, 3, 4, 5};
  const std::string head =
      R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 6], "parameters": {"binary_data_size": 24}}]})";
  std::string body = head;
  body.append(reinterpret_cast<const char*>(row), sizeof(row));
  Payload p = V2Json(body);
  p.header_size = head.size();
  ASSERT_TRUE(Infer("binary", p).ok()) << response_;
  const double defaulted = double(parser_.parse(response_)["outputs"].at(0)["data"].at(0));
  EXPECT_DOUBLE_EQ(defaulted, Native("binary", R"({"features": [0.25, 0.5, 2, 3, 4, 5]})"));
}

TEST_F(V2RestTest, ClassesAnswerProbabilitiesAndLabelsAndOutputsSelect) {
  const std::string body = R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [2],
      "data": [0.5, 3]}]})";
  auto r = Ok("iris", body);
  ASSERT_EQ(r["outputs"].get_array().size(), 2u);
  auto probs = r["outputs"].at(0);
  EXPECT_EQ(std::string_view(probs["name"]), "probabilities");
  EXPECT_EQ(int64_t(probs["shape"].at(1)), 3);
  EXPECT_EQ(probs["data"].get_array().size(), 6u);
  auto label = r["outputs"].at(1);
  EXPECT_EQ(std::string_view(label["datatype"]), "BYTES");
  std::string_view first = label["data"].at(0);
  EXPECT_TRUE(first == "low" || first == "mid" || first == "high");
  auto only = Ok("iris", R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1],
      "data": [0.5]}], "outputs": [{"name": "label", "parameters": {"binary_data": false}}]})");
  ASSERT_EQ(only["outputs"].get_array().size(), 1u);
  EXPECT_EQ(std::string_view(only["outputs"].at(0)["name"]), "label");
}

TEST_F(V2RestTest, EveryBadTensorIsAClearClientError) {
  struct Case {
    const char* body;
    const char* reason;
    const char* says;
  };
  const Case cases[] = {
      {R"({"inputs": [{"name": "f1", "datatype": "BYTES", "shape": [1], "data": ["a"]}]})",
       "wrong_datatype", "BYTES"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP8", "shape": [1], "data": [1]}]})",
       "wrong_datatype", "FP8"},
      {R"({"inputs": [{"name": "f1", "shape": [1], "data": [1]}]})", "wrong_datatype",
       "datatype"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]})",
       "wrong_shape", "[N] or [N, 1]"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1, 1, 1], "data": [1]}]})",
       "wrong_shape", "more than 2"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [3], "data": [1, 2]}]})",
       "wrong_shape", "says 3"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [1, 2]}]})",
       "wrong_shape", "more than the 1"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [-1], "data": [1]}]})",
       "wrong_shape", "non-negative"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [0], "data": []}]})",
       "bad_request", "no rows"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1, 0], "data": []}]})",
       "wrong_shape", "[N, 0]"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]},
                      {"name": "f2", "datatype": "FP32", "shape": [2], "data": [1, 2]}]})",
       "wrong_shape", "first input has 1"},
      {R"({"inputs": [{"name": "f1", "datatype": "INT64", "shape": [1], "data": [1.5]}]})",
       "wrong_type", "1.5"},
      {R"({"inputs": [{"name": "f1", "datatype": "BOOL", "shape": [1], "data": ["yes"]}]})",
       "wrong_type", "BOOL"},
      {R"({"inputs": [{"name": "f5", "datatype": "FP32", "shape": [1], "data": [1.5]},
                      {"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]}]})",
       "wrong_type", "integer"},
      {R"({"inputs": [{"name": "f2", "datatype": "FP32", "shape": [1], "data": [500]},
                      {"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]}]})",
       "out_of_range", "outside"},
      {R"({"inputs": [{"name": "f1", "datatype": "INT8", "shape": [1], "data": [300]}]})",
       "out_of_range", "INT8's range -128..127"},
      {R"({"inputs": [{"name": "f1", "datatype": "UINT16", "shape": [1], "data": [65536]}]})",
       "out_of_range", "UINT16's range 0..65535"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]},
                      {"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]}]})",
       "duplicate_feature", "twice"},
      {R"({"inputs": [{"name": "zz", "datatype": "FP32", "shape": [1], "data": [1]}]})",
       "unknown_input", "'zz'"},
      {R"({"inputs": [{"name": "f2", "datatype": "FP32", "shape": [1], "data": [1]}]})",
       "missing_feature", "'f1'"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": 1}]})",
       "wrong_type", "must be an array"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1]}]})", "bad_request",
       "no \"data\""},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]}],
           "outputs": [{"name": "logits"}]})",
       "unknown_output", "'logits'"},
      {R"({"inputs": {}})", "wrong_type", "\"inputs\""},
      {R"({"inputs": []})", "bad_request", "no \"inputs\""},
      {R"({"id": 3, "inputs": []})", "wrong_type", "\"id\""},
      {R"([1, 2])", "bad_request", "JSON object"},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]}]} x)",
       "malformed_json", ""},
      {R"({"inputs": [{"name": "f1", )", "malformed_json", ""},
      // A field that is not one, past the ones read: found by v2_infer_fuzzer (the
      // parser was used on after the error; UBSan).
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1],0, 1.0]}]})",
       "malformed_json", ""},
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [1]}],
           "outputs": [{"name": "probability", 3}]})",
       "malformed_json", ""},
      // A parameter without a value, then a field looked up out of order:
      // found by v2_infer_fuzzer (simdjson's rewinding lookup assumes a
      // well-formed object; UBSan). Each lookup now searches twice, forward.
      {R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1],
           "parameters": {"binary_data_sizes":}}}}}}}}, "data": [1]}]})",
       "malformed_json", ""},
      {R"({"inputs": [{"data": [1], "name": "f1", "datatype": "FP32",
           "parameters": {"x":}}, "shape": [1]}]})",
       "malformed_json", ""},
  };
  for (const Case& c : cases) {
    Status s = Bad("binary", c.body);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(s.reason(), c.reason) << c.body << " -> " << s.ToString();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << c.body << " -> " << s.ToString();
  }
  std::string big = R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [2000], "data": [)";
  for (int i = 0; i < 2000; ++i) big += i == 0 ? "1" : ",1";
  big += "]}]}";
  EXPECT_EQ(Bad("binary", big).reason(), "batch_too_large");
}

TEST_F(V2RestTest, BinaryDataMustMatchItsSizes) {
  std::string body;
  auto binary = [&](std::string head, std::string raw, size_t header = 0) {
    body = head + raw;
    Payload p = V2Json(body);
    p.header_size = header != 0 ? header : head.size();
    return Infer("binary", p);
  };
  auto f32 = [](std::initializer_list<float> v) {
    return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * sizeof(float));
  };
  const std::string two =
      R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]})";
  EXPECT_TRUE(binary(two, f32({1, 2})).ok()) << response_;
  EXPECT_EQ(binary(two, f32({1})).reason(), "bad_binary_data");                // truncated
  EXPECT_EQ(binary(two, f32({1, 2, 3})).reason(), "bad_binary_data");          // left over
  EXPECT_EQ(binary(two, f32({1, 2}), 10'000).reason(), "bad_binary_data");     // header past the end
  const std::string wrong_size =
      R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 4}}]})";
  EXPECT_EQ(binary(wrong_size, f32({1})).reason(), "bad_binary_data");
  const std::string bad_size =
      R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": "8"}}]})";
  EXPECT_EQ(binary(bad_size, f32({1, 2})).reason(), "bad_binary_data");
  // Small types: INT8 for an int input, FP16 for a float one.
  const std::string small =
      R"({"inputs": [{"name": "f5", "datatype": "INT8", "shape": [1], "parameters": {"binary_data_size": 1}},
                     {"name": "f1", "datatype": "FP16", "shape": [1], "parameters": {"binary_data_size": 2}}]})";
  ASSERT_TRUE(binary(small, std::string("\x03\x00\x38", 3)).ok()) << response_;  // 3, 0.5
  const double p = double(parser_.parse(response_)["outputs"].at(0)["data"].at(0));
  EXPECT_DOUBLE_EQ(p, Native("binary", R"({"f5": 3, "f1": 0.5})"));
}

TEST_F(V2RestTest, BinaryOutputsFollowTheJsonHeader) {
  const std::string body = R"({"parameters": {"binary_data_output": true},
      "inputs": [{"name": "f1", "datatype": "FP32", "shape": [2], "data": [0.5, 3]}],
      "outputs": [{"name": "probabilities"}, {"name": "label", "parameters": {"binary_data": false}}]})";
  ASSERT_TRUE(Infer("iris", V2Json(body)).ok()) << response_;
  const size_t header = scratch_.pending.d.answer_header_size;
  ASSERT_GT(header, 0u);
  ASSERT_EQ(response_.size(), header + 6 * sizeof(float));
  const std::string json = response_.substr(0, header);
  float raw[6];
  std::memcpy(raw, response_.data() + header, sizeof(raw));
  auto r = parser_.parse(json);
  auto probs = r["outputs"].at(0);
  EXPECT_EQ(int64_t(probs["parameters"]["binary_data_size"]), 24);
  EXPECT_EQ(probs["data"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(r["outputs"].at(1)["data"].get_array().size(), 2u);  // the label in JSON
  std::string_view first_label = r["outputs"].at(1)["data"].at(0);
  const std::string labels[] = {"low", "mid", "high"};
  EXPECT_EQ(first_label, labels[std::max_element(raw, raw + 3) - raw]);
  // Binary BYTES: a 4-byte length, then the label.
  ASSERT_TRUE(Infer("iris", V2Json(R"({"inputs": [{"name": "f1", "datatype": "FP32",
      "shape": [1], "data": [0.5]}], "outputs": [{"name": "label",
      "parameters": {"binary_data": true}}]})")).ok());
  const size_t h = scratch_.pending.d.answer_header_size;
  uint32_t n = 0;
  std::memcpy(&n, response_.data() + h, 4);
  EXPECT_EQ(response_.size(), h + 4 + n);
  // Without binary outputs asked for, the answer is all JSON.
  ASSERT_TRUE(Infer("iris", V2Json(R"({"inputs": [{"name": "f1", "datatype": "FP32",
      "shape": [1], "data": [0.5]}]})")).ok());
  EXPECT_EQ(scratch_.pending.d.answer_header_size, 0u);
  EXPECT_EQ(Bad("iris", R"({"parameters": {"binary_data_output": 1}, "inputs": [{"name": "f1",
      "datatype": "FP32", "shape": [1], "data": [0.5]}]})").reason(), "wrong_type");
}

TEST_F(V2RestTest, ParametersCarryADeadline) {
  auto with = [](std::string_view params) {
    return std::string(R"({"parameters": )") + std::string(params) +
           R"(, "inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [0.5]}]})";
  };
  EXPECT_TRUE(Infer("binary", V2Json(with(R"({"timeout_ms": 10000})"))).ok()) << response_;
  // The timeout counts from the request's arrival: one that arrived 1 ms
  // ago with Triton's "timeout" of 500 µs is not scored; with 1 s, it is.
  auto arrived_1ms_ago = [&](std::string_view params) {
    pipeline::ScoreTarget target{.model = "binary", .path = Path::kV2Rest};
    target.received = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
    return scorer_->Score(target, V2Json(with(params)), &scratch_, &response_);
  };
  const Status late = arrived_1ms_ago(R"({"timeout": 500})");
  EXPECT_EQ(late.code(), StatusCode::kDeadlineExceeded) << late.ToString();
  EXPECT_EQ(late.reason(), "deadline_exceeded");
  EXPECT_TRUE(arrived_1ms_ago(R"({"timeout": 1000000})").ok()) << response_;
  EXPECT_EQ(Bad("binary", with(R"({"timeout_ms": 0})")).reason(), "bad_timeout");
  EXPECT_EQ(Bad("binary", with(R"({"timeout_ms": "5"})")).reason(), "bad_timeout");
}

TEST_F(V2RestTest, MetadataListsInputsOutputsAndLabels) {
  std::string out;
  JsonWriter w(&out);
  const auto repo = scorer_->repository();
  const model::ModelEntry* e = repo->Find("iris");
  WriteV2ModelMetadata(w, *e, *e->Get(std::nullopt), {});
  auto m = parser_.parse(out);
  EXPECT_EQ(std::string_view(m["name"]), "iris");
  EXPECT_EQ(m["inputs"].get_array().size(), 6u);
  EXPECT_EQ(std::string_view(m["inputs"].at(5)["datatype"]), "INT64");  // f5: dtype int
  EXPECT_EQ(int64_t(m["inputs"].at(0)["shape"].at(0)), -1);
  EXPECT_EQ(std::string_view(m["outputs"].at(0)["name"]), "probabilities");
  EXPECT_EQ(int64_t(m["outputs"].at(0)["shape"].at(1)), 3);
  EXPECT_EQ(std::string_view(m["parameters"]["labels"]), "low,mid,high");
}

TEST_F(V2RestTest, FieldsInAnyOrder) {
  const double in_order = Native("binary", R"({"f1": 0.5})");
  simdjson::dom::element e = Ok("binary", R"({"outputs": [{"parameters": {"binary_data": false},
      "name": "probability"}], "inputs": [{"data": [0.5], "parameters": {}, "shape": [1],
      "datatype": "FP32", "name": "f1"}], "parameters": {"timeout_ms": 1000,
      "binary_data_output": false}})");
  EXPECT_NEAR(double(e["outputs"].at(0)["data"].at(0)), in_order, 1e-6);
}

TEST_F(V2RestTest, StatisticsCountRowsCallsAndTimesPerVersion) {
  const std::string one = R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1],
      "data": [0.5]}]})";
  const std::string three = R"({"inputs": [{"name": "f1", "datatype": "FP32", "shape": [3],
      "data": [0.5, 1, 2]}]})";
  const auto before = std::chrono::system_clock::now();
  ASSERT_TRUE(Infer("binary", V2Json(one)).ok()) << response_;
  ScoreTarget queued{.model = "binary", .path = Path::kV2Rest};
  queued.received = std::chrono::steady_clock::now() - std::chrono::milliseconds(2);
  ASSERT_TRUE(scorer_->Score(queued, V2Json(three), &scratch_, &response_).ok()) << response_;
  Bad("binary", R"({"inputs": [{"name": "zz", "datatype": "FP32", "shape": [1], "data": [1]}]})");

  auto totals = scorer_->Totals("binary", std::nullopt);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  std::string out;
  JsonWriter w(&out);
  WriteV2ModelStatistics(w, *totals);
  simdjson::dom::element doc = parser_.parse(out);
  simdjson::dom::array stats = doc["model_stats"];
  ASSERT_EQ(stats.size(), 2u) << out;  // versions 1 and 2 of "binary"
  simdjson::dom::element v2 = stats.at(1);  // the default version answered
  EXPECT_EQ(std::string_view(v2["name"]), "binary");
  EXPECT_EQ(std::string_view(v2["version"]), "2");
  EXPECT_EQ(uint64_t(v2["inference_count"]), 4u) << out;  // rows
  EXPECT_EQ(uint64_t(v2["execution_count"]), 2u);
  simdjson::dom::element is = v2["inference_stats"];
  EXPECT_EQ(uint64_t(is["success"]["count"]), 2u);
  EXPECT_GT(uint64_t(is["success"]["ns"]), 0u);
  EXPECT_EQ(uint64_t(is["fail"]["count"]), 1u);
  EXPECT_EQ(uint64_t(is["compute_infer"]["count"]), 2u);
  EXPECT_EQ(uint64_t(is["compute_input"]["count"]), 2u);
  EXPECT_EQ(uint64_t(is["compute_output"]["count"]), 2u);
  // Only the request that says when it arrived has a queue time: 2 ms or more.
  EXPECT_EQ(uint64_t(is["queue"]["count"]), 1u);
  EXPECT_GE(uint64_t(is["queue"]["ns"]), 2'000'000u);
  EXPECT_EQ(uint64_t(is["cache_hit"]["count"]), 0u);
  const auto ms = [](auto t) {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        t.time_since_epoch()).count());
  };
  EXPECT_GE(uint64_t(v2["last_inference"]) + 2, ms(before));
  EXPECT_LE(uint64_t(v2["last_inference"]), ms(std::chrono::system_clock::now()) + 2);
  EXPECT_EQ(uint64_t(stats.at(0)["last_inference"]), 0u);  // version 1: never asked
  EXPECT_EQ(uint64_t(stats.at(0)["inference_count"]), 0u);

  EXPECT_EQ(scorer_->Totals("binary", 1)->size(), 1u);
  EXPECT_GE(scorer_->Totals("", std::nullopt)->size(), 4u);  // every model's versions
  EXPECT_EQ(scorer_->Totals("nope", std::nullopt).status().reason(), "unknown_model");
  EXPECT_EQ(scorer_->Totals("binary", 9).status().reason(), "unknown_version");
}

}  // namespace
}  // namespace rtml::protocol
