// Stack: everything `rtml serve` runs, built from a Config: the model
// repository, the feature store, metrics, the Scorer, the HTTP routes and
// server, the gRPC service when grpc.port is set, and the stream worker when
// Kafka brokers are configured.
// `rtml serve` and `rtml demo` both run one.
// Thread-safety: Build/Start/Stop from the controlling thread.
#pragma once

#include <signal.h>

#include <memory>
#include <thread>

#include "cli/commands.h"
#include "config/config.h"
#include "features/feature_store.h"
#include "grpc/inference_service.h"
#include "http/routes.h"
#include "http/server.h"
#include "kafka/stream_worker.h"
#include "model/repository.h"
#include "observability/metrics.h"
#include "observability/prediction_log.h"
#include "pipeline/scorer.h"

namespace rtml::cli {

class Stack {
 public:
  // Loads models and the feature store and wires the parts; logs what it
  // loaded. Errors are configuration problems (exit code 2).
  static Result<std::unique_ptr<Stack>> Build(config::Config config);
  ~Stack();

  // Starts the HTTP server, the gRPC service (grpc.port) and, with brokers,
  // the stream worker thread.
  Status Start();
  // Starts a graceful stop: /readyz answers 503 ("draining") from now on;
  // everything else keeps serving.
  void BeginDrain();
  // Stops the worker (committing what is done) and the servers (letting
  // requests in progress finish, at most http.shutdown_grace_s). Idempotent.
  void Stop();

  int http_port() const { return server_->port(); }
  int grpc_port() const { return grpc_ ? grpc_->port() : 0; }
  const config::Config& config() const { return config_; }
  const kafka::StreamWorker* worker() const { return worker_.get(); }
  const pipeline::Scorer& scorer() const { return *scorer_; }
  observability::Registry& metrics() { return metrics_; }

 private:
  Stack() = default;

  config::Config config_;
  std::unique_ptr<features::FeatureStore> store_;
  observability::Registry metrics_;
  std::unique_ptr<observability::PredictionLog> prediction_log_;
  std::unique_ptr<pipeline::Scorer> scorer_;
  std::unique_ptr<http::Routes> routes_;
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<rpc::InferenceServer> grpc_;  // null without grpc.port
  std::unique_ptr<kafka::StreamWorker> worker_;
  std::thread worker_thread_;
  bool stopped_ = false;
};

void SetUpLogging(const config::LogConfig& log);
// The config file (or defaults) with the command line's overrides applied.
Result<config::Config> LoadWithOverrides(const ServeOptions& o);
// Blocks SIGINT/SIGTERM in every thread (call before starting any), so that
// the caller can take them synchronously with sigwait/sigtimedwait.
sigset_t BlockStopSignals();

}  // namespace rtml::cli
