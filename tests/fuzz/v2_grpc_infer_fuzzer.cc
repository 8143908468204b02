// The Open Inference Protocol's gRPC ModelInferRequest (protocol/v2_grpc.h),
// typed contents or raw_input_contents, with enrichment, defaults and
// scoring: as ModelInfer runs it for the fraud model. The input is the
// serialized request, as gRPC hands it over.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_env.h"
#include "protocol/v2_grpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rtml::fuzz::Env& env = rtml::fuzz::DemoEnv();
  static rtml::pipeline::ScoreScratch scratch;
  std::string response;
  const rtml::pipeline::Payload p = rtml::protocol::V2GrpcRequest(
      std::string_view(reinterpret_cast<const char*>(data), size));
  (void)env.scorer->Score({.model = "fraud", .path = rtml::pipeline::Path::kV2Grpc}, p, &scratch,
                          &response);
  return 0;
}
