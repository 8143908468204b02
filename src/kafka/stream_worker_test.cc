// The stream worker against librdkafka's mock cluster in-process, with faults
// injected through the mock API: brokers going down and request errors delay
// events but lose none.
#include "kafka/stream_worker.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <simdjson.h>

#include <chrono>
#include <set>
#include <thread>

#include "kafka/embedded_broker.h"

namespace rtml::kafka {
namespace {

const std::string kRepo = std::string(RTML_SOURCE_DIR) + "/tests/testdata/models";
constexpr int16_t kApiProduce = 0;       // Kafka protocol ApiKeys
constexpr int16_t kApiOffsetCommit = 8;

rd_kafka_t* NewClient(rd_kafka_type_t type, const std::string& bootstrap,
                      std::vector<std::pair<std::string, std::string>> extra = {}) {
  char err[512];
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  extra.emplace_back("bootstrap.servers", bootstrap);
  extra.emplace_back("log_level", "2");
  for (auto& [k, v] : extra) rd_kafka_conf_set(c, k.c_str(), v.c_str(), err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(type, c, err, sizeof(err));
  EXPECT_NE(rk, nullptr) << err;
  return rk;
}

class StreamWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = EmbeddedBroker::Start(
        {.brokers = 3, .port = 0, .topics = {{"in", 4}, {"out", 4}, {"in-dlq", 2}}});
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
    scorer_ = pipeline::Scorer::Create({.path = kRepo, .default_model = "binary"}, nullptr, {},
                                       &metrics_)
                  .value();
    auto worker = StreamWorker::Create({.brokers = broker_->bootstrap(), .group_id = "g",
                                        .input_topic = "in", .output_topic = "out",
                                        .max_batch = 100, .max_in_flight = 500},
                                       *scorer_, &metrics_);
    ASSERT_TRUE(worker.ok()) << worker.status().ToString();
    worker_ = std::move(worker).value();
    thread_ = std::thread([this] { EXPECT_TRUE(worker_->Run().ok()); });
    producer_ = NewClient(RD_KAFKA_PRODUCER, broker_->bootstrap(),
                          {{"enable.idempotence", "true"}, {"linger.ms", "5"}});
  }

  void TearDown() override {
    worker_->Stop();
    thread_.join();
    rd_kafka_destroy(producer_);
    worker_.reset();
    broker_.reset();
  }

  void Produce(int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string key = "k" + std::to_string(i);
      const std::string value = i % 97 == 0 ? R"({"id": )" + std::to_string(i) + R"(, "f1": "x"})"
                                            : R"({"id": )" + std::to_string(i) +
                                                  R"(, "f1": 0.5, "f2": )" + std::to_string(i % 7) +
                                                  "}";
      while (rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC("in"),
                               RD_KAFKA_V_KEY(key.data(), key.size()),
                               RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer_, 10);
      }
    }
    ASSERT_EQ(rd_kafka_flush(producer_, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  // Reads `topic` from the beginning until `want` distinct ids or the deadline.
  std::multiset<int64_t> ReadIds(const std::string& topic, int partitions, size_t want) {
    rd_kafka_t* c = NewClient(RD_KAFKA_CONSUMER, broker_->bootstrap(),
                              {{"group.id", "reader-" + topic}, {"enable.auto.commit", "false"}});
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    std::multiset<int64_t> ids;
    std::set<int64_t> distinct;
    simdjson::dom::parser parser;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (distinct.size() < want && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
      if (m == nullptr) continue;
      if (!m->err) {
        int64_t id = 0;
        if (!parser.parse(static_cast<const char*>(m->payload), m->len)["id"].get(id)) {
          ids.insert(id);
          distinct.insert(id);
        }
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return ids;
  }

  observability::Registry metrics_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<pipeline::Scorer> scorer_;
  std::unique_ptr<StreamWorker> worker_;
  std::thread thread_;
  rd_kafka_t* producer_ = nullptr;
};

TEST_F(StreamWorkerTest, BrokerFaultsDelayButLoseNothing) {
  constexpr int kN = 3000;
  Produce(0, kN / 3);
  // A broker goes down mid-stream and comes back; requests fail for a while.
  ASSERT_TRUE(broker_->SetBrokerUp(2, false).ok());
  rd_kafka_mock_push_request_errors(broker_->cluster(), kApiProduce, 5,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  rd_kafka_mock_push_request_errors(broker_->cluster(), kApiOffsetCommit, 2,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
  std::thread restore([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_TRUE(broker_->SetBrokerUp(2, true).ok());
  });
  Produce(kN / 3, kN);
  restore.join();
  const int bad = (kN + 96) / 97;  // ids divisible by 97 are invalid events
  std::multiset<int64_t> out = ReadIds("out", 4, kN - bad);
  std::multiset<int64_t> dlq = ReadIds("in-dlq", 2, bad);
  std::set<int64_t> all(out.begin(), out.end());
  all.insert(dlq.begin(), dlq.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kN)) << "events lost";
  EXPECT_EQ(std::set<int64_t>(dlq.begin(), dlq.end()).size(), static_cast<size_t>(bad));
  EXPECT_EQ(worker_->stats().events_in.load(), out.size() + dlq.size())
      << "each consumed event has exactly one output (no re-delivery without a crash)";
}

TEST_F(StreamWorkerTest, PausesWhenOutputsPileUpAndResumes) {
  // The output topic's broker is slow: produce requests take 300 ms each.
  for (int b = 1; b <= 3; ++b) rd_kafka_mock_broker_set_rtt(broker_->cluster(), b, 300);
  Produce(0, 3000);
  for (int b = 1; b <= 3; ++b) rd_kafka_mock_broker_set_rtt(broker_->cluster(), b, 0);
  std::multiset<int64_t> out = ReadIds("out", 4, 3000 - 31);
  EXPECT_EQ(std::set<int64_t>(out.begin(), out.end()).size(), 3000u - 31);
  EXPECT_GT(worker_->stats().pauses.load(), 0u) << "never paused with 500 outputs in flight";
}

}  // namespace
}  // namespace rtml::kafka
