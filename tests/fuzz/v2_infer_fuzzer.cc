// The Open Inference Protocol's infer body (protocol/v2_rest.h), JSON and
// binary tensors, with enrichment, defaults and scoring: as POST
// /v2/models/fraud/infer runs it. The first two bytes of the input (little
// endian) are the Inference-Header-Content-Length (0: all JSON); the rest is
// the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_env.h"
#include "protocol/v2_rest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  rtml::fuzz::Env& env = rtml::fuzz::DemoEnv();
  static rtml::pipeline::ScoreScratch scratch;
  std::string response;
  rtml::pipeline::Payload p = rtml::protocol::V2Json(
      std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
  p.header_size = data[0] | (uint64_t{data[1]} << 8);
  (void)env.scorer->Score({.model = "fraud", .path = rtml::pipeline::Path::kV2Rest}, p, &scratch,
                          &response);
  return 0;
}
