#include "grpc/inference_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "protocol/open_inference.grpc.pb.h"
#include "protocol/v2_grpc.h"

namespace rtml::rpc {
namespace {

const std::string kRepo = std::string(RTML_SOURCE_DIR) + "/tests/testdata/models";

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scorer_ = pipeline::Scorer::Create({.path = kRepo, .default_model = "binary"}, nullptr, {},
                                       &metrics_)
                  .value();
    auto server = InferenceServer::Start({.port = 0, .threads = 2}, *scorer_,
                                         [this] { return std::string(not_ready_ ? "draining" : ""); },
                                         &metrics_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_GT(server_->port(), 0);
    stub_ = inference::GRPCInferenceService::NewStub(::grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->port()), ::grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::milliseconds(100));
  }

  static std::string Metadata(const ::grpc::ClientContext& ctx, const std::string& key) {
    const auto& md = ctx.GetServerTrailingMetadata();
    auto it = md.find(key);
    return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
  static inference::ModelInferRequest Row(float f1) {
    inference::ModelInferRequest req;
    req.set_model_name("binary");
    auto* in = req.add_inputs();
    in->set_name("f1");
    in->set_datatype("FP32");
    in->add_shape(1);
    req.add_raw_input_contents(std::string(reinterpret_cast<const char*>(&f1), sizeof(f1)));
    return req;
  }

  observability::Registry metrics_;
  std::unique_ptr<pipeline::Scorer> scorer_;
  std::atomic<bool> not_ready_{false};
  std::unique_ptr<InferenceServer> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(InferenceServiceTest, HealthAndMetadata) {
  {
    ::grpc::ClientContext ctx;
    inference::ServerLiveResponse r;
    ASSERT_TRUE(stub_->ServerLive(&ctx, {}, &r).ok());
    EXPECT_TRUE(r.live());
  }
  {
    ::grpc::ClientContext ctx;
    inference::ServerReadyResponse r;
    ASSERT_TRUE(stub_->ServerReady(&ctx, {}, &r).ok());
    EXPECT_TRUE(r.ready());
    not_ready_ = true;
    ::grpc::ClientContext again;
    ASSERT_TRUE(stub_->ServerReady(&again, {}, &r).ok());
    EXPECT_FALSE(r.ready());
  }
  {
    ::grpc::ClientContext ctx;
    inference::ServerMetadataResponse r;
    ASSERT_TRUE(stub_->ServerMetadata(&ctx, {}, &r).ok());
    EXPECT_EQ(r.name(), "rtml");
  }
  {
    inference::ModelReadyRequest req;
    req.set_name("iris");
    inference::ModelReadyResponse r;
    ::grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ModelReady(&ctx, req, &r).ok());
    EXPECT_TRUE(r.ready());
    req.set_name("nope");
    ::grpc::ClientContext again;
    ASSERT_TRUE(stub_->ModelReady(&again, req, &r).ok());
    EXPECT_FALSE(r.ready());
  }
  {
    inference::ModelMetadataRequest req;
    req.set_name("binary");
    req.set_version("2");
    inference::ModelMetadataResponse r;
    ::grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ModelMetadata(&ctx, req, &r).ok());
    EXPECT_EQ(r.name(), "binary");
    EXPECT_EQ(r.inputs_size(), 6);
    EXPECT_EQ(r.outputs(0).name(), "probability");
    req.set_version("9");
    ::grpc::ClientContext missing;
    const ::grpc::Status s = stub_->ModelMetadata(&missing, req, &r);
    EXPECT_EQ(s.error_code(), ::grpc::NOT_FOUND);
    EXPECT_EQ(Metadata(missing, "rtml-reason"), "unknown_version");
  }
}

TEST_F(InferenceServiceTest, ModelStatisticsCountWhatWasScored) {
  for (float f : {0.1f, 0.2f, 0.3f}) {
    inference::ModelInferResponse r;
    ::grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ModelInfer(&ctx, Row(f), &r).ok());
  }
  inference::ModelStatisticsRequest req;
  req.set_name("binary");
  req.set_version("2");
  inference::ModelStatisticsResponse r;
  ::grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->ModelStatistics(&ctx, req, &r).ok());
  ASSERT_EQ(r.model_stats_size(), 1);
  const inference::ModelStatistics& m = r.model_stats(0);
  EXPECT_EQ(m.name(), "binary");
  EXPECT_EQ(m.version(), "2");
  EXPECT_EQ(m.inference_count(), 3u);
  EXPECT_EQ(m.execution_count(), 3u);
  EXPECT_EQ(m.inference_stats().success().count(), 3u);
  EXPECT_EQ(m.inference_stats().queue().count(), 3u);  // a call's arrival to its scoring
  EXPECT_GT(m.inference_stats().compute_infer().ns(), 0u);
  EXPECT_GT(m.last_inference(), 0u);

  ::grpc::ClientContext all;
  ASSERT_TRUE(stub_->ModelStatistics(&all, {}, &r).ok());
  EXPECT_GE(r.model_stats_size(), 4);  // every version of every model (after the 1 above)
  req.set_name("nope");
  ::grpc::ClientContext missing;
  EXPECT_EQ(stub_->ModelStatistics(&missing, req, &r).error_code(), ::grpc::NOT_FOUND);
  EXPECT_EQ(Metadata(missing, "rtml-reason"), "unknown_model");
  req.set_name("");
  ::grpc::ClientContext nameless;
  EXPECT_EQ(stub_->ModelStatistics(&nameless, req, &r).error_code(), ::grpc::INVALID_ARGUMENT);
}

// grpc.health.v1.Health/Check with an empty HealthCheckRequest: the answer
// is HealthCheckResponse{status} (field 1, varint: 1 SERVING, 2 NOT_SERVING).
std::string HealthCheck(int port) {
  ::grpc::GenericStub stub(::grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                 ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext ctx;
  ::grpc::ByteBuffer in, out;
  std::atomic<bool> done{false};
  ::grpc::Status status;
  ::grpc::Slice empty("", 0);
  in = ::grpc::ByteBuffer(&empty, 1);
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", {}, &in, &out, [&](::grpc::Status st) {
    status = st;
    done = true;
  });
  while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!status.ok()) return "error: " + status.error_message();
  std::vector<::grpc::Slice> slices;
  (void)out.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes;
}

TEST_F(InferenceServiceTest, TheStandardHealthServiceFollowsTheDrain) {
  EXPECT_EQ(HealthCheck(server_->port()), std::string("\x08\x01", 2));  // SERVING
  server_->SetServing(false);
  EXPECT_EQ(HealthCheck(server_->port()), std::string("\x08\x02", 2));  // NOT_SERVING
}

TEST_F(InferenceServiceTest, InferScoresAsTheScorerDoesAndErrorsSayWhy) {
  inference::ModelInferRequest req = Row(0.5f);
  req.set_id("abc");
  inference::ModelInferResponse r;
  {
    ::grpc::ClientContext ctx;
    const ::grpc::Status s = stub_->ModelInfer(&ctx, req, &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(r.id(), "abc");
  EXPECT_EQ(r.model_version(), "2");
  ASSERT_EQ(r.raw_output_contents_size(), 1);
  float p = 0;
  std::memcpy(&p, r.raw_output_contents(0).data(), sizeof(p));
  pipeline::ScoreScratch scratch;
  std::string direct;
  const std::string bytes = req.SerializeAsString();
  ASSERT_TRUE(scorer_->Score({.model = "binary", .path = pipeline::Path::kV2Grpc},
                             protocol::V2GrpcRequest(bytes), &scratch, &direct)
                  .ok());
  inference::ModelInferResponse expected;
  ASSERT_TRUE(expected.ParseFromString(direct));
  EXPECT_EQ(r.raw_output_contents(0), expected.raw_output_contents(0));
  EXPECT_GT(p, 0.0f);

  req.mutable_inputs(0)->set_datatype("BYTES");
  ::grpc::ClientContext bad;
  ::grpc::Status s = stub_->ModelInfer(&bad, req, &r);
  EXPECT_EQ(s.error_code(), ::grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("BYTES is only for entity keys"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(Metadata(bad, "rtml-reason"), "wrong_datatype");
  EXPECT_EQ(Metadata(bad, "rtml-field"), "inputs.f1");

  // An input name no metadata value may hold is escaped, not a crash.
  req = Row(0.5f);
  req.mutable_inputs(0)->set_name("caf\xc3\xa9\n");
  ::grpc::ClientContext odd;
  s = stub_->ModelInfer(&odd, req, &r);
  EXPECT_EQ(s.error_code(), ::grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Metadata(odd, "rtml-field"), "inputs.caf%C3%A9%0A");

  req = Row(0.5f);
  req.set_model_name("nope");
  ::grpc::ClientContext unknown;
  s = stub_->ModelInfer(&unknown, req, &r);
  EXPECT_EQ(s.error_code(), ::grpc::NOT_FOUND);

  req = Row(0.5f);
  req.set_model_version("x");
  ::grpc::ClientContext version;
  s = stub_->ModelInfer(&version, req, &r);
  EXPECT_EQ(s.error_code(), ::grpc::NOT_FOUND);
  EXPECT_EQ(Metadata(version, "rtml-reason"), "unknown_version");

  // Bytes that are no ModelInferRequest, through the generic stub.
  ::grpc::GenericStub generic(::grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server_->port()), ::grpc::InsecureChannelCredentials()));
  ::grpc::ClientContext raw;
  const std::string junk = "\xff\xff\xff\xff";
  ::grpc::Slice slice(junk.data(), junk.size());
  ::grpc::ByteBuffer in(&slice, 1), out;
  std::atomic<bool> done{false};
  ::grpc::Status raw_status;
  generic.UnaryCall(&raw, "/inference.GRPCInferenceService/ModelInfer", {}, &in, &out,
                    [&](::grpc::Status st) {
                      raw_status = st;
                      done = true;
                    });
  while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(raw_status.error_code(), ::grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Metadata(raw, "rtml-reason"), "malformed_request");
}

TEST_F(InferenceServiceTest, ConcurrentCallsAndShutdownWithCallsInFlight) {
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        ::grpc::ClientContext ctx;
        inference::ModelInferResponse r;
        if (stub_->ModelInfer(&ctx, Row(0.1f * t), &r).ok()) ++ok;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 200);
  server_->Shutdown(std::chrono::milliseconds(100));
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  inference::ModelInferResponse r;
  EXPECT_FALSE(stub_->ModelInfer(&ctx, Row(0.5f), &r).ok());  // no longer served
}

TEST_F(InferenceServiceTest, APortInUseIsAClearError) {
  auto second = InferenceServer::Start({.port = server_->port(), .threads = 1}, *scorer_,
                                       [] { return std::string(); }, &metrics_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("grpc.port"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace rtml::rpc
