// FeastApi: the HTTP contract of Feast's feature server (`feast serve`), so
// that Feast's SDK configured with `online_store: {type: remote, path:
// http://<rtml>}` and other clients of that server work against rtml
// unchanged:
//
//   POST /get-online-features       read (by feature list or feature service)
//   POST /push                      {"push_source_name", "df", "to"}; all rows
//                                   or none, as Feast's server
//   POST /write-to-online-store     {"feature_view_name", "df"}: what the SDK's
//                                   push() and write_to_online_store() send
//   POST /materialize               {"start_ts", "end_ts", "feature_views",
//                                    "disable_event_timestamp"}
//   POST /materialize-incremental   {"end_ts", "feature_views"}
//   GET  /health
//   POST /retrieve-online-documents, /search: 404 in Feast's shape (no vector
//        search in rtml's stores)
//
// Errors take Feast's shape: the body is a JSON string holding
// {"module", "class", "message"} (plus rtml's "reason" and "field"), which the
// SDK raises as that class (feast.errors.FeatureViewNotFoundException, ...);
// the status code is the one Feast's class carries (404 for unknown objects,
// 422 for an unknown push source), else rtml's own (400, 413, 415, 503).
// Thread-safety: pure functions over immutable definitions.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "features/materialize.h"
#include "http/server.h"

namespace rtml::http::feast {

enum class Op { kGetOnlineFeatures, kPush, kWriteToOnlineStore, kMaterialize,
                kMaterializeIncremental, kHealth,
                kVectorSearch };  // /retrieve-online-documents, /search: refused


// Fills `res` with `status` in Feast's error shape.
void WriteError(const Status& status, Response& res);

// Parses a /materialize (incremental = false) or /materialize-incremental
// body. `query` is the request target's query string (Feast's `async` and
// `force` flags, refused: rtml materializes synchronously).
Result<features::MaterializeRequest> ParseMaterialize(std::string_view body,
                                                      std::string_view query, bool incremental,
                                                      const Clock& clock);

}  // namespace rtml::http::feast
