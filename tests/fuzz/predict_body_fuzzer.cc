// The predict body decoder, every shape ({"features": {...} | [...]},
// {"instances": [...]}, a flat row, "id"), with enrichment from the store,
// defaults and scoring: as POST /predict runs it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_env.h"
#include "protocol/rtml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rtml::fuzz::Env& env = rtml::fuzz::DemoEnv();
  static rtml::pipeline::ScoreScratch scratch;
  std::string response;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)env.scorer->Score({}, rtml::protocol::Json(body), &scratch, &response);
  return 0;
}
