// Fallback policy: whether a request or event its model version could not
// answer is answered by the version's fallback instead (model.yaml
// `fallback: {version: N}` or a constant; model/repository.h), and why.
//
// Only failures that are not the request's fall back: the feature store
// unavailable for an input without a default, the request's deadline passed
// (before the store read, during it or before the model ran), the model
// itself failing. A client error (4xx: malformed body, bad value, missing
// required input, unknown model) never does: a fallback must not hide a bad
// request. The mechanism is the Scorer's (pipeline/fallback.cc): the answer
// carries "fallback": true and "fallback_reason", and is counted in
// rtml_fallbacks_total{reason} and rtml_requests_total{outcome="fallback"}.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "common/status.h"

namespace rtml::pipeline {

inline constexpr const char* kFallbackReasons[] = {"feature_store_unavailable",
                                                   "deadline_exceeded", "model_failed"};
inline constexpr int kFallbackReasonCount = 3;

// The index into kFallbackReasons of why a failure with status `s` falls
// back, or nullopt when it must be answered as the error it is.
std::optional<int> FallbackReason(const Status& s);

}  // namespace rtml::pipeline
