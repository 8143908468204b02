#include "features/ingest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace rtml::features {
namespace {

constexpr char kDefs[] = R"(
entities: [{name: user, join_key: user_id, dtype: int64}]
feature_views:
  - name: u
    entities: [user]
    features:
      - {name: amount, dtype: float}
      - {name: n, dtype: int64}
      - {name: flag, dtype: bool}
      - {name: country, dtype: string}
)";

RawValue Text(std::string t) { return {RawValue::Kind::kText, 0, false, std::move(t)}; }
RawValue Num(double d) { return {RawValue::Kind::kNumber, d, false, {}}; }
RawValue Str(std::string t) { return {RawValue::Kind::kString, 0, false, std::move(t)}; }

TEST(IngestTest, EncodesTypedValuesFromJsonAndText) {
  EXPECT_EQ(*EncodeValue(ValueType::kFloat, Num(1.5)).value(), "1.5");
  EXPECT_EQ(*EncodeValue(ValueType::kFloat, Text("2.25")).value(), "2.25");
  EXPECT_EQ(*EncodeValue(ValueType::kInt, Text("42")).value(), "42");
  EXPECT_EQ(*EncodeValue(ValueType::kBool, Text("true")).value(), "1");
  EXPECT_FALSE(EncodeValue(ValueType::kFloat, Text("")).value().has_value());  // null
  EXPECT_FALSE(EncodeValue(ValueType::kInt, Num(1.5)).ok());
  EXPECT_FALSE(EncodeValue(ValueType::kFloat, Str("1.5")).ok());  // JSON strings stay strings
  EXPECT_FALSE(EncodeValue(ValueType::kBool, Num(1)).ok());
  EXPECT_EQ(EncodeJoinKey(ValueType::kInt, Num(7)).value(), "7");
  EXPECT_EQ(EncodeJoinKey(ValueType::kInt, Str("x")).status().reason(), "bad_entity_key");
  EXPECT_EQ(EncodeJoinKey(ValueType::kInt, RawValue{}).status().reason(), "missing_entity_key");
  EXPECT_EQ(EventTime(Num(1.5)).value(), 1500000);
  EXPECT_EQ(EventTime(Text("1970-01-01T00:00:02Z")).value(), 2000000);
  EXPECT_EQ(EventTime(Text("")).status().reason(), "missing_timestamp");
}

TEST(IngestTest, BadRowsAreRejectedWithRowAndReasonOthersAreWritten) {
  auto defs = Definitions::Parse(kDefs, ".", "t").value();
  auto g = ViewIngestor::Create(defs, *defs.FindView("u"),
                                {"user_id", "event_timestamp", "amount", "n", "flag", "country",
                                 "extra"});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->ignored_columns(), std::vector<std::string>{"extra"});
  IngestResult result;
  auto row = [&](size_t i, std::vector<RawValue> cells) { g->Add(i, cells, &result); };
  row(0, {Text("1"), Text("10"), Text("1.5"), Text("2"), Text("true"), Text("FR"), Text("x")});
  row(1, {Text("abc"), Text("10"), Text("1.5"), Text("2"), Text("true"), Text("FR"), Text("")});
  row(2, {Text("2"), Text(""), Text("1.5"), Text("2"), Text("true"), Text("FR"), Text("")});
  row(3, {Text("3"), Text("10"), Text("lots"), Text("2"), Text("true"), Text("FR"), Text("")});
  row(4, {Text("4"), Text("10"), Text(""), Text(""), Text(""), Text(""), Text("")});
  EXPECT_EQ(result.rows, 5u);
  ASSERT_EQ(result.rejected, 3u);
  EXPECT_EQ(result.rejections[0].row, 1u);
  EXPECT_EQ(result.rejections[0].column, "user_id");
  EXPECT_EQ(result.rejections[1].column, "event_timestamp");
  EXPECT_EQ(result.rejections[2].column, "amount");
  EXPECT_NE(result.rejections[2].reason.find("expected float"), std::string::npos);
  auto store = NewMemoryStore();
  auto session = store->NewSession();
  ASSERT_TRUE(g->Flush(*session, &result).ok());
  EXPECT_EQ(result.written, 2u);
}

TEST(IngestTest, MissingColumnsAreNamed) {
  auto defs = Definitions::Parse(kDefs, ".", "t").value();
  auto g = ViewIngestor::Create(defs, *defs.FindView("u"), {"user_id", "event_timestamp"});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().field(), "amount");
  EXPECT_FALSE(ViewIngestor::Create(defs, *defs.FindView("u"), {"amount"}).ok());
}

TEST(IngestTest, SplitsQuotedCsv) {
  std::vector<std::string> f;
  ASSERT_TRUE(SplitCsvLine(R"(1,"a, b","say ""hi""",,x)", &f));
  EXPECT_EQ(f, (std::vector<std::string>{"1", "a, b", "say \"hi\"", "", "x"}));
  EXPECT_FALSE(SplitCsvLine(R"(1,"open)", &f));
}

TEST(IngestTest, ReadsCsvAndJsonLinesFiles) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string csv = (dir / "rtml_ingest_test.csv").string();
  const std::string jsonl = (dir / "rtml_ingest_test.jsonl").string();
  std::ofstream(csv) << "user_id,event_timestamp,amount\n1,2026-01-01,2.5\r\n2,5,\n";
  std::ofstream(jsonl) << "{\"user_id\": 1, \"amount\": 2.5}\n{\"user_id\": \"x\", \"amount\": null}\n";
  std::vector<std::vector<RawValue>> rows;
  std::vector<std::string> cols;
  auto collect = [&](const std::vector<std::string>& c, size_t, std::span<const RawValue> cells) {
    cols = c;
    rows.emplace_back(cells.begin(), cells.end());
    return Status::Ok();
  };
  ASSERT_TRUE(ReadSourceFile(csv, collect).ok());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(cols, (std::vector<std::string>{"user_id", "event_timestamp", "amount"}));
  EXPECT_EQ(rows[0][2].text, "2.5");
  EXPECT_EQ(rows[1][2].text, "");
  rows.clear();
  ASSERT_TRUE(ReadSourceFile(jsonl, collect).ok());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][1].kind, RawValue::Kind::kNumber);
  EXPECT_EQ(rows[1][0].kind, RawValue::Kind::kString);
  EXPECT_EQ(rows[1][1].kind, RawValue::Kind::kNull);
  EXPECT_FALSE(ReadSourceFile("/nonexistent.csv", collect).ok());
  std::filesystem::remove(csv);
  std::filesystem::remove(jsonl);
}

}  // namespace
}  // namespace rtml::features
