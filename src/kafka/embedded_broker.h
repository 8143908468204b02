// EmbeddedBroker: librdkafka's mock Kafka cluster, as the demo's and the
// tests' broker and as `rtml broker` for other processes and real clients.
//
// The mock cluster listens on 127.0.0.1 at ports it picks itself (librdkafka
// 2.0.2 cannot be told a port). For a fixed address, a small TCP forwarder on
// the requested port relays bootstrap connections to the first mock broker;
// clients then follow the brokers' advertised addresses (all loopback).
// Limits (../shared/notes/kafka.md, README): memory only, ~5 MiB retained per
// partition, transactions accepted but not honoured, no CreateTopics API
// (topics are created here), rebalances wait session.timeout.ms - 1 s.
// Thread-safety: Start/Stop from one thread; the cluster runs its own threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace rtml::kafka {

struct TopicSpec {
  std::string name;
  int partitions = 6;
};

struct EmbeddedBrokerOptions {
  int brokers = 1;
  int port = 0;  // fixed bootstrap port on 127.0.0.1; 0 = the mock's own
  std::vector<TopicSpec> topics;
};

class EmbeddedBroker {
 public:
  // Starts the cluster, creates the topics and, with a port, the forwarder.
  // Fails (without aborting) when the port is taken.
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const EmbeddedBrokerOptions& options);
  ~EmbeddedBroker();

  // bootstrap.servers for clients.
  const std::string& bootstrap() const { return bootstrap_; }
  Status CreateTopic(const std::string& name, int partitions);
  rd_kafka_mock_cluster_t* cluster() const { return cluster_; }
  // Fault injection for tests: take broker `id` (1-based) down or up.
  Status SetBrokerUp(int id, bool up);

 private:
  class Forwarder;
  EmbeddedBroker() = default;

  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::unique_ptr<Forwarder> forwarder_;
  std::string bootstrap_;
};

}  // namespace rtml::kafka
