// What the fuzz targets share: the fraud demo's models and feature
// definitions over the in-memory store, built once per process, so every
// input goes through the code a request reaches in `rtml serve`.
#pragma once

#include <memory>
#include <string>

#include "features/feature_store.h"
#include "observability/metrics.h"
#include "pipeline/scorer.h"

namespace rtml::fuzz {

struct Env {
  observability::Registry metrics;
  std::unique_ptr<features::FeatureStore> store;
  std::unique_ptr<pipeline::Scorer> scorer;
};

// The demo stack (examples/fraud, memory store); aborts if it cannot load.
Env& DemoEnv();

// RTML_SOURCE_DIR + "/" + relative.
std::string SourcePath(const std::string& relative);

}  // namespace rtml::fuzz
