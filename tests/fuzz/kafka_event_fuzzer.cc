// A Kafka event as the stream worker takes it: the key (up to the first
// newline of the input) and the payload (the rest) go through the stream
// feature views' event decoder, then the payload is scored as a stream
// event is, in a batch with a well-formed one.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_env.h"
#include "kafka/aggregation_feed.h"
#include "protocol/rtml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rtml::fuzz::Env& env = rtml::fuzz::DemoEnv();
  static std::unique_ptr<rtml::kafka::AggregationFeed> feed =
      rtml::kafka::AggregationFeed::Create(env.store.get(), "transactions", &env.metrics);
  static rtml::pipeline::ScoreScratch scratch;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view key = newline == std::string_view::npos ? "" : input.substr(0, newline);
  const std::string_view payload =
      newline == std::string_view::npos ? input : input.substr(newline + 1);
  int64_t read_at_us = 0;
  if (feed != nullptr) (void)feed->Parse("transactions", key, payload, &read_at_us);
  const rtml::pipeline::Payload bodies[] = {
      {&rtml::protocol::KafkaEvent(), payload},
      {&rtml::protocol::KafkaEvent(), R"({"user_id": 1001, "amount": 12.5})"}};
  std::vector<rtml::pipeline::EventResult> results(2);
  env.scorer->ScoreBatch({.path = rtml::pipeline::Path::kStream}, bodies, &scratch, &results);
  return 0;
}
