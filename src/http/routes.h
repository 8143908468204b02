// Routes: rtml's HTTP API on top of the Scorer and the model repository.
//
//   POST /predict                                  default model, default version
//   POST /v1/models/{name}/predict                 a model's default version
//   POST /v1/models/{name}/versions/{v}/predict    one version
//   POST /v1/models/{name}/labels/{label}/predict  the version serving.yaml labels so
//   GET  /v1/models, /v1/models/{name}             loaded models and their inputs
//   GET  /v1/repository/index                      every model version on disk, its state
//   POST /v1/repository/models/{name}/load|unload  re-read / stop serving a model
//   GET  /healthz, /readyz, /metrics
//   GET  /v1/stats                                  throughput and latency percentiles, JSON
//   GET  /                                          the live dashboard page (compiled in)
//   POST /v1/features/push, /v1/features/get-online-features   rtml's feature API
//   GET  /v1/features                               the feature registry
//   POST /push, /get-online-features, /write-to-online-store, /materialize,
//        /materialize-incremental; GET /health      Feast's feature server (feast_api.h)
//   GET  /v2, /v2/health/live, /v2/health/ready     the Open Inference Protocol (V2):
//   GET  /v2/models/{name}[/versions/{v}][/ready]   metadata and readiness,
//   GET  /v2/models[/{name}[/versions/{v}]]/stats   the statistics extension,
//   POST /v2/models/{name}[/versions/{v}]/infer     inference (protocol/v2_rest.h)
//   POST /v2/repository/index, /v2/repository/models/{name}/load|unload  (admin)
//
// The routes are a table (MakeTable(), http/route_table.h): a pattern, its
// methods, whether it queues under admission control, and its handler.
// Every error is a JSON body {"error": {"code", "reason", "field", "message"}}
// with a 4xx status for client errors, counted in rtml_request_errors_total
// by reason; the Feast routes answer errors in Feast's shape instead, the V2
// routes in V2's ({"error": "<message>", "reason", "field"}).
// Materializing and model loads run as Deferred work, off the event loops.
// With an admin token, the repository API and feature writes need
// "Authorization: Bearer <token>" (401 without, 403 with another).
// Thread-safety: Handle() runs concurrently on every server loop, each with
// its own ThreadState; shared state is immutable or atomic.
// Ownership: borrows the Scorer and Registry, which must outlive it.
#pragma once

#include <atomic>
#include <functional>
#include <chrono>
#include <string>
#include <vector>

#include "features/feature_store.h"
#include "http/feast_api.h"
#include "http/route_table.h"
#include "http/server.h"
#include "common/json_writer.h"
#include "observability/metrics.h"
#include "observability/windowed_histogram.h"
#include "pipeline/scorer.h"

namespace rtml::http {

struct PendingPredict;  // routes.cc
struct Scratch;

class Routes final : public Handler {
 public:
  // `store` may be null (no feature store configured).
  Routes(const pipeline::Scorer& scorer, const features::FeatureStore* store,
         observability::Registry* metrics);

  // Readiness reported by /readyz (set once models are loaded and serving).
  void set_ready(bool ready) { ready_.store(ready); }
  // A graceful stop began: /readyz answers 503 with "reason": "draining".
  void set_draining() { draining_.store(true); }
  // Adds fields to GET /v1/stats (e.g. the stream worker's); set before serving.
  void set_extra_stats(std::function<void(JsonWriter&)> write) { extra_stats_ = std::move(write); }
  // A further readiness condition: returns why the server is not ready yet
  // (e.g. "catching_up": stream feature views still reading their topics),
  // or empty when it is. Set before Start().
  void set_readiness(std::function<std::string()> not_ready) { not_ready_ = std::move(not_ready); }
  // false: no per-request metric updates (to measure their cost).
  void set_metrics(bool on) { metrics_on_ = on; }
  // Why /readyz answers 503 (draining, starting, catching up), or empty;
  // the gRPC service's ServerReady asks the same.
  std::string NotReadyReason() const;
  // Non-empty: the repository API and feature writes need this bearer token.
  void set_admin_token(std::string token) { admin_token_ = std::move(token); }

  // With a Redis store, each loop reads it without blocking (AsyncReads):
  // a queued predict that needs stored features is answered once they are
  // read, and the loop decodes and scores others meanwhile.
  std::unique_ptr<ThreadState> NewThreadState(boost::asio::io_context& io) override;
  // A loop holding kMaxInFlight predicts that wait for the store takes no more.
  bool Busy(const ThreadState& state) const override;
  // Scores and answers the predicts whose stored features were read, in
  // turns; one such predict.
  void ResumeTurn(Scratch& scratch);
  void ResumePredict(PendingPredict& p);
  // Predicts wait their turn under admission control; nothing else does.
  bool Queued(const Request& req) const override;
  Deferred Handle(const Request& req, Response& res, ThreadState& state,
                  RequestContext& context) override;
  void HandleRefused(const Request& req, const Status& why, Response& res,
                     ThreadState& state) override;
  void HandleUnreadable(bhttp::status status, std::string_view why, std::string_view target,
                        Response& res) override;

 private:
  std::string_view ModelForLog(const std::vector<std::string_view>& path,
                               ThreadState& state) const;
  struct ErrorCounter {
    std::string reason;
    observability::Counter* counter;
  };
  // What a route's handler is given.
  struct Call {
    const Request& req;
    Response& res;
    ThreadState& state;
    RequestContext& context;
    std::array<std::string_view, 3> args;  // the pattern's "{}" segments
  };
  // The shape a route's errors take.
  enum class Shape : uint8_t { kRtml, kFeast, kV2 };
  struct RouteHandler {
    Deferred (*fn)(Routes&, Call&) = nullptr;
    Shape shape = Shape::kRtml;
  };
  using Table = RouteTable<RouteHandler>;
  static Table MakeTable();
  Shape ShapeFor(std::span<const std::string_view> path) const;

  Deferred Route(const Request& req, Response& res, ThreadState& state,
                 RequestContext& context);
  void Finish(const Request& req, const Response& res);
  // A predict in rtml's JSON or V2's (the shape says which).
  void Predict(Call& c, const pipeline::ScoreTarget& target, std::string_view version,
               Shape shape);
  Deferred FeastOp(feast::Op op, Call& c);
  template <feast::Op op>
  static Deferred FeastAt(Routes& r, Call& c) {
    return r.FeastOp(op, c);
  }
  Deferred RepositoryChangeRoute(Call& c, bool load);
  // The Open Inference Protocol's routes (v2_routes.cc).
  void V2Server(Response& res);
  void V2Ready(Response& res);
  void V2ModelMetadata(std::string_view model, std::string_view version, bool ready_only,
                       Response& res);
  void V2Statistics(std::string_view model, std::string_view version, Response& res);
  void V2Error(const Status& status, Response& res);
  void V2RepositoryIndex(Call& c);
  Deferred V2RepositoryChange(Call& c, bool load);
  void ErrorIn(Shape shape, const Status& status, Response& res);
  void ListModels(std::string_view name, Response& res);
  // 401 without a bearer token, 403 with another one; OK when none is set.
  Status CheckAdmin(const Request& req, Response& res) const;
  void RepositoryIndex(Response& res);
  Deferred RepositoryChange(const Request& req, std::string model, bool load, Response& res);
  void FeatureApi(const Request& req, std::string_view op, Response& res, ThreadState& state);
  void WrongMethod(const Request& req, uint8_t allowed, Shape shape, Response& res);
  Deferred FeastRoute(feast::Op op, const Request& req, Response& res, ThreadState& state);
  void FeastNow(feast::Op op, const Request& req, Response& res, ThreadState& state);
  Deferred MaterializeLater(bool incremental, const Request& req, std::string request_id);
  features::StoreSession& StoreSessionOf(ThreadState& state) const;
  static Status NoStore();
  void ListFeatures(Response& res);
  void Health(Response& res);
  void Ready(Response& res);
  void Metrics(Response& res);
  void Stats(Response& res);
  void Dashboard(Response& res);
  void Error(const Status& status, Response& res);       // rtml's error shape
  void FeastError(const Status& status, Response& res);  // Feast's
  void CountError(const Status& status);
  void CountResponse(unsigned code);

  const pipeline::Scorer& scorer_;
  const features::FeatureStore* store_;
  observability::Registry* metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::vector<ErrorCounter> errors_;       // one per known reason, plus "other"
  std::vector<std::pair<unsigned, observability::Counter*>> responses_;  // by status code
  observability::WindowedHistogram errors_window_;  // refused requests, for /v1/stats
  observability::Histogram* queue_wait_;  // predicts' wait for their turn
  std::function<void(JsonWriter&)> extra_stats_;
  std::function<std::string()> not_ready_;
  bool metrics_on_ = true;
  std::string admin_token_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  const Table table_ = MakeTable();
};

// Maps a Status code to its HTTP status.
bhttp::status HttpStatusFor(StatusCode code);
// Sets the status and a JSON Content-Type.
void SetJson(Response& res, bhttp::status status);

}  // namespace rtml::http
