// features.yaml: entities, feature views (batch and stream, with their
// aggregations) and feature services, as `rtml features apply` and
// `rtml serve` parse and validate them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "features/definitions.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)rtml::features::Definitions::Parse(
      std::string_view(reinterpret_cast<const char*>(data), size), "/nonexistent",
      "features.yaml");
  return 0;
}
