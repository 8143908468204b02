#include "protocol/v2_grpc.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstring>

#include "pipeline/scorer.h"
#include "protocol/open_inference.pb.h"
#include "protocol/rtml_json.h"

namespace rtml::protocol {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using pipeline::Path;

const std::string kRepo = std::string(RTML_SOURCE_DIR) + "/tests/testdata/models";

class V2GrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scorer_ = pipeline::Scorer::Create({.path = kRepo, .default_model = "binary"}, nullptr, {},
                                       &metrics_)
                  .value();
  }

  // Scores the request as its bytes (the codec parses them) and, the way the
  // gRPC service hands it over, already parsed: both must answer alike.
  Status Infer(std::string_view model, const ModelInferRequest& req) {
    const std::string bytes = req.SerializeAsString();
    const pipeline::ScoreTarget target{.model = model, .path = Path::kV2Grpc};
    Status s = scorer_->Score(target, V2GrpcRequest(bytes), &scratch_, &response_);
    std::string again;
    Status parsed = scorer_->Score(target, V2GrpcRequest(bytes, &req), &scratch_, &again);
    EXPECT_EQ(s.ToString(), parsed.ToString());
    if (s.ok()) {
      EXPECT_EQ(response_, again);
    }
    return s;
  }
  ModelInferResponse Ok(std::string_view model, const ModelInferRequest& req) {
    Status s = Infer(model, req);
    EXPECT_TRUE(s.ok()) << req.DebugString() << " -> " << s.ToString();
    ModelInferResponse r;
    EXPECT_TRUE(r.ParseFromString(response_));
    return r;
  }
  Status Bad(std::string_view model, const ModelInferRequest& req) {
    Status s = Infer(model, req);
    EXPECT_FALSE(s.ok()) << req.DebugString();
    return s;
  }
  double Native(std::string_view model, std::string_view body) {
    std::string out;
    EXPECT_TRUE(scorer_->Score({.model = model}, Json(body), &scratch_, &out).ok()) << body;
    return double(parser_.parse(out)["prediction"]);
  }

  static ModelInferRequest::InferInputTensor* Input(ModelInferRequest& req, std::string name,
                                                    std::string datatype,
                                                    std::vector<int64_t> shape) {
    auto* in = req.add_inputs();
    in->set_name(std::move(name));
    in->set_datatype(std::move(datatype));
    for (int64_t d : shape) in->add_shape(d);
    return in;
  }
  template <class T>
  static void Raw(ModelInferRequest& req, std::initializer_list<T> values) {
    std::string* raw = req.add_raw_input_contents();
    for (T v : values) raw->append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  static std::vector<float> Floats(const std::string& raw) {
    std::vector<float> out(raw.size() / sizeof(float));
    std::memcpy(out.data(), raw.data(), out.size() * sizeof(float));
    return out;
  }

  observability::Registry metrics_;
  std::unique_ptr<pipeline::Scorer> scorer_;
  pipeline::ScoreScratch scratch_;
  std::string response_;
  simdjson::dom::parser parser_;
};

TEST_F(V2GrpcTest, TypedContentsPerFeatureScoreAsTheNativeBody) {
  ModelInferRequest req;
  req.set_id("r1");
  auto* f1 = Input(req, "f1", "FP32", {2})->mutable_contents();
  f1->add_fp32_contents(0.5f);
  f1->add_fp32_contents(-1.0f);
  auto* f2 = Input(req, "f2", "FP64", {2, 1})->mutable_contents();
  f2->add_fp64_contents(1.5);
  f2->add_fp64_contents(2);
  auto* f5 = Input(req, "f5", "INT32", {2})->mutable_contents();
  f5->add_int_contents(3);
  f5->add_int_contents(4);
  const ModelInferResponse r = Ok("binary", req);
  EXPECT_EQ(r.id(), "r1");
  EXPECT_EQ(r.model_name(), "binary");
  EXPECT_EQ(r.model_version(), "2");
  ASSERT_EQ(r.outputs_size(), 1);
  EXPECT_EQ(r.raw_output_contents_size(), 0);  // typed in, typed out
  const auto& out = r.outputs(0);
  EXPECT_EQ(out.name(), "probability");
  EXPECT_EQ(out.datatype(), "FP32");
  ASSERT_EQ(out.shape_size(), 1);
  EXPECT_EQ(out.shape(0), 2);
  ASSERT_EQ(out.contents().fp32_contents_size(), 2);
  EXPECT_FLOAT_EQ(out.contents().fp32_contents(0),
                  Native("binary", R"({"f1": 0.5, "f2": 1.5, "f5": 3})"));
  EXPECT_FLOAT_EQ(out.contents().fp32_contents(1),
                  Native("binary", R"({"f1": -1, "f2": 2, "f5": 4})"));
  EXPECT_EQ(r.parameters().at("route").string_param(), "default");
}

TEST_F(V2GrpcTest, RawMatrixInModelOrderAnswersRawAndNaNIsAbsent) {
  ModelInferRequest req;
  Input(req, "input", "FP32", {2, 6});
  Raw<float>(req, {std::nanf(""), 0.5f, 2, 3, 4, 5, 1, 0.5f, 2, 3, 4, 5});
  const ModelInferResponse r = Ok("binary", req);
  ASSERT_EQ(r.raw_output_contents_size(), 1);
  EXPECT_FALSE(r.outputs(0).has_contents());
  const std::vector<float> p = Floats(r.raw_output_contents(0));
  ASSERT_EQ(p.size(), 2u);
  EXPECT_FLOAT_EQ(p[0], Native("binary", R"({"features": [0.25, 0.5, 2, 3, 4, 5]})"));
  EXPECT_FLOAT_EQ(p[1], Native("binary", R"({"features": [1, 0.5, 2, 3, 4, 5]})"));
}

TEST_F(V2GrpcTest, ClassesAnswerProbabilitiesAndLabelsAndOutputsSelect) {
  ModelInferRequest req;
  Input(req, "f1", "FP64", {2});
  Raw<double>(req, {0.5, 3});
  ModelInferResponse r = Ok("iris", req);
  ASSERT_EQ(r.outputs_size(), 2);
  EXPECT_EQ(r.outputs(0).name(), "probabilities");
  ASSERT_EQ(r.outputs(0).shape_size(), 2);
  EXPECT_EQ(r.outputs(0).shape(1), 3);
  const std::vector<float> probs = Floats(r.raw_output_contents(0));
  ASSERT_EQ(probs.size(), 6u);
  EXPECT_NEAR(probs[0] + probs[1] + probs[2], 1.0, 1e-5);
  EXPECT_EQ(r.outputs(1).datatype(), "BYTES");
  // BYTES raw: a 4-byte little-endian length, then the bytes, per element.
  const std::string& labels = r.raw_output_contents(1);
  uint32_t n = 0;
  ASSERT_GE(labels.size(), 4u);
  std::memcpy(&n, labels.data(), 4);
  const std::string first = labels.substr(4, n);
  EXPECT_TRUE(first == "low" || first == "mid" || first == "high") << first;

  req.add_outputs()->set_name("label");
  req.clear_raw_input_contents();
  req.mutable_inputs(0)->mutable_contents()->add_fp64_contents(0.5);
  req.mutable_inputs(0)->mutable_contents()->add_fp64_contents(3);
  r = Ok("iris", req);
  ASSERT_EQ(r.outputs_size(), 1);
  EXPECT_EQ(r.outputs(0).name(), "label");
  ASSERT_EQ(r.outputs(0).contents().bytes_contents_size(), 2);
  EXPECT_EQ(r.outputs(0).contents().bytes_contents(0), first);

  req.mutable_outputs(0)->set_name("probability");
  const Status s = Bad("iris", req);
  EXPECT_EQ(s.reason(), "unknown_output");
  EXPECT_NE(s.message().find("probabilities, label"), std::string::npos) << s.message();
}

TEST_F(V2GrpcTest, BadTensorsAreToldWhatIsWrong) {
  auto one = [&](auto fill) {
    ModelInferRequest req;
    fill(req);
    return Bad("binary", req);
  };
  Status s = one([](ModelInferRequest& r) {
    Input(r, "f1", "FP32", {2})->mutable_contents()->add_fp64_contents(1);
  });
  EXPECT_EQ(s.reason(), "wrong_datatype");
  EXPECT_NE(s.message().find("fp32_contents"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("fp64_contents"), std::string::npos) << s.message();
  EXPECT_EQ(s.field(), "inputs.f1");

  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "FP32", {2})->mutable_contents()->add_fp32_contents(1);
  });
  EXPECT_EQ(s.reason(), "wrong_shape");
  EXPECT_NE(s.message().find("has 1 values"), std::string::npos) << s.message();

  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "BYTES", {1})->mutable_contents()->add_bytes_contents("x");
  });
  EXPECT_EQ(s.reason(), "wrong_datatype");

  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "FP16", {1})->mutable_contents()->add_fp32_contents(1);
  });
  EXPECT_EQ(s.reason(), "wrong_datatype");
  EXPECT_NE(s.message().find("raw_input_contents"), std::string::npos) << s.message();

  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "FLOAT", {1})->mutable_contents()->add_fp32_contents(1);
  });
  EXPECT_EQ(s.reason(), "wrong_datatype");

  s = one([](ModelInferRequest& r) {
    Input(r, "nope", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  });
  EXPECT_EQ(s.reason(), "unknown_input");

  // int_contents carries INT8 and INT16 too: a value wider than its type.
  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "INT16", {1})->mutable_contents()->add_int_contents(70000);
  });
  EXPECT_EQ(s.reason(), "out_of_range");
  EXPECT_NE(s.message().find("INT16's range -32768..32767"), std::string::npos) << s.message();
  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "UINT8", {1})->mutable_contents()->add_uint_contents(256);
  });
  EXPECT_EQ(s.reason(), "out_of_range");

  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "FP32", {1, 2, 1})->mutable_contents()->add_fp32_contents(1);
  });
  EXPECT_EQ(s.reason(), "wrong_shape");

  s = one([](ModelInferRequest& r) {  // truncated raw data
    Input(r, "f1", "FP32", {2});
    Raw<float>(r, {1.0f});
  });
  EXPECT_EQ(s.reason(), "bad_binary_data");

  s = one([](ModelInferRequest& r) {  // one raw entry for two inputs
    Input(r, "f1", "FP32", {1});
    Input(r, "f2", "FP32", {1});
    Raw<float>(r, {1.0f});
  });
  EXPECT_EQ(s.reason(), "bad_binary_data");
  EXPECT_EQ(s.field(), "raw_input_contents");

  s = one([](ModelInferRequest& r) {  // both ways at once
    Input(r, "f1", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    Raw<float>(r, {1.0f});
  });
  EXPECT_EQ(s.reason(), "bad_request");

  s = one([](ModelInferRequest& r) {  // rows disagree
    Input(r, "f1", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    Input(r, "f2", "FP32", {2})->mutable_contents()->add_fp32_contents(1);
  });
  EXPECT_EQ(s.reason(), "wrong_shape");

  s = one([](ModelInferRequest&) {});
  EXPECT_EQ(s.reason(), "bad_request");
  EXPECT_EQ(s.field(), "inputs");

  s = one([](ModelInferRequest& r) {
    Input(r, "f1", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    (*r.mutable_parameters())["timeout"].set_string_param("soon");
  });
  EXPECT_EQ(s.reason(), "bad_timeout");
  EXPECT_EQ(s.field(), "parameters.timeout");

  std::string out;
  s = scorer_->Score({.model = "binary", .path = Path::kV2Grpc}, V2GrpcRequest("\xff\xff\xff"),
                     &scratch_, &out);
  EXPECT_EQ(s.reason(), "malformed_request");
}

TEST_F(V2GrpcTest, ATimeoutParameterThatHasPassedIsNotScored) {
  ModelInferRequest req;
  Input(req, "f1", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  (*req.mutable_parameters())["timeout"].set_int64_param(1);  // 1 µs
  std::string bytes = req.SerializeAsString();
  std::string out;
  // The timeout counts from the call's arrival: 1 µs after one that
  // arrived 1 ms ago has passed by the time the model would run.
  pipeline::ScoreTarget target{.model = "binary", .path = Path::kV2Grpc};
  target.received = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  Status s = scorer_->Score(target, V2GrpcRequest(bytes), &scratch_, &out);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_EQ(s.reason(), "deadline_exceeded");
  (*req.mutable_parameters())["timeout"].set_int64_param(5'000'000);
  bytes = req.SerializeAsString();
  EXPECT_TRUE(scorer_->Score(target, V2GrpcRequest(bytes), &scratch_, &out).ok()) << out;
  EXPECT_TRUE(Infer("binary", req).ok());
}

TEST_F(V2GrpcTest, TheLogKeepsJson) {
  ModelInferRequest req;
  req.set_id("log-me");
  Input(req, "f1", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  const std::string bytes = req.SerializeAsString();
  const std::string_view text = V2Grpc().LogText(V2GrpcRequest(bytes));
  simdjson::dom::element e;
  ASSERT_FALSE(parser_.parse(text.data(), text.size()).get(e)) << text;
  EXPECT_EQ(std::string_view(e["id"]), "log-me");
  ASSERT_TRUE(Infer("binary", req).ok());
  const std::string_view answer = V2Grpc().LogAnswer(response_, {});
  ASSERT_FALSE(parser_.parse(answer.data(), answer.size()).get(e)) << answer;
  EXPECT_EQ(std::string_view(e["modelName"]), "binary");
}

TEST_F(V2GrpcTest, FeatureMetadataMatchesRest) {
  const auto repo = scorer_->repository();
  const model::ModelEntry* e = repo->Find("iris");
  ASSERT_NE(e, nullptr);
  inference::ModelMetadataResponse m;
  FillV2ModelMetadata(*e, *e->Get(std::nullopt), {}, &m);
  EXPECT_EQ(m.name(), "iris");
  ASSERT_GT(m.inputs_size(), 0);
  EXPECT_EQ(m.inputs(0).shape(0), -1);
  ASSERT_EQ(m.outputs_size(), 2);
  EXPECT_EQ(m.outputs(0).name(), "probabilities");
  EXPECT_EQ(m.outputs(0).shape(1), 3);
}

}  // namespace
}  // namespace rtml::protocol
