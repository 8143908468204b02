// The Open Inference Protocol (KServe V2) over gRPC, as tritonclient.grpc,
// KServe and MLServer send it: ModelInfer's request and response (a codec:
// pipeline/codec.h) and the metadata RPCs' answers. The messages are
// generated from open_inference.proto (written from the spec).
//
// A request's inputs are the REST codec's (v2_rest.h), as InferInputTensor:
// one per feature ([N] or [N, 1]) or one [N, n_features] matrix, entity keys
// as INT64 or BYTES tensors. Each input's elements are in its `contents`
// field of its datatype (fp32_contents for FP32, int64_contents for INT64,
// int_contents for INT8-32, bytes_contents for BYTES, ...) or, for all
// inputs at once, in raw_input_contents (tritonclient's way; FP16 and BF16
// only so). The answer has the REST codec's output tensors, raw
// (raw_output_contents) when the request was raw and in `contents`
// otherwise, as MLServer answers; the request's `id` is echoed and rtml's
// extras (route, feature_store, fallback...) are the response's parameters.
// A "timeout" parameter (int64, microseconds: tritonclient's) or
// "timeout_ms" bounds the request, as the call's gRPC deadline does.
// Errors are the same Status as on every path (grpc_service.h maps them).
// Thread-safety: stateless; use from any thread.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "model/repository.h"
#include "pipeline/codec.h"
#include "pipeline/scorer.h"
#include "schema/schema.h"

namespace inference {
class ModelInferRequest;
class ModelMetadataResponse;
class ModelStatisticsResponse;
}  // namespace inference

namespace rtml::protocol {

const pipeline::Codec& V2Grpc();
// A serialized ModelInferRequest; `parsed`, if the transport parsed it
// already, the same request (it must outlive the payload's use).
inline pipeline::Payload V2GrpcRequest(std::string_view bytes,
                                       const inference::ModelInferRequest* parsed = nullptr) {
  return {.codec = &V2Grpc(), .bytes = bytes, .header_size = 0, .parsed = parsed};
}

// ModelMetadata's answer for one version: as GET /v2/models/{m}.
void FillV2ModelMetadata(const model::ModelEntry& e, const model::ModelVersion& v,
                         std::span<const schema::KeySpec> keys,
                         inference::ModelMetadataResponse* out);

// ModelStatistics' answer: as GET /v2/models/.../stats.
void FillV2ModelStatistics(std::span<const pipeline::VersionTotals> all,
                           inference::ModelStatisticsResponse* out);

}  // namespace rtml::protocol
