// `rtml bench kafka`: produces N synthetic events to a topic (at a fixed rate
// or flat out) and reads the outputs back, measuring end-to-end latency
// (event creation -> prediction arrival) and sustained throughput. Works
// against any scorer on the other side: rtml's stream worker, or the Python
// reference consumer.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "kafka/load.h"

namespace rtml::cli {

int RunBenchKafka(const BenchKafkaOptions& o) {
  auto generator = kafka::EventGenerator::Create({.brokers = o.brokers, .topic = o.topic,
                                                  .rate_per_s = o.rate, .limit = o.events,
                                                  .bad_share = 0, .full_rows = o.full_rows});
  if (!generator.ok()) {
    std::fprintf(stderr, "rtml bench kafka: %s\n", generator.status().message().c_str());
    return 1;
  }
  auto monitor = kafka::PredictionMonitor::Create(o.brokers, o.predictions, o.dead_letters,
                                                  generator->get());
  if (!monitor.ok()) {
    std::fprintf(stderr, "rtml bench kafka: %s (is a broker running at %s?)\n",
                 monitor.status().message().c_str(), o.brokers.c_str());
    return 1;
  }
  (*monitor)->Start();
  const auto start = std::chrono::steady_clock::now();
  (*generator)->Start();
  const bool tty = isatty(2);
  const auto deadline = start + std::chrono::duration<double>(o.timeout_s);
  uint64_t outputs = 0;
  int last_pct = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto snap = (*monitor)->Snapshot(false);
    outputs = snap.predictions + snap.dead_letters;
    const int pct = static_cast<int>(100.0 * outputs / std::max<uint64_t>(1, o.events));
    if (pct != last_pct && (tty || pct / 10 != last_pct / 10 || pct >= 100)) {
      const int filled = std::min(30, pct * 30 / 100);
      std::fprintf(stderr, "%s%-12s [%s%s] %3d%%  %llu/%llu outputs%s", tty ? "\r" : "", "bench",
                   std::string(filled, '#').c_str(), std::string(30 - filled, ' ').c_str(),
                   std::min(pct, 100), static_cast<unsigned long long>(outputs),
                   static_cast<unsigned long long>(o.events), tty ? "" : "\n");
      last_pct = pct;
    }
    if (outputs >= o.events) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (tty) std::fprintf(stderr, "\n");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*generator)->Stop();
  (*monitor)->Stop();
  const auto snap = (*monitor)->Snapshot(false);
  const auto& l = snap.end_to_end;
  const bool complete = outputs >= o.events;
  if (o.json) {
    std::printf("{\"events\":%llu,\"outputs\":%llu,\"predictions\":%llu,\"dead_letters\":%llu,"
                "\"seconds\":%.3f,\"events_per_s\":%.1f,\"p50_ms\":%.2f,\"p95_ms\":%.2f,"
                "\"p99_ms\":%.2f,\"max_ms\":%.2f,\"complete\":%s}\n",
                static_cast<unsigned long long>(o.events), static_cast<unsigned long long>(outputs),
                static_cast<unsigned long long>(snap.predictions),
                static_cast<unsigned long long>(snap.dead_letters), seconds, outputs / seconds,
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, complete ? "true" : "false");
  } else {
    std::printf("%llu events (%s), %llu outputs in %.2f s: %.0f events/s end to end\n"
                "latency from creation to prediction: p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, "
                "max %.2f ms (%llu measured)\n",
                static_cast<unsigned long long>(o.events),
                o.rate > 0 ? (std::to_string(static_cast<int>(o.rate)) + "/s").c_str()
                           : "as fast as possible",
                static_cast<unsigned long long>(outputs), seconds, outputs / seconds, l.p50_ms,
                l.p95_ms, l.p99_ms, l.max_ms, static_cast<unsigned long long>(l.count));
  }
  if (!complete) {
    std::fprintf(stderr, "rtml bench kafka: only %llu of %llu outputs within %.0f s (is a scorer "
                 "consuming %s?)\n",
                 static_cast<unsigned long long>(outputs),
                 static_cast<unsigned long long>(o.events), o.timeout_s, o.topic.c_str());
    return 1;
  }
  return 0;
}

}  // namespace rtml::cli
