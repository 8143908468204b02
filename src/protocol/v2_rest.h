// The Open Inference Protocol (KServe V2) over REST, as Triton, KServe and
// MLServer speak it and tritonclient.http sends it: the infer request and
// response bodies (a codec: pipeline/codec.h) and the metadata documents.
// Written from the spec (kserve/open-inference-protocol,
// specification/protocol/inference_rest.md).
//
// A request's inputs are tensors {"name", "datatype", "shape", "data"}:
// either one per model input, named as the feature (shape [N] or [N, 1]),
// or one [N, n_features] tensor in the model's input order under any other
// name; entity keys for the feature store are tensors of their own (INT64
// or BYTES, shape [N]). Data is row-major, flat or nested. Datatypes FP32,
// FP64, INT8-64, UINT8-64 and BOOL for features; a NaN element is an absent
// value (its default, or missing). Inputs a request leaves out are read from
// the store or defaulted, as on every path. "outputs" selects what the
// answer carries; "id" is echoed. The answer's tensors (v2_tensor.h): a
// probability model answers "probability" [N], a classifier "probabilities"
// [N, K] (the labels' order, metadata's "labels") and "label" [N] (BYTES,
// the most likely), a regression "value" [N], all FP32 but the label. What
// rtml adds (the route, "feature_store", fallbacks) is in the answer's
// "parameters".
// Thread-safety: stateless; use from any thread.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "common/json_writer.h"
#include "model/repository.h"
#include "pipeline/codec.h"
#include "pipeline/scorer.h"
#include "schema/schema.h"

namespace rtml::protocol {

const pipeline::Codec& V2Rest();
inline pipeline::Payload V2Json(std::string_view body) { return {&V2Rest(), body}; }

// GET /v2/models/{m}[/versions/{v}]: name, versions, platform, inputs (each
// feature and entity key, shape [-1]) and outputs; "parameters" names the
// version the document describes, its labels and which inputs are entity
// keys.
void WriteV2ModelMetadata(JsonWriter& w, const model::ModelEntry& e, const model::ModelVersion& v,
                          std::span<const schema::KeySpec> keys);
// GET /v2/models[/{m}[/versions/{v}]]/stats (the statistics extension):
// {"model_stats": [...]}, one per version, as Triton has it.
void WriteV2ModelStatistics(JsonWriter& w, std::span<const pipeline::VersionTotals> all);
// The V2 datatype of a feature's dtype (FP32, INT64, BOOL).
std::string_view V2Datatype(schema::DType t);

}  // namespace rtml::protocol
