#include "config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "config/yaml.h"

extern char** environ;

namespace rtml::config {
namespace {

Status ReadTls(const YAML::Node& n, const std::string& base_dir, HttpConfig* c) {
  if (!n) return Status::Ok();
  if (!n.IsMap()) return FailedPrecondition("http.tls: a mapping {cert, key, client_ca}");
  RETURN_IF_ERROR(CheckKeys(n, "http.tls", {"cert", "key", "client_ca"}));
  RETURN_IF_ERROR(Read(n, "http.tls", "cert", &c->tls_cert));
  RETURN_IF_ERROR(Read(n, "http.tls", "key", &c->tls_key));
  RETURN_IF_ERROR(Read(n, "http.tls", "client_ca", &c->tls_client_ca));
  if (c->tls_cert.empty() != c->tls_key.empty()) {
    return FailedPrecondition("http.tls: give both cert and key (PEM files), or neither");
  }
  if (c->tls_cert.empty() && !c->tls_client_ca.empty()) {
    return FailedPrecondition("http.tls.client_ca needs http.tls.cert and http.tls.key");
  }
  for (std::string* f : {&c->tls_cert, &c->tls_key, &c->tls_client_ca}) {
    if (!f->empty()) *f = ResolvePath(base_dir, *f);
  }
  return Status::Ok();
}

Status ReadHttp(const YAML::Node& n, const std::string& base_dir, HttpConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "http", {"host", "port", "threads", "max_body_bytes",
                                        "idle_timeout_s", "admin_token", "drain_s",
                                        "shutdown_grace_s", "max_queue_ms", "max_queue_rows",
                                        "default_timeout_ms", "tls"}));
  if (n && n.IsMap()) RETURN_IF_ERROR(ReadTls(n["tls"], base_dir, c));
  RETURN_IF_ERROR(Read(n, "http", "max_queue_ms", &c->max_queue_ms));
  RETURN_IF_ERROR(Read(n, "http", "max_queue_rows", &c->max_queue_rows));
  RETURN_IF_ERROR(Read(n, "http", "default_timeout_ms", &c->default_timeout_ms));
  if (c->max_queue_ms < 0 || c->max_queue_rows < 0 || c->default_timeout_ms < 0) {
    return FailedPrecondition(
        "http.max_queue_ms, http.max_queue_rows and http.default_timeout_ms must be >= 0 "
        "(0 = no bound)");
  }
  RETURN_IF_ERROR(Read(n, "http", "drain_s", &c->drain_s));
  RETURN_IF_ERROR(Read(n, "http", "shutdown_grace_s", &c->shutdown_grace_s));
  if (c->drain_s < 0 || c->shutdown_grace_s < 0) {
    return FailedPrecondition("http.drain_s and http.shutdown_grace_s must be >= 0");
  }
  RETURN_IF_ERROR(Read(n, "http", "admin_token", &c->admin_token));
  RETURN_IF_ERROR(Read(n, "http", "host", &c->host));
  RETURN_IF_ERROR(Read(n, "http", "port", &c->port));
  RETURN_IF_ERROR(Read(n, "http", "threads", &c->threads));
  RETURN_IF_ERROR(Read(n, "http", "max_body_bytes", &c->max_body_bytes));
  return Read(n, "http", "idle_timeout_s", &c->idle_timeout_s);
}

Status ReadModels(const YAML::Node& n, const std::string& base_dir, ModelsConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "models", {"repository", "default", "poll_s", "max_loaded_bytes"}));
  RETURN_IF_ERROR(Read(n, "models", "max_loaded_bytes", &c->max_loaded_bytes));
  RETURN_IF_ERROR(Read(n, "models", "repository", &c->repository));
  RETURN_IF_ERROR(Read(n, "models", "default", &c->default_model));
  RETURN_IF_ERROR(Read(n, "models", "poll_s", &c->poll_s));
  if (c->poll_s < 0) {
    return FailedPrecondition("models.poll_s must be 0 (off) or a number of seconds, not " +
                              std::to_string(c->poll_s));
  }
  c->repository = ResolvePath(base_dir, c->repository);
  return Status::Ok();
}

Status ReadGrpc(const YAML::Node& n, GrpcConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "grpc", {"host", "port", "threads", "max_message_bytes",
                                        "default_timeout_ms"}));
  RETURN_IF_ERROR(Read(n, "grpc", "host", &c->host));
  RETURN_IF_ERROR(Read(n, "grpc", "port", &c->port));
  RETURN_IF_ERROR(Read(n, "grpc", "threads", &c->threads));
  RETURN_IF_ERROR(Read(n, "grpc", "max_message_bytes", &c->max_message_bytes));
  return Read(n, "grpc", "default_timeout_ms", &c->default_timeout_ms);
}

Status ReadScoring(const YAML::Node& n, ScoringConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "scoring", {"max_batch_size", "unknown_features", "metrics"}));
  RETURN_IF_ERROR(Read(n, "scoring", "metrics", &c->metrics));
  RETURN_IF_ERROR(Read(n, "scoring", "max_batch_size", &c->max_batch_size));
  std::string unknown = c->ignore_unknown_features ? "ignore" : "reject";
  RETURN_IF_ERROR(Read(n, "scoring", "unknown_features", &unknown));
  if (unknown != "reject" && unknown != "ignore") {
    return FailedPrecondition("scoring.unknown_features must be 'reject' or 'ignore', not '" +
                              unknown + "'");
  }
  c->ignore_unknown_features = unknown == "ignore";
  return Status::Ok();
}

Status ReadFeatures(const YAML::Node& n, const std::string& base_dir, FeaturesConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "features", {"definitions", "store", "rocksdb", "redis",
                                            "served_log"}));
  const YAML::Node served = n ? n["served_log"] : YAML::Node();
  RETURN_IF_ERROR(CheckKeys(served, "features.served_log", {"rate", "file"}));
  RETURN_IF_ERROR(Read(served, "features.served_log", "rate", &c->served_log_rate));
  RETURN_IF_ERROR(Read(served, "features.served_log", "file", &c->served_log_file));
  if (c->served_log_rate < 0 || c->served_log_rate > 1) {
    return FailedPrecondition("features.served_log.rate must be between 0 and 1");
  }
  if (c->served_log_rate > 0 && c->served_log_file.empty()) {
    return FailedPrecondition("features.served_log.file is needed when its rate is > 0");
  }
  if (!c->served_log_file.empty()) c->served_log_file = ResolvePath(base_dir, c->served_log_file);
  RETURN_IF_ERROR(Read(n, "features", "definitions", &c->definitions));
  RETURN_IF_ERROR(Read(n, "features", "store", &c->store));
  if (c->store != "rocksdb" && c->store != "redis" && c->store != "memory") {
    return FailedPrecondition("features.store must be rocksdb, redis or memory, not '" +
                              c->store + "'");
  }
  const YAML::Node rocks = n ? n["rocksdb"] : YAML::Node();
  RETURN_IF_ERROR(CheckKeys(rocks, "features.rocksdb", {"path"}));
  RETURN_IF_ERROR(Read(rocks, "features.rocksdb", "path", &c->rocksdb_path));
  const YAML::Node redis = n ? n["redis"] : YAML::Node();
  RETURN_IF_ERROR(CheckKeys(redis, "features.redis",
                            {"host", "port", "db", "password", "timeout_ms", "retry_after_ms",
                             "cluster_nodes"}));
  RETURN_IF_ERROR(Read(redis, "features.redis", "host", &c->redis_host));
  RETURN_IF_ERROR(Read(redis, "features.redis", "port", &c->redis_port));
  RETURN_IF_ERROR(Read(redis, "features.redis", "db", &c->redis_db));
  RETURN_IF_ERROR(Read(redis, "features.redis", "password", &c->redis_password));
  RETURN_IF_ERROR(Read(redis, "features.redis", "timeout_ms", &c->redis_timeout_ms));
  RETURN_IF_ERROR(Read(redis, "features.redis", "retry_after_ms", &c->redis_retry_after_ms));
  RETURN_IF_ERROR(Read(redis, "features.redis", "cluster_nodes", &c->redis_cluster_nodes));
  for (const std::string& node : c->redis_cluster_nodes) {
    const size_t colon = node.rfind(':');
    const std::string port = colon == std::string::npos ? "" : node.substr(colon + 1);
    if (colon == std::string::npos || colon == 0 || port.empty() ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port.substr(0, 6)) <= 0 ||
        std::stoi(port.substr(0, 6)) > 65535) {
      return FailedPrecondition("features.redis.cluster_nodes: '" + node +
                                "' is not host:port (e.g. 10.0.0.5:6379)");
    }
  }
  if (!c->redis_cluster_nodes.empty() && c->redis_db != 0) {
    return FailedPrecondition("features.redis.db must be 0 with cluster_nodes: a Redis Cluster has "
                              "database 0 only");
  }
  if (!c->definitions.empty()) c->definitions = ResolvePath(base_dir, c->definitions);
  return Status::Ok();
}

Status ReadKafka(const YAML::Node& n, KafkaConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "kafka", {"brokers", "group_id", "input_topic", "output_topic",
                                         "dead_letter_topic", "max_batch", "max_in_flight",
                                         "properties", "mode", "transactional_id",
                                         "transaction_timeout_ms"}));
  RETURN_IF_ERROR(Read(n, "kafka", "brokers", &c->brokers));
  RETURN_IF_ERROR(Read(n, "kafka", "group_id", &c->group_id));
  RETURN_IF_ERROR(Read(n, "kafka", "input_topic", &c->input_topic));
  RETURN_IF_ERROR(Read(n, "kafka", "output_topic", &c->output_topic));
  RETURN_IF_ERROR(Read(n, "kafka", "dead_letter_topic", &c->dead_letter_topic));
  RETURN_IF_ERROR(Read(n, "kafka", "max_batch", &c->max_batch));
  RETURN_IF_ERROR(Read(n, "kafka", "max_in_flight", &c->max_in_flight));
  RETURN_IF_ERROR(Read(n, "kafka", "properties", &c->properties));
  std::string mode = c->exactly_once ? "exactly_once" : "at_least_once";
  RETURN_IF_ERROR(Read(n, "kafka", "mode", &mode));
  if (mode != "at_least_once" && mode != "exactly_once") {
    return FailedPrecondition("kafka.mode must be at_least_once or exactly_once, not '" + mode +
                              "'");
  }
  c->exactly_once = mode == "exactly_once";
  RETURN_IF_ERROR(Read(n, "kafka", "transactional_id", &c->transactional_id));
  RETURN_IF_ERROR(Read(n, "kafka", "transaction_timeout_ms", &c->transaction_timeout_ms));
  return Status::Ok();
}

Status ReadDrift(const YAML::Node& n, DriftConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "drift", {"enabled", "warn", "alert", "reference_rows",
                                         "window_s"}));
  RETURN_IF_ERROR(Read(n, "drift", "enabled", &c->enabled));
  RETURN_IF_ERROR(Read(n, "drift", "warn", &c->warn));
  RETURN_IF_ERROR(Read(n, "drift", "alert", &c->alert));
  RETURN_IF_ERROR(Read(n, "drift", "reference_rows", &c->reference_rows));
  RETURN_IF_ERROR(Read(n, "drift", "window_s", &c->window_s));
  if (c->warn <= 0 || c->alert < c->warn) {
    return FailedPrecondition("drift: need 0 < warn <= alert");
  }
  if (c->reference_rows < 100 || c->window_s < 10) {
    return FailedPrecondition("drift: reference_rows >= 100 and window_s >= 10");
  }
  return Status::Ok();
}

Status ReadLog(const YAML::Node& n, const std::string& base_dir, LogConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, "log", {"level", "format", "predictions"}));
  const YAML::Node p = n ? n["predictions"] : YAML::Node();
  RETURN_IF_ERROR(CheckKeys(p, "log.predictions", {"rate", "file", "topic"}));
  RETURN_IF_ERROR(Read(p, "log.predictions", "rate", &c->predictions_rate));
  RETURN_IF_ERROR(Read(p, "log.predictions", "file", &c->predictions_file));
  RETURN_IF_ERROR(Read(p, "log.predictions", "topic", &c->predictions_topic));
  if (c->predictions_rate < 0 || c->predictions_rate > 1) {
    return FailedPrecondition("log.predictions.rate must be between 0 and 1");
  }
  if (!c->predictions_file.empty() && !c->predictions_topic.empty()) {
    return FailedPrecondition("log.predictions: set file or topic, not both");
  }
  if (c->predictions_rate > 0 && c->predictions_file.empty() && c->predictions_topic.empty()) {
    return FailedPrecondition(
        "log.predictions.file or log.predictions.topic is needed when log.predictions.rate > 0");
  }
  if (!c->predictions_file.empty()) {
    c->predictions_file = ResolvePath(base_dir, c->predictions_file);
  }
  RETURN_IF_ERROR(Read(n, "log", "level", &c->level));
  std::string format = c->json ? "json" : "text";
  RETURN_IF_ERROR(Read(n, "log", "format", &format));
  if (format != "text" && format != "json") {
    return FailedPrecondition("log.format must be 'text' or 'json', not '" + format + "'");
  }
  c->json = format == "json";
  return Status::Ok();
}

Result<Config> FromYaml(const YAML::Node& root, const std::string& base_dir) {
  Config c;
  c.models.repository = ResolvePath(base_dir, c.models.repository);
  c.features.rocksdb_path = ResolvePath(base_dir, c.features.rocksdb_path);
  if (!root || root.IsNull()) return c;
  RETURN_IF_ERROR(CheckKeys(root, "config",
                            {"http", "grpc", "models", "scoring", "features", "kafka", "drift",
                             "log"}));
  RETURN_IF_ERROR(ReadHttp(root["http"], base_dir, &c.http));
  RETURN_IF_ERROR(ReadGrpc(root["grpc"], &c.grpc));
  RETURN_IF_ERROR(ReadModels(root["models"], base_dir, &c.models));
  RETURN_IF_ERROR(ReadScoring(root["scoring"], &c.scoring));
  RETURN_IF_ERROR(ReadFeatures(root["features"], base_dir, &c.features));
  c.features.rocksdb_path = ResolvePath(base_dir, c.features.rocksdb_path);
  RETURN_IF_ERROR(ReadKafka(root["kafka"], &c.kafka));
  RETURN_IF_ERROR(ReadDrift(root["drift"], &c.drift));
  RETURN_IF_ERROR(ReadLog(root["log"], base_dir, &c.log));
  RETURN_IF_ERROR(Validate(c));
  return c;
}

constexpr std::string_view kEnvPrefix = "RTML_";
constexpr std::string_view kEnvNest = "__";

// The key path an environment variable names: RTML_A__B_C__D -> {a, b_c, d}.
std::vector<std::string> EnvPath(std::string_view name) {
  std::vector<std::string> path;
  std::string_view rest = name.substr(kEnvPrefix.size());
  while (true) {
    const size_t cut = rest.find(kEnvNest);
    std::string part(rest.substr(0, cut));
    std::transform(part.begin(), part.end(), part.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    path.push_back(std::move(part));
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + kEnvNest.size());
  }
  return path;
}

// Sets each variable's key in `root` (a map, made one if empty).
Status ApplyEnvironment(const Environment& env, YAML::Node* root) {
  if (env.empty()) return Status::Ok();
  if (!*root || root->IsNull()) *root = YAML::Node(YAML::NodeType::Map);
  if (!root->IsMap()) {
    return FailedPrecondition("the config is not a mapping of sections, so the environment's " +
                              env.front().first + " has nowhere to go");
  }
  for (const auto& [name, value] : env) {
    const std::vector<std::string> path = EnvPath(name);
    for (const std::string& part : path) {
      if (part.empty()) {
        return FailedPrecondition("environment variable " + name +
                                  ": an empty key (write RTML_SECTION__KEY, \"__\" between keys)");
      }
    }
    YAML::Node v;
    try {
      v = value.empty() ? YAML::Node(std::string()) : YAML::Load(value);
    } catch (const YAML::Exception& e) {
      return FailedPrecondition("environment variable " + name + ": not a YAML value: " + e.msg);
    }
    // Walk by fresh handles: assigning to a yaml-cpp node that aliases
    // another would rewrite the other.
    std::vector<YAML::Node> chain{*root};
    std::string where;
    for (size_t i = 0; i + 1 < path.size(); ++i) {
      where += (where.empty() ? "" : ".") + path[i];
      YAML::Node next = chain.back()[path[i]];
      if (!next || next.IsNull()) {
        chain.back()[path[i]] = YAML::Node(YAML::NodeType::Map);
        next = chain.back()[path[i]];
      }
      if (!next.IsMap()) {
        return FailedPrecondition("environment variable " + name + ": " + where +
                                  " is not a mapping in the config file");
      }
      chain.push_back(next);
    }
    chain.back()[path.back()] = v;
  }
  return Status::Ok();
}

std::string EnvNames(const Environment& env) {
  std::string names;
  for (const auto& [name, value] : env) names += (names.empty() ? "" : ", ") + name;
  return names;
}

Result<Config> FromYamlAndEnv(YAML::Node root, const std::string& base_dir,
                              const Environment& env) {
  RETURN_IF_ERROR(ApplyEnvironment(env, &root));
  auto c = FromYaml(root, base_dir);
  if (!c.ok() && !env.empty()) {
    return c.status().Annotate("with the environment's " + EnvNames(env));
  }
  return c;
}

}  // namespace

Environment ProcessEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    if (!name.starts_with(kEnvPrefix) || name.find(kEnvNest) == std::string_view::npos) continue;
    env.emplace_back(std::string(name), std::string(entry.substr(eq + 1)));
  }
  std::sort(env.begin(), env.end());
  return env;
}

Status Validate(const Config& c) {
  if (c.http.port < 0 || c.http.port > 65535) {
    return FailedPrecondition("http.port must be 0..65535, not " + std::to_string(c.http.port));
  }
  if (c.http.threads < 0) return FailedPrecondition("http.threads must be >= 0");
  if (c.http.max_body_bytes < 64) return FailedPrecondition("http.max_body_bytes must be >= 64");
  if (c.http.idle_timeout_s <= 0) return FailedPrecondition("http.idle_timeout_s must be > 0");
  if (c.grpc.port < 0 || c.grpc.port > 65535) {
    return FailedPrecondition("grpc.port must be 0..65535 (0 = off), not " +
                              std::to_string(c.grpc.port));
  }
  if (c.grpc.port != 0 && c.grpc.port == c.http.port && c.grpc.host == c.http.host) {
    return FailedPrecondition("grpc.port must differ from http.port (" +
                              std::to_string(c.http.port) + "): gRPC has a port of its own");
  }
  if (c.grpc.threads <= 0 || c.grpc.threads > 256) {
    return FailedPrecondition("grpc.threads must be 1..256");
  }
  if (c.grpc.max_message_bytes < 64 || c.grpc.max_message_bytes > (size_t{1} << 31) - 1) {
    return FailedPrecondition("grpc.max_message_bytes must be 64..2147483647");
  }
  // NaN fails both comparisons; a day bounds it, as it bounds a request's.
  if (!(c.grpc.default_timeout_ms >= 0 && c.grpc.default_timeout_ms <= 86'400'000)) {
    return FailedPrecondition("grpc.default_timeout_ms must be 0..86400000 (a day; 0 = none)");
  }
  if (c.scoring.max_batch_size <= 0) {
    return FailedPrecondition("scoring.max_batch_size must be > 0");
  }
  if (c.features.redis_port <= 0 || c.features.redis_port > 65535) {
    return FailedPrecondition("features.redis.port must be 1..65535");
  }
  if (c.features.redis_timeout_ms <= 0) {
    return FailedPrecondition("features.redis.timeout_ms must be > 0");
  }
  if (c.kafka.max_batch <= 0) return FailedPrecondition("kafka.max_batch must be > 0");
  if (c.kafka.max_in_flight <= 0) return FailedPrecondition("kafka.max_in_flight must be > 0");
  if (c.kafka.input_topic.empty() || c.kafka.output_topic.empty()) {
    return FailedPrecondition("kafka.input_topic and kafka.output_topic must not be empty");
  }
  const std::string& l = c.log.level;
  if (l != "trace" && l != "debug" && l != "info" && l != "warn" && l != "error") {
    return FailedPrecondition("log.level must be trace, debug, info, warn or error, not '" + l +
                              "'");
  }
  return Status::Ok();
}

Result<Config> LoadConfig(const std::string& path, const Environment& env) {
  if (path.empty()) return FromYamlAndEnv(YAML::Node(), ".", env);
  ASSIGN_OR_RETURN(YAML::Node root, LoadYamlFile(path));
  auto c = FromYamlAndEnv(root, DirName(path), env);
  if (!c.ok()) return c.status().Annotate(path);
  return c;
}

Result<Config> ParseConfig(std::string_view yaml, const std::string& base_dir,
                           std::string_view where, const Environment& env) {
  ASSIGN_OR_RETURN(YAML::Node root, ParseYaml(yaml, where));
  auto c = FromYamlAndEnv(root, base_dir, env);
  if (!c.ok()) return c.status().Annotate(where);
  return c;
}

}  // namespace rtml::config
