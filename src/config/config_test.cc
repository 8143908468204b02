#include "config/config.h"

#include <gtest/gtest.h>

namespace rtml::config {
namespace {

TEST(ConfigTest, EmptyConfigGivesDocumentedDefaults) {
  auto c = ParseConfig("", "/srv");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->http.host, "127.0.0.1");
  EXPECT_EQ(c->http.port, 8080);
  EXPECT_EQ(c->http.max_body_bytes, 1u << 20);
  EXPECT_EQ(c->models.repository, "/srv/models");
  EXPECT_EQ(c->scoring.max_batch_size, 1024);
  EXPECT_FALSE(c->scoring.ignore_unknown_features);
  EXPECT_EQ(c->grpc.port, 0);  // no gRPC service unless asked for
  EXPECT_EQ(c->grpc.threads, 2);
}

TEST(ConfigTest, ReadsEverySectionAndResolvesPaths) {
  auto c = ParseConfig(R"(
http: {host: 0.0.0.0, port: 9000, threads: 3, max_body_bytes: 4096, idle_timeout_s: 5}
grpc: {host: 0.0.0.0, port: 9001, threads: 4, max_message_bytes: 65536, default_timeout_ms: 50}
models: {repository: ../repo, default: fraud}
scoring: {max_batch_size: 16, unknown_features: ignore}
log: {level: debug, format: json}
)", "/etc/rtml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->http.host, "0.0.0.0");
  EXPECT_EQ(c->http.port, 9000);
  EXPECT_EQ(c->http.threads, 3);
  EXPECT_EQ(c->http.max_body_bytes, 4096u);
  EXPECT_EQ(c->models.repository, "/etc/repo");
  EXPECT_EQ(c->models.default_model, "fraud");
  EXPECT_EQ(c->scoring.max_batch_size, 16);
  EXPECT_TRUE(c->scoring.ignore_unknown_features);
  EXPECT_TRUE(c->log.json);
  EXPECT_EQ(c->grpc.host, "0.0.0.0");
  EXPECT_EQ(c->grpc.port, 9001);
  EXPECT_EQ(c->grpc.threads, 4);
  EXPECT_EQ(c->grpc.max_message_bytes, 65536u);
  EXPECT_EQ(c->grpc.default_timeout_ms, 50);
}

void ExpectFails(std::string_view yaml, std::string_view mention) {
  auto c = ParseConfig(yaml, ".");
  ASSERT_FALSE(c.ok()) << yaml;
  EXPECT_NE(c.status().message().find(mention), std::string::npos) << c.status().message();
}

TEST(ConfigTest, RejectsTyposAndBadValuesNamingTheKey) {
  ExpectFails("htp: {}", "unknown key 'htp'");
  ExpectFails("http: {prot: 1}", "unknown key 'prot'");
  ExpectFails("http: {port: abc}", "http.port");
  ExpectFails("http: {port: 70000}", "http.port");
  ExpectFails("scoring: {unknown_features: maybe}", "unknown_features");
  ExpectFails("scoring: {max_batch_size: 0}", "max_batch_size");
  ExpectFails("log: {level: loud}", "log.level");
  ExpectFails("log: {format: xml}", "log.format");
  ExpectFails("log: {predictions: {rate: 2, file: p.jsonl}}", "log.predictions.rate");
  ExpectFails("log: {predictions: {rate: 0.1}}", "log.predictions.file or log.predictions.topic");
  ExpectFails("log: {predictions: {rate: 0.1, file: p.jsonl, topic: t}}", "file or topic, not both");
  ExpectFails("http: [1, 2", "invalid YAML");
  ExpectFails("http: {tls: {cert: c.pem}}", "give both cert and key");
  ExpectFails("http: {tls: {client_ca: ca.pem}}", "needs http.tls.cert");
  ExpectFails("http: {tls: {cert: c.pem, key: k.pem, ca: x}}", "unknown key 'ca'");
  ExpectFails("http: {tls: on}", "http.tls: a mapping");
  ExpectFails("grpc: {prot: 1}", "unknown key 'prot'");
  ExpectFails("grpc: {port: 70000}", "grpc.port");
  ExpectFails("grpc: {port: 8080}", "must differ from http.port");
  ExpectFails("grpc: {threads: 0}", "grpc.threads");
  ExpectFails("grpc: {max_message_bytes: 1}", "grpc.max_message_bytes");
  ExpectFails("grpc: {default_timeout_ms: -1}", "grpc.default_timeout_ms");
  ExpectFails("grpc: {default_timeout_ms: 1e12}", "grpc.default_timeout_ms");
  ExpectFails("grpc: {default_timeout_ms: .nan}", "grpc.default_timeout_ms");
}

TEST(ConfigTest, TlsFilesAreRelativeToTheConfigFile) {
  auto c = ParseConfig("http: {tls: {cert: c.pem, key: /etc/k.pem, client_ca: ca.pem}}", "/srv");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->http.tls_cert, "/srv/c.pem");
  EXPECT_EQ(c->http.tls_key, "/etc/k.pem");
  EXPECT_EQ(c->http.tls_client_ca, "/srv/ca.pem");
  EXPECT_TRUE(ParseConfig("", "/srv")->http.tls_cert.empty());
}

TEST(ConfigTest, ReadsTheFeatureStoreSection) {
  auto c = ParseConfig(R"(
features:
  definitions: features.yaml
  store: redis
  redis: {host: 10.0.0.5, port: 6380, db: 2, timeout_ms: 20}
)", "/etc/rtml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->features.definitions, "/etc/rtml/features.yaml");
  EXPECT_EQ(c->features.store, "redis");
  EXPECT_EQ(c->features.redis_port, 6380);
  EXPECT_EQ(c->features.redis_db, 2);
  EXPECT_EQ(c->features.rocksdb_path, "/etc/rtml/data/online");
  ExpectFails("features: {store: cassandra}", "features.store");
  ExpectFails("features: {redis: {prot: 1}}", "unknown key 'prot'");
}

TEST(ConfigTest, MissingFileSaysSo) {
  auto c = LoadConfig("/nonexistent/rtml.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/rtml.yaml"), std::string::npos);
}

TEST(ConfigTest, TheEnvironmentSetsKeysOverTheFile) {
  const Environment env = {{"RTML_HTTP__PORT", "9100"},
                           {"RTML_HTTP__MAX_QUEUE_MS", "50"},
                           {"RTML_FEATURES__REDIS__HOST", "redis.example"},
                           {"RTML_KAFKA__BROKERS", "kafka:9092"},
                           {"RTML_KAFKA__PROPERTIES", "{security.protocol: SASL_PLAINTEXT}"},
                           {"RTML_MODELS__REPOSITORY", "/models"}};
  auto c = ParseConfig("http: {port: 9000, threads: 2}\nfeatures: {store: redis}\n", "/etc/rtml",
                       "rtml.yaml", env);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->http.port, 9100);       // over the file
  EXPECT_EQ(c->http.threads, 2);       // the file's, where the environment is silent
  EXPECT_DOUBLE_EQ(c->http.max_queue_ms, 50);
  EXPECT_EQ(c->features.store, "redis");
  EXPECT_EQ(c->features.redis_host, "redis.example");  // a section the file does not have
  EXPECT_EQ(c->kafka.brokers, "kafka:9092");
  EXPECT_EQ(c->kafka.properties.at("security.protocol"), "SASL_PLAINTEXT");
  EXPECT_EQ(c->models.repository, "/models");
}

TEST(ConfigTest, TheEnvironmentAloneConfiguresWithoutAFile) {
  auto c = LoadConfig("", {{"RTML_HTTP__HOST", "0.0.0.0"}, {"RTML_LOG__FORMAT", "json"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->http.host, "0.0.0.0");
  EXPECT_TRUE(c->log.json);
}

TEST(ConfigTest, BadEnvironmentSettingsNameTheVariable) {
  auto typo = ParseConfig("", "/srv", "config", {{"RTML_HTTP__PROT", "1"}});
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("prot"), std::string::npos) << typo.status().ToString();
  EXPECT_NE(typo.status().message().find("RTML_HTTP__PROT"), std::string::npos);
  auto type = ParseConfig("", "/srv", "config", {{"RTML_HTTP__PORT", "eighty"}});
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.status().message().find("http.port"), std::string::npos);
  auto empty = ParseConfig("", "/srv", "config", {{"RTML_HTTP____PORT", "1"}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("RTML_HTTP____PORT"), std::string::npos);
  auto scalar = ParseConfig("http: 3\n", "/srv", "config", {{"RTML_HTTP__PORT", "1"}});
  ASSERT_FALSE(scalar.ok());
  EXPECT_NE(scalar.status().message().find("not a mapping"), std::string::npos);
  auto yaml = ParseConfig("", "/srv", "config", {{"RTML_KAFKA__PROPERTIES", "{a: [}"}});
  ASSERT_FALSE(yaml.ok());
  EXPECT_NE(yaml.status().message().find("not a YAML value"), std::string::npos);
}

TEST(ConfigTest, OnlyRtmlVariablesWithNestingAreSettings) {
  setenv("RTML_LOG__LEVEL", "debug", 1);
  setenv("RTML_ADMIN_TOKEN", "secret", 1);
  setenv("OTHER__THING", "x", 1);
  const Environment env = ProcessEnvironment();
  unsetenv("RTML_LOG__LEVEL");
  unsetenv("RTML_ADMIN_TOKEN");
  unsetenv("OTHER__THING");
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].first, "RTML_LOG__LEVEL");
  EXPECT_EQ(env[0].second, "debug");
}

TEST(ConfigTest, RedisClusterSeedsAreHostPortPairsOnDatabaseZero) {
  auto c = ParseConfig(
      "features: {store: redis, redis: {cluster_nodes: [10.0.0.5:6379, 'redis-1:7000']}}\n", "/srv");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->features.redis_cluster_nodes,
            (std::vector<std::string>{"10.0.0.5:6379", "redis-1:7000"}));
  for (const char* bad : {"[redis-1]", "[':6379']", "['h:0']", "['h:70000']", "['h:x1']"}) {
    auto b = ParseConfig(std::string("features: {redis: {cluster_nodes: ") + bad + "}}\n", "/srv");
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("cluster_nodes"), std::string::npos) << bad;
  }
  auto db = ParseConfig("features: {redis: {db: 2, cluster_nodes: ['h:1']}}\n", "/srv");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("database 0"), std::string::npos);
}

}  // namespace
}  // namespace rtml::config
