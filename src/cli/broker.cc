// `rtml broker`: librdkafka's mock cluster on a fixed loopback port, for other
// rtml processes and real Kafka clients (kcat, confluent-kafka).
#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "cli/commands.h"
#include "kafka/embedded_broker.h"

namespace rtml::cli {

int RunBroker(int port, int partitions, int brokers, const std::vector<std::string>& topics) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  kafka::EmbeddedBrokerOptions o{.brokers = brokers, .port = port, .topics = {}};
  for (const std::string& t : topics) o.topics.push_back({t, partitions});
  auto broker = kafka::EmbeddedBroker::Start(o);
  if (!broker.ok()) {
    std::fprintf(stderr, "rtml broker: %s\n", broker.status().message().c_str());
    return 1;
  }
  std::printf("rtml broker: mock Kafka cluster (%d broker%s) ready at %s\n", brokers,
              brokers == 1 ? "" : "s", (*broker)->bootstrap().c_str());
  for (const std::string& t : topics) std::printf("  topic %s: %d partitions\n", t.c_str(), partitions);
  std::printf("  memory only; ~5 MiB retained per partition; clients should set "
              "session.timeout.ms=6000 (see README)\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  std::printf("rtml broker: stopping\n");
  return 0;
}

}  // namespace rtml::cli
