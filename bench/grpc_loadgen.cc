// grpc_loadgen: a closed-loop load generator for the Open Inference
// Protocol's ModelInfer over gRPC, for any server of the protocol (rtml,
// MLServer, Triton: the method path is the same).
//
// --concurrency calls are kept in flight over --channels HTTP/2 connections
// (each call is sent again as soon as its answer arrives) for --duration
// seconds after a --warmup; the request is a serialized ModelInferRequest
// read from --request (sent as bytes, so the client spends nothing on
// protobuf). Prints one JSON object: calls/s of OK answers, errors (and the
// first error's message), p50/p90/p99 latency in ms.
//
//   grpc_loadgen --target 127.0.0.1:8001 --request FILE [--concurrency 32]
//                [--channels 4] [--duration 8] [--warmup 1]
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
const std::string kMethod = "/inference.GRPCInferenceService/ModelInfer";

struct Options {
  std::string target, request_file;
  int concurrency = 32, channels = 4;
  double duration_s = 8, warmup_s = 1;
};

struct Stats {
  std::vector<double> latencies_ms;  // counted calls only
  uint64_t ok = 0, errors = 0;
  std::string first_error;
};

// One call slot: sends the request, and again on each answer.
struct Slot {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  grpc::ByteBuffer response;
  grpc::Status status;
  Clock::time_point sent;
  grpc::GenericStub* stub = nullptr;
};

void Send(Slot& s, const grpc::ByteBuffer& request, grpc::CompletionQueue* cq) {
  s.ctx = std::make_unique<grpc::ClientContext>();
  s.sent = Clock::now();
  s.reader = s.stub->PrepareUnaryCall(s.ctx.get(), kMethod, request, cq);
  s.reader->StartCall();
  s.reader->Finish(&s.response, &s.status, &s);
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--target") o->target = v;
    else if (k == "--request") o->request_file = v;
    else if (k == "--concurrency") o->concurrency = std::atoi(v.c_str());
    else if (k == "--channels") o->channels = std::atoi(v.c_str());
    else if (k == "--duration") o->duration_s = std::atof(v.c_str());
    else if (k == "--warmup") o->warmup_s = std::atof(v.c_str());
    else return false;
  }
  return !o->target.empty() && !o->request_file.empty() && o->concurrency > 0 &&
         o->channels > 0;
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: grpc_loadgen --target HOST:PORT --request FILE [--concurrency 32] "
                 "[--channels 4] [--duration 8] [--warmup 1]\n");
    return 2;
  }
  std::ifstream in(o.request_file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  if (!in && bytes.empty()) {
    std::fprintf(stderr, "grpc_loadgen: cannot read %s\n", o.request_file.c_str());
    return 2;
  }
  grpc::Slice slice(bytes.data(), bytes.size());
  const grpc::ByteBuffer request(&slice, 1);

  // Each channel its own connection (distinct channel args) and client
  // thread with a completion queue.
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int c = 0; c < o.channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("rtml.loadgen.channel", c);
    args.SetMaxReceiveMessageSize(-1);
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args)));
  }
  const Clock::time_point start = Clock::now();
  const Clock::time_point counted_from =
      start + std::chrono::microseconds(static_cast<int64_t>(o.warmup_s * 1e6));
  const Clock::time_point end =
      counted_from + std::chrono::microseconds(static_cast<int64_t>(o.duration_s * 1e6));
  std::vector<Stats> stats(o.channels);
  std::vector<std::thread> threads;
  for (int c = 0; c < o.channels; ++c) {
    threads.emplace_back([&, c] {
      grpc::CompletionQueue cq;
      const int slots = o.concurrency / o.channels + (c < o.concurrency % o.channels ? 1 : 0);
      std::vector<Slot> calls(static_cast<size_t>(slots));
      for (Slot& s : calls) {
        s.stub = stubs[c].get();
        Send(s, request, &cq);
      }
      int in_flight = slots;
      void* tag = nullptr;
      bool ok = false;
      while (in_flight > 0 && cq.Next(&tag, &ok)) {
        Slot& s = *static_cast<Slot*>(tag);
        const Clock::time_point now = Clock::now();
        if (s.sent >= counted_from && now <= end) {
          if (s.status.ok()) {
            ++stats[c].ok;
            stats[c].latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(now - s.sent).count());
          } else {
            ++stats[c].errors;
            if (stats[c].first_error.empty()) stats[c].first_error = s.status.error_message();
          }
        }
        if (now < end) {
          Send(s, request, &cq);
        } else {
          --in_flight;
        }
      }
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Stats all;
  for (Stats& s : stats) {
    all.ok += s.ok;
    all.errors += s.errors;
    if (all.first_error.empty()) all.first_error = s.first_error;
    all.latencies_ms.insert(all.latencies_ms.end(), s.latencies_ms.begin(), s.latencies_ms.end());
  }
  std::string error;
  for (char ch : all.first_error) {
    if (ch == '"' || ch == '\\') error += '\\';
    if (ch >= 0x20) error += ch;
  }
  std::printf(
      "{\"calls_per_s\": %.1f, \"ok\": %llu, \"errors\": %llu, \"first_error\": \"%s\", "
      "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f}\n",
      static_cast<double>(all.ok) / o.duration_s, static_cast<unsigned long long>(all.ok),
      static_cast<unsigned long long>(all.errors), error.c_str(),
      Percentile(all.latencies_ms, 0.50), Percentile(all.latencies_ms, 0.90),
      Percentile(all.latencies_ms, 0.99));
  return all.ok > 0 ? 0 : 1;
}
