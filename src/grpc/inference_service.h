// InferenceServer: the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService: ServerLive, ServerReady, ModelReady,
// ServerMetadata, ModelMetadata, ModelInfer) on a port of its own, for
// tritonclient.grpc, KServe's and MLServer's clients unchanged, beside gRPC's
// standard health service (grpc.health.v1.Health) for probes.
//
// Each of its threads owns a completion queue, a ScoreScratch (so its own
// feature-store session and model snapshot) and its request buffers, and
// serves the calls that arrive on its queue one after another, through the
// same Scorer as HTTP and the stream: ModelInfer's bytes go to the V2 gRPC
// codec (protocol/v2_grpc.h) already parsed once, and its answer goes back
// as bytes. A call's gRPC deadline (or grpc.default_timeout_ms) is the
// request's deadline, as X-Request-Timeout-Ms is on HTTP: work that cannot
// finish in time is not started, and a feature-store read is cut at it.
// Errors are the call's status: INVALID_ARGUMENT for a bad request, NOT_FOUND
// for an unknown model or version, UNAVAILABLE, DEADLINE_EXCEEDED, with the
// message naming what was wrong and the trailing metadata rtml-reason and
// rtml-field carrying rtml's reason and field.
//
// Thread-safety: Start and Shutdown from one thread; the service's threads
// share only the Scorer (thread-safe) and the readiness callback.
// Ownership: borrows the Scorer and the metrics registry, which must outlive
// it.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "observability/metrics.h"
#include "pipeline/scorer.h"

namespace rtml::rpc {

struct GrpcOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (see port())
  int threads = 2;
  size_t max_message_bytes = 4 << 20;
  double default_timeout_ms = 0;  // for calls without a deadline; 0 = none
};

class InferenceServer {
 public:
  // Binds host:port and starts the threads. `not_ready` says why the server
  // is not ready (empty: ready), as /readyz does.
  static Result<std::unique_ptr<InferenceServer>> Start(const GrpcOptions& options,
                                                        const pipeline::Scorer& scorer,
                                                        std::function<std::string()> not_ready,
                                                        observability::Registry* metrics);
  ~InferenceServer();
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  // The port bound (the one asked for, or the one chosen for 0).
  int port() const;
  // What the standard health service (grpc.health.v1.Health/Check) answers:
  // SERVING from Start, NOT_SERVING once a drain begins.
  void SetServing(bool serving);
  // Stops taking calls, lets those in progress finish for at most `grace`
  // (then cancels them) and joins the threads. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  struct Impl;

 private:
  explicit InferenceServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The gRPC status of an rtml Status: its code mapped, its message, and (in
// the trailing metadata, set by the service) its reason and field.
::grpc::StatusCode GrpcCodeFor(StatusCode code);

}  // namespace rtml::rpc
