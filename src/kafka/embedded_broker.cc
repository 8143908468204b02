#include "kafka/embedded_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <array>
#include <boost/asio.hpp>
#include <thread>

#include "kafka/conf.h"

namespace rtml::kafka {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Relays each accepted connection to the target port, byte for byte.
class EmbeddedBroker::Forwarder {
 public:
  Forwarder(int listen_port, int target_port)
      : acceptor_(io_), target_(asio::ip::make_address("127.0.0.1"),
                                static_cast<uint16_t>(target_port)) {
    listen_port_ = listen_port;
  }
  ~Forwarder() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Status Listen() {
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(listen_port_));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on 127.0.0.1:" + std::to_string(listen_port_) + ": " +
                        ec.message() + " (choose another --port)");
    }
    Accept();
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

 private:
  struct Pipe : std::enable_shared_from_this<Pipe> {
    explicit Pipe(asio::io_context& io, tcp::socket client) : a(std::move(client)), b(io) {}
    void Start(const tcp::endpoint& target) {
      b.async_connect(target, [self = shared_from_this()](boost::system::error_code ec) {
        if (ec) return self->Close();
        self->Relay(self->a, self->b, self->ab);
        self->Relay(self->b, self->a, self->ba);
      });
    }
    void Relay(tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buf) {
      from.async_read_some(asio::buffer(buf), [self = shared_from_this(), &from, &to, &buf](
                                                  boost::system::error_code ec, size_t n) {
        if (ec) return self->Close();
        asio::async_write(to, asio::buffer(buf.data(), n),
                          [self, &from, &to, &buf](boost::system::error_code ec2, size_t) {
                            if (ec2) return self->Close();
                            self->Relay(from, to, buf);
                          });
      });
    }
    void Close() {
      boost::system::error_code ignored;
      a.close(ignored);
      b.close(ignored);
    }
    tcp::socket a, b;
    std::array<char, 16384> ab{}, ba{};
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Pipe>(io_, std::move(s))->Start(target_);
      Accept();
    });
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  tcp::endpoint target_;
  int listen_port_ = 0;
  std::thread thread_;
};

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(const EmbeddedBrokerOptions& o) {
  auto b = std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  LogThroughSpdlog(conf);
  b->handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (b->handle_ == nullptr) return Internal(std::string("rd_kafka_new: ") + err);
  b->cluster_ = rd_kafka_mock_cluster_new(b->handle_, std::max(1, o.brokers));
  if (b->cluster_ == nullptr) return Internal("cannot create the mock Kafka cluster");
  for (const TopicSpec& t : o.topics) RETURN_IF_ERROR(b->CreateTopic(t.name, t.partitions));
  b->bootstrap_ = rd_kafka_mock_cluster_bootstraps(b->cluster_);
  if (o.port > 0) {
    const std::string first = b->bootstrap_.substr(0, b->bootstrap_.find(','));
    const int target = std::stoi(first.substr(first.rfind(':') + 1));
    b->forwarder_ = std::make_unique<Forwarder>(o.port, target);
    RETURN_IF_ERROR(b->forwarder_->Listen());
    b->bootstrap_ = "127.0.0.1:" + std::to_string(o.port);
  }
  return b;
}

EmbeddedBroker::~EmbeddedBroker() {
  forwarder_.reset();
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

Status EmbeddedBroker::CreateTopic(const std::string& name, int partitions) {
  const rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Internal("cannot create topic " + name + ": " + rd_kafka_err2str(e));
  }
  return Status::Ok();
}

Status EmbeddedBroker::SetBrokerUp(int id, bool up) {
  const rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(cluster_, id)
                                   : rd_kafka_mock_broker_set_down(cluster_, id);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Internal(rd_kafka_err2str(e));
  return Status::Ok();
}

}  // namespace rtml::kafka
