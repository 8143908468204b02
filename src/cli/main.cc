// rtml: the command-line entry point. Wiring only: each subcommand builds the
// parts it needs from config and hands over to them.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"

namespace {

// CLI11's NonNegativeNumber prints the whole range of a double; this says it
// plainly.
const CLI::Validator kNonNegative(
    [](std::string& value) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(value, v) || v < 0) {
        return "must be a number, 0 or more, not '" + value + "'";
      }
      return {};
    },
    "NUMBER >= 0");

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rtml: real-time ML inference. Serves XGBoost models over HTTP with "
               "validation, defaults and metrics."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("rtml ") + RTML_VERSION);

  rtml::cli::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Serve the models of a config over HTTP");
  serve_cmd->add_option("-c,--config", serve.config_path, "Config file (YAML)")
      ->check(CLI::ExistingFile)
      ->envname("RTML_CONFIG");
  serve_cmd->add_option("--host", serve.host, "Listen address (overrides http.host)");
  serve_cmd->add_option("-p,--port", serve.port, "Listen port (overrides http.port; 0 = any)")
      ->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--grpc-port", serve.grpc_port,
                        "Serve the Open Inference Protocol over gRPC on this port (overrides "
                        "grpc.port; 0 = no gRPC)")
      ->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--threads", serve.threads,
                        "Event loops (overrides http.threads; 0 = one per core)")
      ->check(kNonNegative);
  serve_cmd->add_option("--models", serve.models,
                        "Model repository folder (overrides models.repository)")
      ->check(CLI::ExistingDirectory);
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error");
  serve_cmd->add_option("--brokers", serve.brokers,
                        "Kafka bootstrap servers HOST:PORT,... (overrides kafka.brokers); "
                        "runs the stream worker");

  rtml::cli::DemoOptions demo;
  demo.serve.config_path = "examples/fraud/rtml.yaml";
  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Run the whole pipeline on embedded defaults: broker, generator, stream, HTTP");
  demo_cmd->add_option("-c,--config", demo.serve.config_path, "Config file (YAML)")
      ->check(CLI::ExistingFile);
  demo_cmd->add_option("-p,--port", demo.serve.port, "HTTP port (overrides http.port)")
      ->check(CLI::Range(0, 65535));
  demo_cmd->add_option("--grpc-port", demo.serve.grpc_port,
                       "Also serve the Open Inference Protocol over gRPC on this port")
      ->check(CLI::Range(0, 65535));
  demo_cmd->add_option("--broker-port", demo.broker_port, "Embedded Kafka bootstrap port")
      ->check(CLI::Range(1, 65535));
  demo_cmd->add_option("--partitions", demo.partitions, "Partitions of the demo topics")
      ->check(CLI::Range(1, 64));
  demo_cmd->add_option("--rate", demo.rate, "Synthetic events per second (0 = flat out)")
      ->check(kNonNegative);
  demo_cmd->add_option("--seconds", demo.seconds, "Stop after this long (0 = until Ctrl-C)")
      ->check(kNonNegative);
  demo_cmd->add_option("--shift-after", demo.shift_after_s,
                       "Seconds after which generated traffic shifts from the training data, "
                       "to watch drift being caught (0 = never)")
      ->check(kNonNegative);
  demo_cmd->add_option("--log-level", demo.serve.log_level, "trace|debug|info|warn|error");

  CLI::App* models_cmd = app.add_subcommand("models", "Work with models and repositories");
  models_cmd->require_subcommand(1);
  std::string inspect_path, inspect_url;
  CLI::App* inspect_cmd = models_cmd->add_subcommand(
      "inspect",
      "Describe a model file, a version folder, or a whole repository (every version, its "
      "state, and serving.yaml); with --url, a running rtml's live repository");
  inspect_cmd->add_option("path", inspect_path, "XGBoost JSON file, version folder or repository")
      ->check(CLI::ExistingPath);
  inspect_cmd->add_option("--url", inspect_url,
                          "a running rtml (http://127.0.0.1:8080): its versions, states, "
                          "policies and shadow agreement (the admin token from RTML_ADMIN_TOKEN)");

  rtml::cli::ProbeOptions probe;
  double probe_timeout_s = 2;
  CLI::App* probe_cmd = app.add_subcommand(
      "probe", "Exit 0 if a running rtml is alive (/healthz) or ready (--ready: /readyz)");
  probe_cmd->add_option("-c,--config", probe.config_path, "The server's config file (YAML)")
      ->check(CLI::ExistingFile)
      ->envname("RTML_CONFIG");
  probe_cmd->add_option("--url", probe.url, "Where the server is: http://HOST:PORT (instead)");
  probe_cmd->add_flag("--ready", probe.ready, "Ask /readyz instead of /healthz");
  probe_cmd->add_option("--timeout", probe_timeout_s, "Seconds to wait for the answer")
      ->check(CLI::PositiveNumber);
  CLI::App* version_cmd = app.add_subcommand("version", "Print rtml's version and libraries");

  CLI::App* features_cmd =
      app.add_subcommand("features", "Feature store: definitions, writes, reads, training data");
  features_cmd->require_subcommand(1);
  std::string fconfig, push_file = "-", start, end, entities_file, out_file, service;
  std::string ts_field = "event_timestamp";
  std::vector<std::string> refs, entity_args, only_views;
  bool list_json = false;
  auto with_config = [&](CLI::App* cmd) {
    cmd->add_option("-c,--config", fconfig, "Config file naming features.definitions and the store")
        ->required()
        ->check(CLI::ExistingFile)
        ->envname("RTML_CONFIG");
    return cmd;
  };
  CLI::App* apply_cmd = with_config(features_cmd->add_subcommand(
      "apply", "Validate the definitions and record them in the store's registry"));
  CLI::App* list_cmd =
      with_config(features_cmd->add_subcommand("list", "Show entities, views and services"));
  list_cmd->add_flag("--json", list_json, "As JSON (the same as GET /v1/features)");
  CLI::App* push_cmd = with_config(features_cmd->add_subcommand(
      "push", "Write rows given as a Feast push request (JSON) to the online store"));
  push_cmd->add_option("-f,--file", push_file, "Push request JSON file, - for stdin");
  CLI::App* get_cmd = with_config(
      features_cmd->add_subcommand("get", "Read online features (Feast's get-online-features)"));
  get_cmd->add_option("--features", refs, "view:feature references")->delimiter(',');
  get_cmd->add_option("--service", service, "A feature service instead of --features");
  get_cmd->add_option("-e,--entity", entity_args, "join_key=value[,value...]")->required();
  CLI::App* mat_cmd = with_config(features_cmd->add_subcommand(
      "materialize", "Load offline source files into the online store for a time window"));
  mat_cmd->add_option("--start", start, "Window start (ISO 8601 or epoch seconds; default: all)");
  mat_cmd->add_option("--end", end, "Window end, exclusive (default: now)");
  mat_cmd->add_option("--views", only_views, "Only these views")->delimiter(',');
  CLI::App* inc_cmd = with_config(features_cmd->add_subcommand(
      "materialize-incremental", "Materialize from each view's last watermark up to --end"));
  inc_cmd->add_option("--end", end, "Window end, exclusive (default: now)");
  inc_cmd->add_option("--views", only_views, "Only these views")->delimiter(',');
  CLI::App* hist_cmd = with_config(features_cmd->add_subcommand(
      "historical", "Point-in-time join of entity rows with offline features (training data)"));
  std::string replay_file;
  auto* entities_opt =
      hist_cmd->add_option("--entities", entities_file, "CSV/JSONL: join keys + event timestamp")
          ->check(CLI::ExistingFile);
  auto* out_opt = hist_cmd->add_option("--out", out_file, "Output CSV");
  auto* replay_opt = hist_cmd->add_option(
      "--replay", replay_file,
      "A served-values log (features.served_log): replay it offline and report mismatches");
  replay_opt->check(CLI::ExistingFile)->excludes(entities_opt)->excludes(out_opt);
  entities_opt->needs(out_opt);
  hist_cmd->add_option("--features", refs, "view:feature references")->delimiter(',');
  hist_cmd->add_option("--service", service, "A feature service instead of --features");
  hist_cmd->add_option("--timestamp-field", ts_field, "The entity file's timestamp column");

  int broker_port = 9092, broker_partitions = 6, broker_count = 1;
  std::vector<std::string> broker_topics{"ml-features", "predictions", "ml-features-dlq"};
  CLI::App* broker_cmd = app.add_subcommand(
      "broker", "Run an embedded Kafka broker (librdkafka's mock cluster) on loopback");
  broker_cmd->add_option("-p,--port", broker_port, "Bootstrap port on 127.0.0.1")
      ->check(CLI::Range(1, 65535));
  broker_cmd->add_option("--partitions", broker_partitions, "Partitions per topic")
      ->check(CLI::Range(1, 1000));
  broker_cmd->add_option("--brokers", broker_count, "Mock brokers in the cluster")
      ->check(CLI::Range(1, 9));
  broker_cmd->add_option("--topics", broker_topics, "Topics to create")->delimiter(',');

  rtml::cli::BenchKafkaOptions bench_kafka;
  CLI::App* bench_cmd = app.add_subcommand("bench", "Benchmarks");
  bench_cmd->require_subcommand(1);
  CLI::App* bench_kafka_cmd = bench_cmd->add_subcommand(
      "kafka", "Produce N events and measure end-to-end latency and throughput to predictions");
  bench_kafka_cmd->add_option("-b,--brokers", bench_kafka.brokers, "Kafka bootstrap servers");
  bench_kafka_cmd->add_option("-n,--events", bench_kafka.events, "Events to produce");
  bench_kafka_cmd->add_option("--rate", bench_kafka.rate, "Events per second (0 = flat out)");
  bench_kafka_cmd->add_option("--topic", bench_kafka.topic, "Input topic");
  bench_kafka_cmd->add_option("--predictions", bench_kafka.predictions, "Output topic");
  bench_kafka_cmd->add_option("--dead-letters", bench_kafka.dead_letters, "Dead-letter topic");
  bench_kafka_cmd->add_flag("--full-rows", bench_kafka.full_rows,
                            "Send all 30 inputs as {\"features\": {...}} (no store lookups)");
  bench_kafka_cmd->add_option("--timeout", bench_kafka.timeout_s, "Give up after (seconds)");
  bench_kafka_cmd->add_flag("--json", bench_kafka.json, "Print the result as one JSON line");

  CLI11_PARSE(app, argc, argv);
  if (bench_kafka_cmd->parsed()) return rtml::cli::RunBenchKafka(bench_kafka);
  if (broker_cmd->parsed()) {
    return rtml::cli::RunBroker(broker_port, broker_partitions, broker_count, broker_topics);
  }
  if (apply_cmd->parsed()) return rtml::cli::RunFeaturesApply(fconfig);
  if (list_cmd->parsed()) return rtml::cli::RunFeaturesList(fconfig, list_json);
  if (push_cmd->parsed()) return rtml::cli::RunFeaturesPush(fconfig, push_file);
  if (get_cmd->parsed()) return rtml::cli::RunFeaturesGet(fconfig, refs, service, entity_args);
  if (mat_cmd->parsed()) {
    return rtml::cli::RunFeaturesMaterialize(fconfig, start, end, false, only_views);
  }
  if (inc_cmd->parsed()) {
    return rtml::cli::RunFeaturesMaterialize(fconfig, start, end, true, only_views);
  }
  if (hist_cmd->parsed()) {
    if (!replay_file.empty()) return rtml::cli::RunFeaturesReplay(fconfig, replay_file);
    if (entities_file.empty()) {
      std::fprintf(stderr, "rtml features historical: give --entities FILE --out FILE (a "
                           "training set) or --replay FILE (check served values)\n");
      return 2;
    }
    return rtml::cli::RunFeaturesHistorical(fconfig, entities_file, out_file, refs, service,
                                            ts_field);
  }
  if (serve_cmd->parsed()) return rtml::cli::RunServe(serve);
  if (demo_cmd->parsed()) return rtml::cli::RunDemo(demo);
  if (inspect_cmd->parsed()) {
    if (!inspect_url.empty()) return rtml::cli::RunModelsInspectLive(inspect_url);
    if (inspect_path.empty()) {
      std::fprintf(stderr, "rtml models inspect: give a PATH, or --url of a running rtml\n");
      return 2;
    }
    return rtml::cli::RunModelsInspect(inspect_path);
  }
  if (version_cmd->parsed()) return rtml::cli::RunVersion();
  if (probe_cmd->parsed()) {
    probe.timeout = std::chrono::milliseconds(static_cast<int64_t>(probe_timeout_s * 1000));
    return rtml::cli::RunProbe(probe);
  }
  return 0;
}
