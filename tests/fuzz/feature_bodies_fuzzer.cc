// The feature API bodies: push, get-online-features (rtml's and Feast's
// shapes are the same decoders) and Feast's materialize bodies. The first
// byte picks the decoder; the rest is the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_env.h"
#include "http/feast_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  rtml::fuzz::Env& env = rtml::fuzz::DemoEnv();
  static std::unique_ptr<rtml::features::StoreSession> session =
      env.store->online().NewSession();
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string out;
  switch (data[0] % 4) {
    case 0: (void)env.store->PushJson(body, *session, &out); break;
    case 1: (void)env.store->GetOnlineFeaturesJson(body, *session, &out); break;
    case 2:
      (void)rtml::http::feast::ParseMaterialize(body, "", false, rtml::SystemClock::Get());
      break;
    case 3:
      (void)rtml::http::feast::ParseMaterialize(body, "", true, rtml::SystemClock::Get());
      break;
  }
  return 0;
}
