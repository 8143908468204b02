#include "cli/stack.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "features/feature_store.h"
#include "http/routes.h"
#include "http/server.h"
#include "kafka/stream_worker.h"
#include "kafka/topic_sink.h"
#include "model/repository.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "pipeline/scorer.h"

namespace rtml::cli {

void SetUpLogging(const config::LogConfig& log) {
  observability::SetUpLogging({.level = log.level, .json = log.json});
}

Result<config::Config> LoadWithOverrides(const ServeOptions& o) {
  ASSIGN_OR_RETURN(config::Config c, config::LoadConfig(o.config_path));
  if (o.host) c.http.host = *o.host;
  if (o.port) c.http.port = *o.port;
  if (o.grpc_port) c.grpc.port = *o.grpc_port;
  if (o.threads) c.http.threads = *o.threads;
  if (o.models) c.models.repository = *o.models;
  if (o.log_level) c.log.level = *o.log_level;
  if (o.brokers) c.kafka.brokers = *o.brokers;
  RETURN_IF_ERROR(config::Validate(c));
  if (c.http.threads == 0) {
    c.http.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  return c;
}

namespace {

double CpuSeconds() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  // Fields after the command name (which may hold spaces) start past ')'.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double OpenFds() {
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

void AddProcessMetrics(observability::Registry* metrics) {
  const auto start = std::chrono::steady_clock::now();
  metrics->AddGauge("rtml_build_info", "rtml build information (value is 1).",
                    {{"version", RTML_VERSION}}, [] { return 1.0; });
  metrics->AddGauge("rtml_uptime_seconds", "Seconds since the server started.", {}, [start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  metrics->AddGauge("rtml_process_resident_memory_bytes", "Resident set size.", {},
                    ResidentBytes);
  metrics->AddGauge("rtml_process_cpu_seconds", "User and system CPU time used so far.", {},
                    CpuSeconds);
  metrics->AddGauge("rtml_process_open_fds", "Open file descriptors (sockets included).", {},
                    OpenFds);
}

void AddModelMetrics(observability::Registry* metrics, const pipeline::Scorer& scorer) {
  metrics->AddGaugeFamily("rtml_model_versions_loaded", "Versions serving, per model.",
                          [&scorer] {
                            std::vector<std::pair<observability::Labels, double>> out;
                            const auto repo = scorer.repository();
                            for (const model::ModelEntry* e : repo->models()) {
                              out.push_back({{{"model", e->name}},
                                             static_cast<double>(e->versions.size())});
                            }
                            return out;
                          });
  metrics->AddGaugeFamily("rtml_model_memory_bytes", "Memory each serving version holds.",
                          [&scorer] {
                            std::vector<std::pair<observability::Labels, double>> out;
                            const auto repo = scorer.repository();
                            for (const model::ModelEntry* e : repo->models()) {
                              for (const auto& [n, v] : e->versions) {
                                out.push_back({{{"model", e->name}, {"version", std::to_string(n)}},
                                               static_cast<double>(v->model->size_bytes())});
                              }
                            }
                            return out;
                          });
}

}  // namespace

sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}


namespace {

// Where sampled predictions go: log.predictions.file or .topic.
Result<std::unique_ptr<observability::PredictionSink>> OpenPredictionSink(
    const config::Config& c, observability::Registry* metrics) {
  if (c.log.predictions_topic.empty()) {
    ASSIGN_OR_RETURN(auto file, observability::FileSink::Open(
                                    c.log.predictions_file,
                                    observability::AddPredictionLogCounters(metrics, "file")));
    return std::unique_ptr<observability::PredictionSink>(std::move(file));
  }
  if (c.kafka.brokers.empty()) {
    return FailedPrecondition("log.predictions.topic needs Kafka: set kafka.brokers or --brokers");
  }
  ASSIGN_OR_RETURN(auto topic, kafka::TopicSink::Create(
                                 c.kafka.brokers, c.kafka.properties, c.log.predictions_topic,
                                 observability::AddPredictionLogCounters(metrics, "kafka")));
  return std::unique_ptr<observability::PredictionSink>(std::move(topic));
}

}  // namespace

Result<std::unique_ptr<Stack>> Stack::Build(config::Config cfg) {
  auto s = std::unique_ptr<Stack>(new Stack());
  s->config_ = std::move(cfg);
  const config::Config& c = s->config_;
  if (!c.features.definitions.empty()) {
    auto opened = features::FeatureStore::Open(c.features);
    if (!opened.ok()) return opened.status().Annotate("cannot open the feature store");
    s->store_ = std::move(opened).value();
    const features::Definitions& d = s->store_->definitions();
    observability::ComponentLogger("features")
        .info("project {}: {} view(s), definitions version {}, {} online store", d.project(),
              d.views().size(), d.version_hash(), s->store_->online().backend());
    if (c.features.served_log_rate > 0) {
      ASSIGN_OR_RETURN(auto log, features::ServedLog::Open(c.features.served_log_rate,
                                                           c.features.served_log_file,
                                                           &s->metrics_));
      s->store_->set_served_log(std::move(log));
      observability::ComponentLogger("features")
          .info("served stream feature values logged to {} (rate {})",
                c.features.served_log_file, c.features.served_log_rate);
    }
  }
  AddProcessMetrics(&s->metrics_);
  if (c.log.predictions_rate > 0) {
    ASSIGN_OR_RETURN(auto sink, OpenPredictionSink(c, &s->metrics_));
    ASSIGN_OR_RETURN(s->prediction_log_, observability::PredictionLog::Create(
                                             c.log.predictions_rate, std::move(sink)));
    spdlog::info("logging {:.1f}% of predictions to {}", 100 * c.log.predictions_rate,
                 s->prediction_log_->sink().Describe());
  }
  spdlog::info("loading models from {}{}", c.models.repository,
               c.models.poll_s > 0 ? " (rescanned every " + std::to_string(c.models.poll_s) + " s)"
                                   : std::string());
  auto scorer = pipeline::Scorer::Create(
                       {.path = c.models.repository, .default_model = c.models.default_model,
                        .poll_s = c.models.poll_s,
                        .max_loaded_bytes = c.models.max_loaded_bytes},
                       s->store_.get(),
                       {.max_batch_size = c.scoring.max_batch_size,
                        .ignore_unknown_features = c.scoring.ignore_unknown_features,
                        .drift = c.drift.enabled && c.scoring.metrics,
                        .metrics = c.scoring.metrics,
                        .drift_options = {.reference_rows =
                                              static_cast<size_t>(c.drift.reference_rows),
                                          .window_s = c.drift.window_s,
                                          .warn = c.drift.warn,
                                          .alert = c.drift.alert},
                        .prediction_log = s->prediction_log_.get()},
                       &s->metrics_);
  if (!scorer.ok()) {
    return scorer.status().Annotate(
        "cannot load models (`rtml models inspect PATH` explains a model)");
  }
  s->scorer_ = std::move(scorer).value();
  AddModelMetrics(&s->metrics_, *s->scorer_);
  s->routes_ = std::make_unique<http::Routes>(*s->scorer_, s->store_.get(), &s->metrics_);
  s->routes_->set_metrics(c.scoring.metrics);
  std::string admin_token = c.http.admin_token;  // the environment wins: a secret's usual home
  if (const char* env = std::getenv("RTML_ADMIN_TOKEN"); env != nullptr && *env != '\0') {
    admin_token = env;
  }
  if (!admin_token.empty()) {
    spdlog::info("the repository API and feature writes need the admin token");
  }
  s->routes_->set_admin_token(std::move(admin_token));
  if (!c.scoring.metrics) spdlog::warn("scoring.metrics is off: /metrics and /v1/stats stay empty");
  s->server_ = std::make_unique<http::HttpServer>(
      http::ServerOptions{.host = c.http.host,
                          .port = c.http.port,
                          .threads = c.http.threads,
                          .max_body_bytes = c.http.max_body_bytes,
                          .idle_timeout_s = c.http.idle_timeout_s,
                          .admission = {.max_queue_ms = c.http.max_queue_ms,
                                        .max_queue_rows = c.http.max_queue_rows},
                          .default_timeout_ms = c.http.default_timeout_ms,
                          .tls = {.cert_file = c.http.tls_cert,
                                  .key_file = c.http.tls_key,
                                  .client_ca_file = c.http.tls_client_ca}},
      s->routes_.get());
  s->metrics_.AddGauge("rtml_http_queued_requests",
                       "Predicts waiting in the event loops' queues for their turn.", {},
                       [server = s->server_.get()] {
                         return static_cast<double>(server->Queued().requests);
                       });
  s->metrics_.AddGauge("rtml_http_queued_rows",
                       "Estimated rows of the predicts waiting in the event loops' queues.", {},
                       [server = s->server_.get()] {
                         return static_cast<double>(server->Queued().rows);
                       });
  if (!c.kafka.brokers.empty()) {
    const config::KafkaConfig& k = c.kafka;
    auto worker = kafka::StreamWorker::Create(
        {.brokers = k.brokers, .group_id = k.group_id, .input_topic = k.input_topic,
         .output_topic = k.output_topic, .dead_letter_topic = k.dead_letter_topic,
         .max_batch = k.max_batch, .max_in_flight = static_cast<size_t>(k.max_in_flight),
         .properties = k.properties, .feature_store = s->store_.get(),
         .exactly_once = k.exactly_once, .transactional_id = k.transactional_id,
         .transaction_timeout_ms = k.transaction_timeout_ms},
        *s->scorer_, &s->metrics_);
    if (!worker.ok()) return worker.status().Annotate("cannot start the stream worker");
    s->worker_ = std::move(worker).value();
    s->routes_->set_extra_stats([w = s->worker_.get()](JsonWriter& out) {
      const kafka::StreamStats& st = w->stats();
      int64_t total_lag = 0;
      out.Key("stream").BeginObject();
      out.Key("events_in").Uint(st.events_in.load());
      out.Key("predictions_out").Uint(st.predictions_out.load());
      out.Key("dead_letters").Uint(st.dead_letters.load());
      out.Key("partitions").BeginArray();
      for (auto [partition, lag] : w->Lag()) {
        out.BeginObject().Key("partition").Int(partition).Key("lag").Int(lag).EndObject();
        total_lag += lag;
      }
      out.EndArray().Key("lag").Int(total_lag);
      out.Key("catching_up").Bool(w->catching_up()).EndObject();
    });
    s->routes_->set_readiness([w = s->worker_.get()]() -> std::string {
      return w->catching_up() ? "catching_up: stream feature views are still reading their "
                                "topics"
                              : "";
    });
  }
  return s;
}

Stack::~Stack() { Stop(); }

Status Stack::Start() {
  RETURN_IF_ERROR(server_->Start());
  const config::Config& c = config_;
  if (c.grpc.port != 0) {
    auto grpc = rpc::InferenceServer::Start(
        {.host = c.grpc.host,
         .port = c.grpc.port,
         .threads = c.grpc.threads,
         .max_message_bytes = c.grpc.max_message_bytes,
         .default_timeout_ms = c.grpc.default_timeout_ms},
        *scorer_, [routes = routes_.get()] { return routes->NotReadyReason(); }, &metrics_);
    if (!grpc.ok()) return grpc.status();
    grpc_ = std::move(grpc).value();
  }
  if (worker_) {
    const config::KafkaConfig& k = c.kafka;
    spdlog::info("stream worker: {} -> {} (dead letters: {}), group {}, brokers {}",
                 k.input_topic, k.output_topic,
                 k.dead_letter_topic.empty() ? k.input_topic + "-dlq" : k.dead_letter_topic,
                 k.group_id, k.brokers);
    worker_thread_ = std::thread([this] {
      if (Status s = worker_->Run(); !s.ok()) spdlog::error("stream worker: {}", s.message());
    });
  }
  routes_->set_ready(true);
  const auto repo = scorer_->repository();
  const model::ModelEntry* default_model = repo->default_model();
  spdlog::info("serving on {}://{}:{} with {} event loops{}{}",
               c.http.tls_cert.empty() ? "http" : "https", c.http.host, server_->port(),
               c.http.threads, c.http.tls_client_ca.empty() ? "" : " (mutual TLS)",
               default_model != nullptr ? " (POST /predict -> " + default_model->name + ")"
                                        : std::string());
  return Status::Ok();
}

void Stack::BeginDrain() {
  if (routes_) routes_->set_draining();
  if (grpc_) grpc_->SetServing(false);
}

void Stack::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (routes_) routes_->set_draining();
  if (worker_ && worker_thread_.joinable()) {
    worker_->Stop();
    worker_thread_.join();
    spdlog::info("stream worker stopped: {} events in, {} predictions, {} dead letters",
                 worker_->stats().events_in.load(), worker_->stats().predictions_out.load(),
                 worker_->stats().dead_letters.load());
  }
  const std::chrono::milliseconds grace(
      static_cast<int64_t>(config_.http.shutdown_grace_s * 1000));
  if (grpc_) grpc_->Shutdown(grace);
  if (server_) server_->Shutdown(grace);
}

}  // namespace rtml::cli
