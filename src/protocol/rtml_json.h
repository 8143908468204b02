// rtml's own JSON wire format: the predict bodies of POST /predict and
// /v1/models/{m}/predict, and the events of the Kafka stream (the same body,
// which may also name its "model" and carry an "event_time").
//
// A body is one of {"features": {name: value} | [values in model order]},
// {"instances": [rows]} or a flat row ({"user_id": 1, "amount": 9.5}), with
// an optional "id" echoed in the answer. The answer is
// {"id", "model", "version", "route", "prediction" | "predictions",
// "defaulted", "missing", "feature_statuses", "feature_store", "fallback"...}
// (README.md, "API").
// Thread-safety: the codec is stateless; use it from any thread.
#pragma once

#include "pipeline/codec.h"

namespace rtml::protocol {

const pipeline::Codec& RtmlJson();
// The Kafka event is rtml's JSON body: the same codec.
inline const pipeline::Codec& KafkaEvent() { return RtmlJson(); }
// A payload of rtml JSON.
inline pipeline::Payload Json(std::string_view body) { return {&RtmlJson(), body}; }

}  // namespace rtml::protocol
