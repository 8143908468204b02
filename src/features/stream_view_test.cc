#include "features/stream_view.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/time_format.h"
#include "features/online_reader.h"
#include "features/stream_aggregator.h"

namespace rtml::features {
namespace {

constexpr char kDefs[] = R"(
project: fraud
entities:
  - {name: user, join_key: user_id, dtype: int64}
stream_feature_views:
  - name: user_txn
    entities: [user]
    source: {kafka_topic: txns, timestamp_field: event_time}
    allowed_lateness_s: 60
    aggregations:
      - {column: amount, function: count, windows: [1h, 24h]}
      - {column: amount, function: sum, windows: [1h]}
      - {column: amount, function: max, windows: [1h], tile: 1m}
      - {column: merchant, function: count_distinct, windows: [24h], as: merchants_24h}
      - {column: amount, function: last_n, n: 2}
      - {column: event_time, function: last}
feature_services:
  - {name: svc, features: [user_txn]}
)";

Definitions Defs() {
  auto d = Definitions::Parse(kDefs, "/repo", "features.yaml");
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return std::move(d).value();
}

TEST(StreamViewTest, DerivesOutputNamesAndTypes) {
  Definitions d = Defs();
  const FeatureView* v = d.FindView("user_txn");
  ASSERT_NE(v, nullptr);
  ASSERT_NE(v->aggregation, nullptr);
  std::vector<std::string> names;
  for (const Feature& f : v->features) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"amount_count_1h", "amount_count_24h",
                                             "amount_sum_1h", "amount_max_1h", "merchants_24h",
                                             "amount_last_2_1", "amount_last_2_2",
                                             "seconds_since_last"}));
  EXPECT_EQ(v->features[0].dtype, ValueType::kInt);
  EXPECT_EQ(v->features[2].dtype, ValueType::kFloat);
  EXPECT_EQ(v->aggregation->layout->n_outputs(), v->features.size());
  EXPECT_EQ(d.FindPushTarget("user_txn"), nullptr);  // nothing writes it but its topic
  EXPECT_EQ(d.FindService("svc")->features.size(), names.size());
  EXPECT_TRUE(d.ResolveRef("user_txn:amount_count_1h").ok());
}

TEST(StreamViewTest, RejectsBadDefinitionsNamingTheKey) {
  auto parse = [](const std::string& agg) {
    std::string y = std::string(R"(
entities: [{name: user, join_key: user_id}]
stream_feature_views:
  - name: v
    entities: [user]
    aggregations:
      - )") + agg + "\n";
    return Definitions::Parse(y, "/", "f.yaml").status();
  };
  EXPECT_NE(parse("{column: a, function: median, windows: [1h]}").message().find("median"),
            std::string::npos);
  EXPECT_NE(parse("{column: a, function: count}").message().find("needs at least one window"),
            std::string::npos);
  EXPECT_NE(parse("{column: a, function: count, windows: [1h, 2h], as: x}").message().find("as"),
            std::string::npos);
  EXPECT_NE(parse("{column: a, function: sum, windows: [1y]}").message().find("windows"),
            std::string::npos);
  EXPECT_NE(parse("{column: a, function: last_n}").message().find("n from 1"), std::string::npos);
  EXPECT_NE(parse("{column: a, function: count, windows: [1h], tile: 2h}").message().find("tile"),
            std::string::npos);
  EXPECT_NE(parse("{column: a, function: count, windows: [1h], window: 1h}").message().find("window"),
            std::string::npos);
  EXPECT_NE(parse("{column: a, function: seconds_since}").message().find("timestamp"),
            std::string::npos);
}

TEST(StreamViewTest, ReadsEventsAndNamesBadFields) {
  Definitions d = Defs();
  StreamEventReader reader(d, *d.FindView("user_txn"));
  simdjson::dom::parser p;
  StreamEvent e;
  ASSERT_TRUE(reader
                  .FromJson(p.parse(std::string_view(
                                R"({"features": {"user_id": 7, "amount": 12.5, "merchant": "m1"},
                                    "event_time": "2026-12-01T10:00:00Z"})")),
                            &e)
                  .ok());
  EXPECT_EQ(e.entity_key, "7");
  EXPECT_EQ(e.ts_us, *ParseTimestamp("2026-12-01T10:00:00Z"));
  EXPECT_EQ(e.values[0], 12.5);
  EXPECT_FALSE(std::isnan(e.values[1]));  // the merchant, hashed
  auto bad = [&](std::string_view json) {
    return reader.FromJson(p.parse(json), &e);
  };
  Status s = bad(R"({"amount": 1, "event_time": 1764583200})");
  EXPECT_EQ(s.field(), "user_id");
  EXPECT_EQ(s.reason(), "bad_aggregation_event");
  EXPECT_EQ(bad(R"({"user_id": 1, "amount": 1})").field(), "event_time");
  EXPECT_EQ(bad(R"({"user_id": 1, "event_time": "yesterday"})").field(), "event_time");
  s = bad(R"({"user_id": 1, "event_time": 1764583200, "amount": "ten"})");
  EXPECT_EQ(s.field(), "amount");
  EXPECT_NE(s.message().find("must be a number"), std::string::npos);
  EXPECT_EQ(bad(R"({"user_id": 1, "event_time": 1764583200, "amount": [1]})").field(), "amount");
  EXPECT_TRUE(bad(R"({"user_id": 1, "event_time": 1764583200})").ok());  // absent: not counted
}

TEST(StreamViewTest, AggregatorAppliesOnceAndReadersSeeTheWindows) {
  Definitions d = Defs();
  const FeatureView& view = *d.FindView("user_txn");
  auto store = NewMemoryStore();
  auto session = store->NewSession();
  StreamAggregator agg(view, "txns");
  const int64_t t0 = *ParseTimestamp("2026-12-01T10:00:00Z");
  std::vector<StreamEvent> events(3);
  events[0] = {"7", t0, {10, 1, t0 / 1e6}};
  events[1] = {"7", t0 + 60'000'000, {20, 2, (t0 + 60'000'000) / 1e6}};
  events[2] = {"8", t0, {5, 1, t0 / 1e6}};
  std::vector<StreamAggregator::Item> items = {{0, 0, &events[0]}, {0, 1, &events[1]},
                                               {1, 0, &events[2]}};
  StreamAggregator::Counts c;
  ASSERT_TRUE(agg.Apply(*session, items, &c).ok());
  EXPECT_EQ(c.applied, 3u);
  // A re-delivery (a restarted worker, fresh cache) skips what was applied.
  StreamAggregator again(view, "txns");
  StreamAggregator::Counts c2;
  ASSERT_TRUE(again.Apply(*session, items, &c2).ok());
  EXPECT_EQ(c2.applied, 0u);
  EXPECT_EQ(c2.duplicates, 3u);
  EXPECT_EQ(**again.NextOffset(*session, 0), 2);

  auto reader = OnlineReader::Create(d, d.FindService("svc")->features);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  OnlineReader::Scratch scratch;
  std::vector<std::string> keys = {"7", "9"};
  ASSERT_TRUE(reader->Read(*session, 2, keys, &scratch).ok());
  const int64_t now = t0 + 120'000'000;
  auto value = [&](size_t row, size_t ref) {
    OnlineReader::Cell cell = reader->Get(scratch, row, ref, now);
    return cell.status == FeatureStatus::kPresent ? **cell.value : FeatureStatusName(cell.status);
  };
  EXPECT_EQ(value(0, 0), "2");      // amount_count_1h
  EXPECT_EQ(value(0, 2), "30");     // amount_sum_1h
  EXPECT_EQ(value(0, 3), "20");     // amount_max_1h
  EXPECT_EQ(value(0, 4), "2");      // merchants_24h
  EXPECT_EQ(value(0, 5), "20");     // amount_last_2_1: the latest
  EXPECT_EQ(value(0, 6), "10");
  EXPECT_EQ(value(0, 7), "60");     // seconds_since_last
  EXPECT_EQ(value(1, 0), "0");      // an entity with no events: a count of 0
  EXPECT_EQ(value(1, 3), "NOT_FOUND");
  EXPECT_EQ(reader->Get(scratch, 0, 0, t0 + 2 * 3'600'000'000).status, FeatureStatus::kPresent);
  EXPECT_EQ(value(0, 0), "2");
  EXPECT_EQ(**reader->Get(scratch, 0, 0, t0 + 3 * 3'600'000'000).value, "0");  // out of the window
  EXPECT_EQ(reader->Get(scratch, 0, 3, t0 + 3 * 3'600'000'000).status, FeatureStatus::kNullValue);
}

}  // namespace
}  // namespace rtml::features
