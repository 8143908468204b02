// `rtml demo`: the whole pipeline on embedded defaults, in one process: an
// embedded Kafka broker, the fraud model with its RocksDB feature store, a
// synthetic transaction generator, the stream worker and the HTTP server,
// with a live status line every second. Ctrl-C stops it cleanly.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/stack.h"
#include "kafka/embedded_broker.h"
#include "kafka/load.h"

namespace rtml::cli {
namespace {

void PrintLine(double elapsed_s, const kafka::StreamStats& s, uint64_t in_before,
               uint64_t out_before, const kafka::MonitorSnapshot& m, int64_t lag, double psi) {
  char drift[32] = "-";
  if (psi >= 0) std::snprintf(drift, sizeof(drift), "%.3f", psi);
  const uint64_t in = s.events_in.load(), out = s.predictions_out.load();
  std::fprintf(stdout,
               "[%5.0fs] in %6llu/s | out %6llu/s | dead letters %llu | processing p50 %.2f p95 "
               "%.2f p99 %.2f ms | end-to-end p50 %.1f p95 %.1f p99 %.1f ms | lag %lld | "
               "drift PSI %s\n",
               elapsed_s, static_cast<unsigned long long>(in - in_before),
               static_cast<unsigned long long>(out - out_before),
               static_cast<unsigned long long>(s.dead_letters.load()), m.scoring.p50_ms,
               m.scoring.p95_ms, m.scoring.p99_ms, m.end_to_end.p50_ms, m.end_to_end.p95_ms,
               m.end_to_end.p99_ms, static_cast<long long>(lag), drift);
  std::fflush(stdout);
}

}  // namespace

int RunDemo(const DemoOptions& o) {
  auto cfg = LoadWithOverrides(o.serve);
  if (!cfg.ok()) {
    std::fprintf(stderr, "rtml demo: %s\n", cfg.status().message().c_str());
    return 2;
  }
  SetUpLogging(cfg->log);
  const sigset_t stop_signals = BlockStopSignals();
  const std::string in_topic = cfg->kafka.input_topic;  // a copy: cfg moves into the stack
  const std::string dlq = cfg->kafka.dead_letter_topic.empty() ? in_topic + "-dlq"
                                                               : cfg->kafka.dead_letter_topic;
  auto broker = kafka::EmbeddedBroker::Start(
      {.brokers = 1,
       .port = o.broker_port,
       .topics = {{in_topic, o.partitions}, {cfg->kafka.output_topic, o.partitions}, {dlq, 2}}});
  if (!broker.ok()) {
    std::fprintf(stderr, "rtml demo: %s\n", broker.status().message().c_str());
    return 1;
  }
  cfg->kafka.brokers = (*broker)->bootstrap();
  auto stack = Stack::Build(std::move(cfg).value());
  if (!stack.ok()) {
    spdlog::error("{}", stack.status().message());
    return 2;
  }
  if (Status s = (*stack)->Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  const config::Config& c = (*stack)->config();
  auto monitor = kafka::PredictionMonitor::Create(c.kafka.brokers, c.kafka.output_topic, dlq);
  auto generator = kafka::EventGenerator::Create(
      {.brokers = c.kafka.brokers,
       .topic = in_topic,
       .rate_per_s = o.rate,
       .users = 50000,  // ~72 transactions an hour each at 1000/s, as train.py's history
       .first_user = 1000,  // users 1-999 are left to you (the README's examples)
       .shift_after_s = o.shift_after_s});
  if (!monitor.ok() || !generator.ok()) {
    spdlog::error("cannot start the demo's clients");
    return 1;
  }
  (*monitor)->Start();
  (*generator)->Start();
  const int port = (*stack)->http_port();
  std::printf(
      "\nrtml demo: the fraud pipeline on embedded defaults\n"
      "  Kafka (mock broker): %s  topics %s -> %s, dead letters %s\n"
      "  generator: %.0f synthetic transactions/s, like the training data%s\n"
      "  HTTP: http://127.0.0.1:%d  (dashboard: /, metrics: /metrics, models: /v1/models)\n"
      "  try:  curl -s -X POST localhost:%d/predict -H 'Content-Type: application/json' "
      "-d '{\"user_id\": 123, \"amount\": 90.5}'\n"
      "        kcat -b %s -C -t %s -o end\n"
      "  Ctrl-C stops.\n\n",
      c.kafka.brokers.c_str(), in_topic.c_str(), c.kafka.output_topic.c_str(), dlq.c_str(),
      o.rate,
      o.shift_after_s > 0
          ? (" until " + std::to_string(static_cast<int>(o.shift_after_s)) +
             " s, then shifted (watch drift on the dashboard)")
                .c_str()
          : "",
      port, port, c.kafka.brokers.c_str(), c.kafka.output_topic.c_str());
  std::fflush(stdout);
  const kafka::StreamStats& stats = (*stack)->worker()->stats();
  const auto start = std::chrono::steady_clock::now();
  uint64_t in_before = 0, out_before = 0;
  while (o.seconds <= 0 ||
         std::chrono::steady_clock::now() - start < std::chrono::duration<double>(o.seconds)) {
    timespec one_second{1, 0};
    if (sigtimedwait(&stop_signals, nullptr, &one_second) > 0) break;
    auto lag = kafka::ConsumerLag(c.kafka.brokers, c.kafka.group_id, in_topic);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    PrintLine(elapsed, stats, in_before, out_before, (*monitor)->Snapshot(true),
              lag.ok() ? *lag : -1, (*stack)->scorer().WorstPsi());
    in_before = stats.events_in.load();
    out_before = stats.predictions_out.load();
  }
  std::printf("stopping: generator, stream worker (committing), HTTP server, broker\n");
  (*generator)->Stop();
  (*stack)->Stop();
  (*monitor)->Stop();
  std::printf("done: %llu events produced (%llu acknowledged), %llu scored, %llu predictions, "
              "%llu dead letters\n",
              static_cast<unsigned long long>((*generator)->produced()),
              static_cast<unsigned long long>((*generator)->acknowledged()),
              static_cast<unsigned long long>(stats.events_in.load()),
              static_cast<unsigned long long>(stats.predictions_out.load()),
              static_cast<unsigned long long>(stats.dead_letters.load()));
  return 0;
}

}  // namespace rtml::cli
