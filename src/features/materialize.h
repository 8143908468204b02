// Materialize: loads feature views' offline source files into the online
// store, for a time window or incrementally from each view's watermark (the
// end of its last materialization, kept in the store's meta space as
// "materialized:<view>"). The one implementation behind
// `rtml features materialize[-incremental]` and Feast's POST /materialize and
// /materialize-incremental, so both reject the same rows for the same reasons.
//
// A view whose file cannot be read fails alone (its entry carries the Status)
// and keeps its watermark; bad rows are rejected one by one and the others
// still go in.
// Thread-safety: one call per StoreSession at a time; the FeatureStore is
// shared and immutable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "features/feature_store.h"
#include "features/ingest.h"

namespace rtml::features {

struct MaterializeRequest {
  std::optional<int64_t> start_us;  // nullopt: from the beginning (ignored when incremental)
  int64_t end_us = 0;               // rows with event time < end_us
  bool incremental = false;         // start at each view's watermark
  std::vector<std::string> views;   // empty: every online view with a source file
};

struct ViewMaterialization {
  std::string view;
  std::optional<int64_t> start_us;  // nullopt: from the beginning
  int64_t end_us = 0;
  Status status;  // not ok: the view failed (unreadable file, store error)
  IngestResult result;
};

// Called as a view's file is read: bytes read so far, file size, rows so far.
using MaterializeProgress =
    std::function<void(const FeatureView& view, size_t bytes_done, size_t bytes_total,
                       size_t rows)>;
// Called before a view starts (with its window) and after it ends.
using MaterializeListener = std::function<void(const ViewMaterialization& view, bool done)>;

// Fails as a whole only when a named view does not exist (unknown_feature_view),
// is not online, has no source file, or the watermarks cannot be read.
Result<std::vector<ViewMaterialization>> Materialize(const FeatureStore& store,
                                                     StoreSession& session,
                                                     const MaterializeRequest& request,
                                                     const MaterializeListener& listener = {},
                                                     const MaterializeProgress& progress = {});

// {"views": [{"feature_view", "start", "end", "rows", "written", "skipped_stale",
//  "outside_window", "rejected", "rejections": [...], "error"?}], "failed": n}
std::string MaterializeResultJson(const std::vector<ViewMaterialization>& views);

}  // namespace rtml::features
