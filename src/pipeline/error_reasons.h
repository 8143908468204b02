// The reasons a request or event can be refused with (Status::reason()), so
// that HTTP error counters and stream dead-letter counters can be registered
// once, at start-up, with every label value they will use.
#pragma once

namespace rtml::pipeline {

inline constexpr const char* kErrorReasons[] = {
    "malformed_json",  "bad_request",       "wrong_type",          "out_of_range",
    "missing_feature", "unknown_feature",   "duplicate_feature",   "wrong_length",
    "batch_too_large", "body_too_large",    "unsupported_media_type", "unknown_model",
    "unknown_version", "not_found",         "method_not_allowed",  "internal",
    "unavailable",     "feature_store_unavailable", "feature_store_error",
    "unknown_feature_view", "unknown_feature_service", "missing_entity_key",
    "bad_entity_key",  "ragged_columns",    "missing_column",      "offline_view",
    "bad_feature_record", "unknown_push_source", "rejected_rows", "bad_timestamp",
    "unauthorized",    "forbidden",         "model_load_failed",   "unknown_label",
    "bad_aggregation_event", "stream_feature_view",
    "queue_wait",      "queue_full",        "deadline_exceeded",   "bad_timeout",
    // the Open Inference Protocol's (REST and gRPC)
    "wrong_datatype",  "wrong_shape",       "unknown_input",       "unknown_output",
    "bad_binary_data", "malformed_request",
    "other"};

}  // namespace rtml::pipeline
