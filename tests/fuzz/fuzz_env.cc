#include "fuzz_env.h"

#include <cstdio>
#include <cstdlib>

#include "observability/log.h"

namespace rtml::fuzz {

std::string SourcePath(const std::string& relative) {
  return std::string(RTML_SOURCE_DIR) + "/" + relative;
}

Env& DemoEnv() {
  static Env* env = [] {
    spdlog::set_level(spdlog::level::off);  // bad inputs are logged at debug at most
    auto* e = new Env();
    config::FeaturesConfig fc;
    fc.definitions = SourcePath("examples/fraud/features.yaml");
    fc.store = "memory";
    auto store = features::FeatureStore::Open(fc);
    if (!store.ok()) {
      std::fprintf(stderr, "fuzz: %s\n", store.status().ToString().c_str());
      std::abort();
    }
    e->store = std::move(store).value();
    auto scorer = pipeline::Scorer::Create(
        {.path = SourcePath("examples/fraud/models"), .default_model = "fraud"}, e->store.get(),
        {.drift = false}, &e->metrics);
    if (!scorer.ok()) {
      std::fprintf(stderr, "fuzz: %s\n", scorer.status().ToString().c_str());
      std::abort();
    }
    e->scorer = std::move(scorer).value();
    return e;
  }();
  return *env;
}

}  // namespace rtml::fuzz
