#include "grpc/inference_service.h"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "protocol/open_inference.grpc.pb.h"
#include "protocol/v2_grpc.h"
#include "protocol/v2_tensor.h"

namespace rtml::rpc {
namespace {

using G = inference::GRPCInferenceService;
// Every RPC asynchronous (served by our threads); ModelInfer raw, so that
// its bytes reach the codec as bytes, parsed once, here.
using Service = G::WithAsyncMethod_ServerLive<G::WithAsyncMethod_ServerReady<
    G::WithAsyncMethod_ModelReady<G::WithAsyncMethod_ServerMetadata<
        G::WithAsyncMethod_ModelMetadata<G::WithAsyncMethod_ModelStatistics<
            G::WithRawMethod_ModelInfer<G::Service>>>>>>>;

enum Method { kServerLive, kServerReady, kModelReady, kServerMetadata, kModelMetadata,
              kModelStatistics, kModelInfer, kMethods };
constexpr const char* kMethodNames[kMethods] = {"ServerLive",     "ServerReady",
                                                "ModelReady",     "ServerMetadata",
                                                "ModelMetadata",  "ModelStatistics",
                                                "ModelInfer"};
constexpr ::grpc::StatusCode kErrorCodes[] = {
    ::grpc::INVALID_ARGUMENT, ::grpc::NOT_FOUND,        ::grpc::UNAVAILABLE,
    ::grpc::DEADLINE_EXCEEDED, ::grpc::RESOURCE_EXHAUSTED, ::grpc::UNAUTHENTICATED,
    ::grpc::PERMISSION_DENIED, ::grpc::UNIMPLEMENTED,    ::grpc::FAILED_PRECONDITION,
    ::grpc::INTERNAL};
constexpr const char* kErrorCodeNames[] = {
    "INVALID_ARGUMENT",  "NOT_FOUND",         "UNAVAILABLE",   "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED", "UNAUTHENTICATED",  "PERMISSION_DENIED", "UNIMPLEMENTED",
    "FAILED_PRECONDITION", "INTERNAL"};
constexpr size_t kErrorCodeCount = std::size(kErrorCodes);

// What one of the service's threads owns. Only its thread touches the
// calls on its queue; it shuts the queue down itself, once the server has
// shut down (`alarm` fires, with the worker as its tag) and no call of its
// own is left, so that no call begins an operation on a queue shut down.
struct Worker {
  std::unique_ptr<::grpc::ServerCompletionQueue> cq;
  ::grpc::Alarm alarm;
  int live_calls = 0;
  bool server_down = false;
  pipeline::ScoreScratch scratch;
  std::string request_bytes;
  inference::ModelInferRequest request;
  std::string response;
  std::thread thread;
};

// One call in progress on a worker's queue: a tag of the queue.
class Call {
 public:
  virtual ~Call() = default;
  virtual void Proceed(bool ok) = 0;
};

}  // namespace

struct InferenceServer::Impl {
  GrpcOptions options;
  const pipeline::Scorer& scorer;
  std::function<std::string()> not_ready;
  Service service;
  std::vector<std::unique_ptr<Worker>> workers;  // (destroyed after the server)
  std::unique_ptr<::grpc::Server> server;
  std::atomic<bool> stopping{false};
  bool stopped = false;
  int port = 0;
  std::array<observability::Counter*, kMethods> calls{};
  std::array<observability::Counter*, kErrorCodeCount> errors{};

  Impl(const GrpcOptions& o, const pipeline::Scorer& s, std::function<std::string()> ready)
      : options(o), scorer(s), not_ready(std::move(ready)) {}

  void Run(Worker& w);
  void RequestAll(Worker& w);
  ::grpc::Status Fail(::grpc::ServerContext& ctx, const Status& s);
  void Count(Method m, const ::grpc::Status& s);

  ::grpc::Status ServerLive(Worker&, ::grpc::ServerContext&, const inference::ServerLiveRequest&,
                            inference::ServerLiveResponse* out);
  ::grpc::Status ServerReady(Worker&, ::grpc::ServerContext&,
                             const inference::ServerReadyRequest&,
                             inference::ServerReadyResponse* out);
  ::grpc::Status ModelReady(Worker&, ::grpc::ServerContext&, const inference::ModelReadyRequest& in,
                            inference::ModelReadyResponse* out);
  ::grpc::Status ServerMetadata(Worker&, ::grpc::ServerContext&,
                                const inference::ServerMetadataRequest&,
                                inference::ServerMetadataResponse* out);
  ::grpc::Status ModelMetadata(Worker&, ::grpc::ServerContext& ctx,
                               const inference::ModelMetadataRequest& in,
                               inference::ModelMetadataResponse* out);
  ::grpc::Status ModelStatistics(Worker&, ::grpc::ServerContext& ctx,
                                 const inference::ModelStatisticsRequest& in,
                                 inference::ModelStatisticsResponse* out);
  ::grpc::Status ModelInfer(Worker& w, ::grpc::ServerContext& ctx, const ::grpc::ByteBuffer& in,
                            ::grpc::ByteBuffer* out);
};

namespace {

using Impl = InferenceServer::Impl;

// A unary call of one method: requested on the worker's queue; once it
// arrives, the next one is requested, this one handled on the worker's
// thread and finished; then it deletes itself.
template <class Req, class Resp>
class UnaryCall final : public Call {
 public:
  using RequestFn = void (Service::*)(::grpc::ServerContext*, Req*,
                                      ::grpc::ServerAsyncResponseWriter<Resp>*,
                                      ::grpc::CompletionQueue*, ::grpc::ServerCompletionQueue*,
                                      void*);
  using HandleFn = ::grpc::Status (Impl::*)(Worker&, ::grpc::ServerContext&, const Req&, Resp*);

  static void Request(Impl& impl, Worker& w, Method m, RequestFn request, HandleFn handle) {
    auto* call = new UnaryCall(impl, w, m, request, handle);
    (impl.service.*request)(&call->ctx_, &call->req_, &call->writer_, w.cq.get(), w.cq.get(),
                            call);
  }

  void Proceed(bool ok) override {
    if (finished_ || !ok) {  // answered, or the queue is shutting down
      delete this;
      return;
    }
    // Once the server shuts down, a call requested still comes back (not ok).
    if (!impl_.stopping.load(std::memory_order_relaxed)) {
      Request(impl_, worker_, method_, request_, handle_);
    }
    const ::grpc::Status s = (impl_.*handle_)(worker_, ctx_, req_, &resp_);
    impl_.Count(method_, s);
    finished_ = true;
    if (s.ok()) {
      writer_.Finish(resp_, s, this);
    } else {
      writer_.FinishWithError(s, this);
    }
  }

 private:
  UnaryCall(Impl& impl, Worker& w, Method m, RequestFn request, HandleFn handle)
      : impl_(impl), worker_(w), method_(m), request_(request), handle_(handle) {
    ++worker_.live_calls;
  }
  ~UnaryCall() override { --worker_.live_calls; }

  Impl& impl_;
  Worker& worker_;
  const Method method_;
  const RequestFn request_;
  const HandleFn handle_;
  ::grpc::ServerContext ctx_;
  Req req_;
  Resp resp_;
  ::grpc::ServerAsyncResponseWriter<Resp> writer_{&ctx_};
  bool finished_ = false;
};

// The version of `model` a metadata or readiness call names.
Result<std::pair<const model::ModelEntry*, const model::ModelVersion*>> Find(
    const model::ModelRepository& repo, std::string_view model, std::string_view version) {
  const model::ModelEntry* e = repo.Find(model);
  if (e == nullptr) {
    return NotFound("unknown model '" + std::string(model) + "'", "unknown_model");
  }
  ASSIGN_OR_RETURN(const std::optional<int64_t> number, protocol::v2::VersionNumber(version));
  const model::ModelVersion* v = e->Get(number);
  if (v == nullptr) return e->NoSuchVersion(version);
  return std::make_pair(e, v);
}

}  // namespace

::grpc::StatusCode GrpcCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return ::grpc::OK;
    case StatusCode::kInvalidArgument:
    case StatusCode::kPayloadTooLarge:
    case StatusCode::kUnsupportedMedia: return ::grpc::INVALID_ARGUMENT;
    case StatusCode::kNotFound: return ::grpc::NOT_FOUND;
    case StatusCode::kMethodNotAllowed: return ::grpc::UNIMPLEMENTED;
    case StatusCode::kUnauthenticated: return ::grpc::UNAUTHENTICATED;
    case StatusCode::kPermissionDenied: return ::grpc::PERMISSION_DENIED;
    case StatusCode::kFailedPrecondition: return ::grpc::FAILED_PRECONDITION;
    case StatusCode::kUnavailable: return ::grpc::UNAVAILABLE;
    case StatusCode::kDeadlineExceeded: return ::grpc::DEADLINE_EXCEEDED;
    case StatusCode::kInternal: return ::grpc::INTERNAL;
  }
  return ::grpc::INTERNAL;
}

namespace {
// gRPC takes only printable ASCII in a metadata value (anything else aborts
// the call's batch): the field holds the client's own input names, so bytes
// outside it are %-escaped, and the text is capped.
constexpr size_t kMaxText = 1024;
std::string MetadataText(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, kMaxText)) {
    if (c >= 0x20 && c < 0x7f && c != '%') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// How long the client still waits (nullopt: no deadline). A deadline past a
// day is as good as none: Go clients send none as the clock's far end, which
// would overflow std::chrono's.
std::optional<std::chrono::steady_clock::duration> TimeLeft(const ::grpc::ServerContext& ctx) {
  const gpr_timespec deadline = ctx.raw_deadline();
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0) return std::nullopt;
  const gpr_timespec left = gpr_time_sub(deadline, gpr_now(deadline.clock_type));
  if (left.tv_sec >= 24 * 3600) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::seconds(left.tv_sec) + std::chrono::nanoseconds(left.tv_nsec));
}
}  // namespace

::grpc::Status Impl::Fail(::grpc::ServerContext& ctx, const Status& s) {
  if (!s.reason().empty()) ctx.AddTrailingMetadata("rtml-reason", MetadataText(s.reason()));
  if (!s.field().empty()) ctx.AddTrailingMetadata("rtml-field", MetadataText(s.field()));
  std::string message = s.message();
  if (message.size() > kMaxText) message.resize(kMaxText);
  return ::grpc::Status(GrpcCodeFor(s.code()), message);
}

void Impl::Count(Method m, const ::grpc::Status& s) {
  if (calls[m] != nullptr) calls[m]->Inc();
  if (s.ok()) return;
  for (size_t i = 0; i < kErrorCodeCount; ++i) {
    if (kErrorCodes[i] == s.error_code() && errors[i] != nullptr) errors[i]->Inc();
  }
}

::grpc::Status Impl::ServerLive(Worker&, ::grpc::ServerContext&,
                                const inference::ServerLiveRequest&,
                                inference::ServerLiveResponse* out) {
  out->set_live(true);
  return ::grpc::Status::OK;
}

::grpc::Status Impl::ServerReady(Worker&, ::grpc::ServerContext&,
                                 const inference::ServerReadyRequest&,
                                 inference::ServerReadyResponse* out) {
  out->set_ready(not_ready().empty());
  return ::grpc::Status::OK;
}

// An unknown model or version is not ready (OK, ready: false), as Triton
// answers; a version is served only once loaded, checked and warmed up.
::grpc::Status Impl::ModelReady(Worker&, ::grpc::ServerContext&,
                                const inference::ModelReadyRequest& in,
                                inference::ModelReadyResponse* out) {
  const auto repo = scorer.repository();
  out->set_ready(Find(*repo, in.name(), in.version()).ok());
  return ::grpc::Status::OK;
}

::grpc::Status Impl::ServerMetadata(Worker&, ::grpc::ServerContext&,
                                    const inference::ServerMetadataRequest&,
                                    inference::ServerMetadataResponse* out) {
  out->set_name("rtml");
  out->set_version(RTML_VERSION);
  out->add_extensions("parameters");
  out->add_extensions("statistics");
  return ::grpc::Status::OK;
}

::grpc::Status Impl::ModelMetadata(Worker&, ::grpc::ServerContext& ctx,
                                   const inference::ModelMetadataRequest& in,
                                   inference::ModelMetadataResponse* out) {
  const auto repo = scorer.repository();
  auto found = Find(*repo, in.name(), in.version());
  if (!found.ok()) return Fail(ctx, found.status());
  const auto [e, v] = *found;
  protocol::FillV2ModelMetadata(*e, *v, scorer.EntityKeys(*v), out);
  return ::grpc::Status::OK;
}

// The statistics extension: every version's of every model (no name), of
// one model (no version), or of one version.
::grpc::Status Impl::ModelStatistics(Worker&, ::grpc::ServerContext& ctx,
                                     const inference::ModelStatisticsRequest& in,
                                     inference::ModelStatisticsResponse* out) {
  auto version = protocol::v2::VersionNumber(in.version());
  if (!version.ok()) return Fail(ctx, version.status());
  if (in.name().empty() && *version) {
    return Fail(ctx, InvalidArgument("a version needs a model name", "bad_request", "version"));
  }
  auto totals = scorer.Totals(in.name(), *version);
  if (!totals.ok()) return Fail(ctx, totals.status());
  protocol::FillV2ModelStatistics(*totals, out);
  return ::grpc::Status::OK;
}

::grpc::Status Impl::ModelInfer(Worker& w, ::grpc::ServerContext& ctx,
                                const ::grpc::ByteBuffer& in, ::grpc::ByteBuffer* out) {
  const auto received = std::chrono::steady_clock::now();
  // The request's bytes, contiguous (usually one slice already).
  w.request_bytes.clear();
  std::vector<::grpc::Slice> slices;
  if (!in.Dump(&slices).ok()) {
    return Fail(ctx, InvalidArgument("the request's bytes could not be read", "malformed_request"));
  }
  for (const ::grpc::Slice& s : slices) {
    w.request_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  w.request.Clear();
  if (!w.request.ParseFromString(w.request_bytes)) {
    return Fail(ctx, InvalidArgument("the request is not a ModelInferRequest (protobuf of "
                                     "inference.proto)",
                                     "malformed_request"));
  }
  auto version = protocol::v2::VersionNumber(w.request.model_version());
  if (!version.ok()) return Fail(ctx, version.status());
  pipeline::ScoreTarget target{.model = w.request.model_name(),
                               .version = *version,
                               .path = pipeline::Path::kV2Grpc};
  target.received = received;
  const auto now = std::chrono::steady_clock::now();
  if (const auto left = TimeLeft(ctx)) {
    target.deadline = now + *left;
  } else if (options.default_timeout_ms > 0) {
    target.deadline = received + std::chrono::microseconds(
                                     static_cast<int64_t>(options.default_timeout_ms * 1000));
  }
  if (target.deadline <= now) {
    return Fail(ctx, Status(StatusCode::kDeadlineExceeded,
                            "the call's deadline passed before it was scored",
                            "deadline_exceeded"));
  }
  const Status s = scorer.Score(target, protocol::V2GrpcRequest(w.request_bytes, &w.request),
                                &w.scratch, &w.response);
  if (!s.ok()) return Fail(ctx, s);
  ::grpc::Slice slice(w.response.data(), w.response.size());
  *out = ::grpc::ByteBuffer(&slice, 1);
  return ::grpc::Status::OK;
}

void Impl::RequestAll(Worker& w) {
  using inference::ModelMetadataRequest, inference::ModelMetadataResponse;
  UnaryCall<inference::ServerLiveRequest, inference::ServerLiveResponse>::Request(
      *this, w, kServerLive, &Service::RequestServerLive, &Impl::ServerLive);
  UnaryCall<inference::ServerReadyRequest, inference::ServerReadyResponse>::Request(
      *this, w, kServerReady, &Service::RequestServerReady, &Impl::ServerReady);
  UnaryCall<inference::ModelReadyRequest, inference::ModelReadyResponse>::Request(
      *this, w, kModelReady, &Service::RequestModelReady, &Impl::ModelReady);
  UnaryCall<inference::ServerMetadataRequest, inference::ServerMetadataResponse>::Request(
      *this, w, kServerMetadata, &Service::RequestServerMetadata, &Impl::ServerMetadata);
  UnaryCall<ModelMetadataRequest, ModelMetadataResponse>::Request(
      *this, w, kModelMetadata, &Service::RequestModelMetadata, &Impl::ModelMetadata);
  UnaryCall<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>::Request(
      *this, w, kModelStatistics, &Service::RequestModelStatistics, &Impl::ModelStatistics);
  // Several infer calls waiting per queue, so that calls arriving together
  // are taken without a round trip through the queue each.
  for (int i = 0; i < 4; ++i) {
    UnaryCall<::grpc::ByteBuffer, ::grpc::ByteBuffer>::Request(
        *this, w, kModelInfer, &Service::RequestModelInfer, &Impl::ModelInfer);
  }
}

void Impl::Run(Worker& w) {
  void* tag = nullptr;
  bool ok = false;
  bool queue_down = false;
  while (w.cq->Next(&tag, &ok)) {
    if (tag == &w) {
      w.server_down = true;
    } else {
      static_cast<Call*>(tag)->Proceed(ok);
    }
    if (w.server_down && w.live_calls == 0 && !queue_down) {
      queue_down = true;
      w.cq->Shutdown();
    }
  }
}

InferenceServer::InferenceServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

InferenceServer::~InferenceServer() { Shutdown(std::chrono::milliseconds(0)); }

int InferenceServer::port() const { return impl_->port; }

void InferenceServer::SetServing(bool serving) {
  if (impl_->server != nullptr) impl_->server->GetHealthCheckService()->SetServingStatus(serving);
}

Result<std::unique_ptr<InferenceServer>> InferenceServer::Start(
    const GrpcOptions& options, const pipeline::Scorer& scorer,
    std::function<std::string()> not_ready, observability::Registry* metrics) {
  auto impl = std::make_unique<Impl>(options, scorer, std::move(not_ready));
  for (int m = 0; m < kMethods; ++m) {
    impl->calls[m] = metrics->AddCounter("rtml_grpc_requests_total",
                                         "gRPC calls answered, by method.",
                                         {{"method", kMethodNames[m]}});
  }
  for (size_t i = 0; i < kErrorCodeCount; ++i) {
    impl->errors[i] = metrics->AddCounter("rtml_grpc_errors_total",
                                          "gRPC calls answered with an error, by status code.",
                                          {{"code", kErrorCodeNames[i]}});
  }
  // The standard health service (grpc.health.v1.Health: Kubernetes' gRPC
  // probes, grpc_health_probe, Envoy), on gRPC's own thread: SERVING until
  // a drain begins (SetServing).
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::ServerBuilder builder;
  const std::string address = options.host + ":" + std::to_string(options.port);
  builder.AddListeningPort(address, ::grpc::InsecureServerCredentials(), &impl->port);
  builder.RegisterService(&impl->service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(-1);
  // A port in use is an error, not shared (gRPC would share it by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (int i = 0; i < options.threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->cq = builder.AddCompletionQueue();
    impl->workers.push_back(std::move(w));
  }
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    if (impl->server != nullptr) impl->server->Shutdown();
    for (auto& w : impl->workers) {
      w->cq->Shutdown();
      void* tag = nullptr;
      bool ok = false;
      while (w->cq->Next(&tag, &ok)) {
      }
    }
    impl->server.reset();
    return Status(StatusCode::kUnavailable, "cannot serve gRPC on " + address +
                       " (is the port in use? set grpc.port to a free one, or 0 for no gRPC)",
                  "unavailable");
  }
  impl->server->GetHealthCheckService()->SetServingStatus(true);
  for (auto& w : impl->workers) {
    impl->RequestAll(*w);
    w->thread = std::thread([i = impl.get(), w = w.get()] { i->Run(*w); });
  }
  spdlog::info("serving the Open Inference Protocol over gRPC on {}:{} with {} threads",
               options.host, impl->port, options.threads);
  return std::unique_ptr<InferenceServer>(new InferenceServer(std::move(impl)));
}

void InferenceServer::Shutdown(std::chrono::milliseconds grace) {
  if (impl_ == nullptr || impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping.store(true);
  // Calls in progress finish (the threads still run their queues) until the
  // grace ends; then they are cancelled.
  impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
  // Each thread shuts its own queue down once its calls are done.
  for (auto& w : impl_->workers) w->alarm.Set(w->cq.get(), std::chrono::system_clock::now(), w.get());
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  impl_->server.reset();
}

}  // namespace rtml::rpc
