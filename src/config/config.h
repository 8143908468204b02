// Config: rtml's settings, with their documented defaults, loaded once from
// YAML at start-up and validated. The hot path reads these plain fields.
// Every field here is documented in README.md ("Configuration").
// Thread-safety: a value; build it before starting threads, then read only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace rtml::config {

struct HttpConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 0;                      // event loops; 0 = one per core
  size_t max_body_bytes = 1 << 20;      // larger bodies get 413
  int idle_timeout_s = 60;              // keep-alive connections idle longer are closed
  // When set (or RTML_ADMIN_TOKEN is), the repository API and feature writes
  // need "Authorization: Bearer <token>"; predict and reads stay open.
  std::string admin_token;
  // On SIGTERM: /readyz answers 503 at once while requests are still served
  // for drain_s (for a load balancer to notice), then the stream worker
  // commits and stops and the server lets requests in progress finish, for
  // at most shutdown_grace_s. A second signal stops at once.
  double drain_s = 0;
  double shutdown_grace_s = 10;
  // Admission control: predicts wait in their event loop's queue; new ones
  // are refused (503, Retry-After) once the queue has waited max_queue_ms or
  // holds max_queue_rows rows. 0 = no bound.
  double max_queue_ms = 20;
  int64_t max_queue_rows = 16384;
  // The deadline of predicts that carry no X-Request-Timeout-Ms; 0 = none.
  double default_timeout_ms = 0;
  // HTTPS (http.tls: {cert, key, client_ca}): PEM files, relative to the
  // config file. No cert = plain HTTP; a client CA = mutual TLS.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
};

// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService)
// on a port of its own and threads of its own, sharing the Scorer.
struct GrpcConfig {
  std::string host = "127.0.0.1";
  int port = 0;                          // 0 = no gRPC service
  int threads = 2;                       // each with its completion queue and scratch
  size_t max_message_bytes = 4 << 20;    // larger requests get RESOURCE_EXHAUSTED
  double default_timeout_ms = 0;         // deadline of calls that set none; 0 = none
};

struct ModelsConfig {
  std::string repository = "models";  // relative to the config file's folder
  std::string default_model;          // served by POST /predict; empty = the only model
  int poll_s = 0;                     // rescan the repository this often; 0 = off
  size_t max_loaded_bytes = 0;        // refuse loads past this much model memory; 0 = no limit
};

struct ScoringConfig {
  int max_batch_size = 1024;             // "instances" per request; more gets 413
  bool ignore_unknown_features = false;  // unknown_features: reject | ignore
  bool metrics = true;                   // false: no per-request metric updates (benchmarks)
};

struct FeaturesConfig {
  std::string definitions;          // features.yaml; empty = no feature store
  std::string store = "rocksdb";    // rocksdb | redis | memory
  std::string rocksdb_path = "data/online";  // relative to the config file
  std::string redis_host = "127.0.0.1";
  int redis_port = 6379;
  int redis_db = 0;
  std::string redis_password;
  int redis_timeout_ms = 100;       // connect and per-command
  int redis_retry_after_ms = 1000;  // after a failure, fail fast this long, then probe
  std::vector<std::string> redis_cluster_nodes;  // Redis Cluster seeds (host:port); empty = one server
  double served_log_rate = 0;       // share of stream feature reads logged (0 = off)
  std::string served_log_file;      // JSON Lines, relative to the config file
};

struct KafkaConfig {
  std::string brokers;  // bootstrap.servers; empty = no stream worker
  std::string group_id = "rtml";
  std::string input_topic = "ml-features";
  std::string output_topic = "predictions";
  std::string dead_letter_topic;  // empty = <input_topic>-dlq
  int max_batch = 500;            // messages taken per poll
  int max_in_flight = 20000;      // unacknowledged outputs before pausing consumption
  std::map<std::string, std::string> properties;  // passed to librdkafka (SASL/TLS, tuning)
  bool exactly_once = false;       // mode: at_least_once | exactly_once
  std::string transactional_id;    // exactly-once: stable per replica; empty = <group_id>-<host>
  int transaction_timeout_ms = 10000;
};

struct DriftConfig {
  bool enabled = true;
  double warn = 0.1;           // PSI over which a series has moved (logged)
  double alert = 0.25;         // PSI over which it has shifted (logged, alerted)
  int reference_rows = 2000;   // first rows used as reference when a version has none
  int window_s = 120;          // PSI over this sliding window
};

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error
  bool json = false;           // format: text | json
  double predictions_rate = 0;     // share of scored requests/events logged (0 = off)
  std::string predictions_file;    // JSON Lines, relative to the config file
  std::string predictions_topic;   // or a Kafka topic on kafka.brokers
};

struct Config {
  HttpConfig http;
  GrpcConfig grpc;
  ModelsConfig models;
  ScoringConfig scoring;
  FeaturesConfig features;
  KafkaConfig kafka;
  DriftConfig drift;
  LogConfig log;
};

// Settings from the environment, as containers and Kubernetes give them:
// RTML_<SECTION>__<KEY>[__<SUBKEY>...]=value sets section.key[.subkey] as if
// the file said so, over what it says (names are lower-cased; "__" nests,
// since keys hold single underscores: RTML_HTTP__MAX_QUEUE_MS=50,
// RTML_FEATURES__REDIS__HOST=redis). The value is read as YAML, so a
// number, a list or a flow map may be given (RTML_KAFKA__PROPERTIES=
// '{security.protocol: SASL_SSL}'). Variables without "__" are not settings
// (RTML_ADMIN_TOKEN is read where it is used).
using Environment = std::vector<std::pair<std::string, std::string>>;
// The process's RTML_*__* variables, sorted by name.
Environment ProcessEnvironment();

// Loads and validates a config file (or, with an empty path, the defaults,
// with relative paths against the working folder), with `env` applied over
// it; relative paths are resolved against the file's folder. Errors name
// the file and the key, and the variables applied.
Result<Config> LoadConfig(const std::string& path, const Environment& env = ProcessEnvironment());
// Parses config text; relative paths are resolved against base_dir.
Result<Config> ParseConfig(std::string_view yaml, const std::string& base_dir,
                           std::string_view where = "config", const Environment& env = {});
Status Validate(const Config& config);

}  // namespace rtml::config
