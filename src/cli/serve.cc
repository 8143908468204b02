#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "cli/commands.h"
#include "config/config.h"
#include "http/routes.h"
#include "http/server.h"
#include "kafka/stream_worker.h"
#include "model/repository.h"
#include "observability/metrics.h"
#include "features/feature_store.h"
#include "pipeline/scorer.h"

namespace rtml::cli {
namespace {

void SetUpLogging(const config::LogConfig& log) {
  spdlog::set_level(spdlog::level::from_str(log.level));
  if (log.json) {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","component":"%n","msg":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  }
}

Result<config::Config> LoadWithOverrides(const ServeOptions& o) {
  config::Config c;
  if (!o.config_path.empty()) {
    ASSIGN_OR_RETURN(c, config::LoadConfig(o.config_path));
  }
  if (o.host) c.http.host = *o.host;
  if (o.port) c.http.port = *o.port;
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

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

void AddProcessMetrics(observability::Registry* metrics, const model::ModelRepository& repo) {
  const auto start = std::chrono::steady_clock::now();
  metrics->AddGauge("rtml_build_info", "rtml build information (value is 1).",
                    {{"version", RTML_VERSION}}, [] { return 1.0; });
  metrics->AddGauge("rtml_uptime_seconds", "Seconds since the server started.", {}, [start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  metrics->AddGauge("rtml_process_resident_memory_bytes", "Resident set size.", {},
                    ResidentBytes);
  for (const model::ModelEntry* e : repo.models()) {
    metrics->AddGauge("rtml_model_versions_loaded", "Loaded versions per model.",
                      {{"model", e->name}},
                      [n = static_cast<double>(e->versions.size())] { return n; });
  }
}

// Blocks SIGINT/SIGTERM in every thread (call before starting any), so that
// WaitForSignal() can take them synchronously.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int RunServe(const ServeOptions& options) {
  auto cfg = LoadWithOverrides(options);
  if (!cfg.ok()) {
    std::fprintf(stderr, "rtml serve: %s\n(fix the config; see README.md, Configuration)\n",
                 cfg.status().message().c_str());
    return 2;
  }
  SetUpLogging(cfg->log);
  spdlog::info("loading models from {}", cfg->models.repository);
  auto repo = model::ModelRepository::Load(cfg->models.repository, cfg->models.default_model);
  if (!repo.ok()) {
    spdlog::error("cannot load models: {}", repo.status().message());
    std::fprintf(stderr, "(check the model repository; `rtml models inspect PATH` explains a model)\n");
    return 2;
  }
  for (const model::ModelEntry* e : (*repo)->models()) {
    for (const auto& [number, v] : e->versions) {
      spdlog::info("model {} version {}: {} backend, {}, {} inputs{}", e->name, number,
                   v->model->backend(), v->model->objective(), v->schema.size(),
                   number == e->default_version ? " (default)" : "");
    }
  }
  std::unique_ptr<features::FeatureStore> store;
  if (!cfg->features.definitions.empty()) {
    auto opened = features::FeatureStore::Open(cfg->features);
    if (!opened.ok()) {
      spdlog::error("cannot open the feature store: {}", opened.status().message());
      return 2;
    }
    store = std::move(opened).value();
    spdlog::info("feature store: {} definitions ({} views, version {}), {} backend",
                 store->definitions().project(), store->definitions().views().size(),
                 store->definitions().version_hash(), store->online().backend());
  }
  observability::Registry metrics;
  AddProcessMetrics(&metrics, **repo);
  auto scorer = pipeline::Scorer::Create(
      **repo, store.get(),
      {.max_batch_size = cfg->scoring.max_batch_size,
       .ignore_unknown_features = cfg->scoring.ignore_unknown_features},
      &metrics);
  if (!scorer.ok()) {
    spdlog::error("{}", scorer.status().message());
    return 2;
  }
  http::Routes routes(**scorer, store.get(), &metrics);
  const sigset_t stop_signals = BlockStopSignals();
  http::HttpServer server({.host = cfg->http.host,
                           .port = cfg->http.port,
                           .threads = cfg->http.threads,
                           .max_body_bytes = cfg->http.max_body_bytes,
                           .idle_timeout_s = cfg->http.idle_timeout_s},
                          &routes);
  if (Status s = server.Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  std::unique_ptr<kafka::StreamWorker> worker;
  std::thread worker_thread;
  if (!cfg->kafka.brokers.empty()) {
    const config::KafkaConfig& k = cfg->kafka;
    auto created = kafka::StreamWorker::Create(
        {.brokers = k.brokers, .group_id = k.group_id, .input_topic = k.input_topic,
         .output_topic = k.output_topic, .dead_letter_topic = k.dead_letter_topic,
         .max_batch = k.max_batch, .max_in_flight = static_cast<size_t>(k.max_in_flight),
         .properties = k.properties},
        **scorer, &metrics);
    if (!created.ok()) {
      spdlog::error("cannot start the stream worker: {}", created.status().message());
      server.Stop();
      return 2;
    }
    worker = std::move(created).value();
    spdlog::info("stream worker: {} -> {} (dead letters: {}), group {}, brokers {}",
                 k.input_topic, k.output_topic,
                 k.dead_letter_topic.empty() ? k.input_topic + "-dlq" : k.dead_letter_topic,
                 k.group_id, k.brokers);
    worker_thread = std::thread([&worker] {
      if (Status s = worker->Run(); !s.ok()) spdlog::error("stream worker: {}", s.message());
    });
  }
  routes.set_ready(true);
  spdlog::info("serving on http://{}:{} with {} event loops{}", cfg->http.host, server.port(),
               cfg->http.threads,
               (*repo)->default_model() ? " (POST /predict -> " +
                                              (*repo)->default_model()->name + ")"
                                        : std::string());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  routes.set_ready(false);
  if (worker) {
    worker->Stop();
    worker_thread.join();
    spdlog::info("stream worker stopped: {} events in, {} predictions, {} dead letters",
                 worker->stats().events_in.load(), worker->stats().predictions_out.load(),
                 worker->stats().dead_letters.load());
  }
  server.Stop();
  return 0;
}

}  // namespace rtml::cli
