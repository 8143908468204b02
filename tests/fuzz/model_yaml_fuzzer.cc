// model.yaml (a version's inputs, output, feature service, warm-up) and
// serving.yaml (labels, traffic split, shadows) as the model repository
// reads them. The first byte picks the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/repository.h"
#include "model/serving_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view yaml(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    (void)rtml::model::ParseModelSpec(yaml, "model.yaml");
  } else {
    (void)rtml::model::ParseServingPolicy(yaml, "serving.yaml");
  }
  return 0;
}
