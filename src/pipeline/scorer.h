// Scorer: the one path from a predict request body to a response, shared by
// HTTP and (later) the Kafka stream worker so both validate, default and score
// identically.
//
// ScoreJson resolves the target model version, decodes the JSON body
// ({"features": {...} | [...]} or {"instances": [...]}) through the version's
// input schema into dense rows, runs the model on the whole batch, and writes
// the JSON response. Client errors come back as a Status whose code maps to an
// HTTP status and whose reason()/field() say what was wrong; malformed JSON
// names the byte offset.
// Thread-safety: Scorer is immutable after construction and shared by all
// threads; each thread passes its own ScoreScratch (reused buffers, so steady
// state allocates nothing per request).
// Ownership: borrows the repository and metrics registry, which must outlive it.
#pragma once

#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/repository.h"
#include "observability/metrics.h"
#include "schema/schema.h"

namespace rtml::pipeline {

struct ScoringOptions {
  int max_batch_size = 1024;
  bool ignore_unknown_features = false;
};

// Which model a request is for: empty name = the repository's default model;
// no version = that model's default version.
struct ScoreTarget {
  std::string_view model;
  std::optional<int64_t> version;
};

// Per-thread buffers, reused across requests.
struct ScoreScratch {
  simdjson::ondemand::parser parser;
  std::string padded;
  std::vector<float> rows;
  std::vector<float> outputs;
  std::vector<schema::Cell> cells;
};

class Scorer {
 public:
  Scorer(const model::ModelRepository& repo, ScoringOptions options,
         observability::Registry* metrics);

  // Resolves `target` to a loaded version, or a NotFound status naming what
  // is unknown.
  Result<const model::ModelVersion*> Resolve(const ScoreTarget& target) const;

  // Scores `body` for `target`; on success `*response` holds the JSON answer.
  Status ScoreJson(const ScoreTarget& target, std::string_view body, ScoreScratch* scratch,
                   std::string* response) const;

  const model::ModelRepository& repository() const { return repo_; }

 private:
  struct VersionMetrics {
    observability::Counter* requests;
    observability::Counter* predictions;
    observability::Histogram* latency;
  };
  struct Decoded {
    size_t n_rows = 0;
    bool batch = false;
    std::string_view id;  // raw JSON of "id", if given
  };

  schema::RowDecoder DecoderFor(const model::ModelVersion& v) const;
  Status Decode(const model::ModelVersion& v, std::string_view body, ScoreScratch* scratch,
                Decoded* out) const;
  Status DecodeTop(const model::ModelVersion& v, simdjson::ondemand::object top,
                   ScoreScratch* scratch, Decoded* out) const;
  Status DecodeInstances(const model::ModelVersion& v, simdjson::ondemand::array arr,
                         ScoreScratch* scratch, Decoded* out) const;
  void WriteResponse(const model::ModelVersion& v, const Decoded& d, const ScoreScratch& scratch,
                     std::string* response) const;

  const model::ModelRepository& repo_;
  ScoringOptions options_;
  std::unordered_map<const model::ModelVersion*, VersionMetrics> metrics_;
};

}  // namespace rtml::pipeline
