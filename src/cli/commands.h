// The rtml subcommands. Each returns the process exit code and prints errors
// with what to do next.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rtml::cli {

struct ServeOptions {
  std::string config_path;  // empty: built-in defaults
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<int> grpc_port;  // the V2 gRPC service (0 = none)
  std::optional<int> threads;
  std::optional<std::string> models;
  std::optional<std::string> log_level;
  std::optional<std::string> brokers;  // runs the stream worker
};

int RunServe(const ServeOptions& options);

struct DemoOptions {
  ServeOptions serve;     // config and overrides, as for serve
  int broker_port = 9092;  // the embedded broker's bootstrap port
  int partitions = 6;
  double rate = 1000;      // generated events per second
  double seconds = 0;      // stop after this long; 0 = until Ctrl-C
  double shift_after_s = 0;  // generated traffic shifts (drift) after this long; 0 = never
};
int RunDemo(const DemoOptions& options);

struct BenchKafkaOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string topic = "ml-features";
  std::string predictions = "predictions";
  std::string dead_letters = "ml-features-dlq";
  uint64_t events = 20000;
  double rate = 0;  // 0 = as fast as possible
  bool full_rows = false;
  double timeout_s = 300;
  bool json = false;
};
int RunBenchKafka(const BenchKafkaOptions& options);
int RunModelsInspect(const std::string& path);
// The live repository of a running rtml (GET /v1/repository/index, /v1/stats).
int RunModelsInspectLive(const std::string& url);
int RunVersion();

struct ProbeOptions {
  std::string config_path;  // the server's config (and environment), to find its port
  std::string url;          // or where it is: http://HOST:PORT
  bool ready = false;       // /readyz instead of /healthz
  std::chrono::milliseconds timeout{2000};
};
// Exits 0 if the server answers 200, 1 if not (or not in time), 2 on a
// usage error.
int RunProbe(const ProbeOptions& options);
int RunBroker(int port, int partitions, int brokers, const std::vector<std::string>& topics);

int RunFeaturesApply(const std::string& config_path);
int RunFeaturesList(const std::string& config_path, bool json);
int RunFeaturesPush(const std::string& config_path, const std::string& file);
int RunFeaturesGet(const std::string& config_path, const std::vector<std::string>& refs,
                   const std::string& service, const std::vector<std::string>& entities);
int RunFeaturesMaterialize(const std::string& config_path, const std::string& start,
                           const std::string& end, bool incremental,
                           const std::vector<std::string>& only_views);
int RunFeaturesHistorical(const std::string& config_path, const std::string& entities,
                          const std::string& out, const std::vector<std::string>& refs,
                          const std::string& service, const std::string& timestamp_field);
// Replays a served-values log against the stream views' events files;
// exits 1 when any value differs.
int RunFeaturesReplay(const std::string& config_path, const std::string& log_path);

}  // namespace rtml::cli
