#include "schema/schema.h"

#include <gtest/gtest.h>

#include <cmath>

namespace rtml::schema {
namespace {
namespace od = simdjson::ondemand;

InputSchema TestSchema() {
  std::vector<FeatureSpec> f(4);
  f[0] = {.name = "amount", .dtype = DType::kFloat, .min = 0.0, .max = 1000.0, .required = true};
  f[1] = {.name = "count", .dtype = DType::kInt, .default_value = 1.0};
  f[2] = {.name = "online", .dtype = DType::kBool, .default_value = 0.0};
  f[3] = {.name = "score", .dtype = DType::kFloat};
  return InputSchema::Create(std::move(f)).value();
}

struct Decoded {
  Status status;
  std::vector<float> row = std::vector<float>(4, -7.0f);
  std::vector<Cell> cells = std::vector<Cell>(4);
};

Decoded Decode(std::string_view json, UnknownFeatures unknown = UnknownFeatures::kReject) {
  static InputSchema schema = TestSchema();
  RowDecoder decoder(schema, unknown);
  Decoded d;
  simdjson::padded_string padded(json);
  od::parser parser;
  od::document doc = parser.iterate(padded);
  od::value v = doc.get_value();
  const int instance = json.front() == '{' ? -1 : 2;
  if (json.front() == '{') {
    d.status = decoder.DecodeObject(v.get_object(), instance, d.row, d.cells);
  } else {
    d.status = decoder.DecodeArray(v.get_array(), instance, d.row, d.cells);
  }
  if (d.status.ok()) d.status = decoder.Finish(instance, d.row, d.cells);
  return d;
}

TEST(RowDecoderTest, DecodesObjectAndFillsDefaultsAndMissing) {
  Decoded d = Decode(R"({"amount": 12.5, "online": true})");
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_FLOAT_EQ(d.row[0], 12.5f);
  EXPECT_FLOAT_EQ(d.row[1], 1.0f);
  EXPECT_FLOAT_EQ(d.row[2], 1.0f);
  EXPECT_TRUE(std::isnan(d.row[3]));
  EXPECT_EQ(d.cells, (std::vector<Cell>{Cell::kGiven, Cell::kDefaulted, Cell::kGiven,
                                        Cell::kMissing}));
}

TEST(RowDecoderTest, NullMeansAbsent) {
  Decoded d = Decode(R"({"amount": 1, "count": null, "score": null})");
  ASSERT_TRUE(d.status.ok());
  EXPECT_EQ(d.cells[1], Cell::kDefaulted);
  EXPECT_EQ(d.cells[3], Cell::kMissing);
}

TEST(RowDecoderTest, DecodesOrderedArray) {
  Decoded d = Decode(R"([3, 2, false, null])");
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_EQ(d.row[0], 3.0f);
  EXPECT_EQ(d.row[1], 2.0f);
  EXPECT_EQ(d.row[2], 0.0f);
  EXPECT_TRUE(std::isnan(d.row[3]));
}

void ExpectError(std::string_view json, std::string_view reason, std::string_view field,
                 UnknownFeatures unknown = UnknownFeatures::kReject) {
  Decoded d = Decode(json, unknown);
  ASSERT_FALSE(d.status.ok()) << json;
  EXPECT_EQ(d.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status.reason(), reason) << json << ": " << d.status.message();
  EXPECT_EQ(d.status.field(), field) << json;
}

TEST(RowDecoderTest, RejectsBadValuesNamingTheField) {
  ExpectError(R"({"amount": "12"})", "wrong_type", "features.amount");
  ExpectError(R"({"amount": 1, "count": 1.5})", "wrong_type", "features.count");
  ExpectError(R"({"amount": 1, "online": 2})", "wrong_type", "features.online");
  ExpectError(R"({"amount": 1, "online": "true"})", "wrong_type", "features.online");
  ExpectError(R"({"amount": 1, "score": [1]})", "wrong_type", "features.score");
  ExpectError(R"({"amount": -0.5})", "out_of_range", "features.amount");
  ExpectError(R"({"amount": 1e9})", "out_of_range", "features.amount");
  ExpectError(R"({"count": 2})", "missing_feature", "features.amount");
  ExpectError(R"({"amount": 1, "colour": 2})", "unknown_feature", "features.colour");
  ExpectError(R"({"amount": 1, "amount": 2})", "duplicate_feature", "features.amount");
  ExpectError(R"([1, 2, true])", "wrong_length", "instances[2]");
  ExpectError(R"([1, 2, true, 4, 5])", "wrong_length", "instances[2]");
  ExpectError(R"(["x", 2, true, 4])", "wrong_type", "instances[2].amount");
}

TEST(RowDecoderTest, BoolsAcceptZeroAndOne) {
  Decoded d = Decode(R"({"amount": 1, "online": 1})");
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_EQ(d.row[2], 1.0f);
}

TEST(RowDecoderTest, IgnoresUnknownFeaturesWhenConfigured) {
  Decoded d = Decode(R"({"amount": 1, "colour": "red"})", UnknownFeatures::kIgnore);
  EXPECT_TRUE(d.status.ok()) << d.status.ToString();
}

TEST(RowDecoderTest, CapturesEntityKeysAndChecksTheirType) {
  InputSchema schema = TestSchema();
  const std::vector<KeySpec> specs{{"user_id", true}, {"shop", false}};
  RowDecoder decoder(schema, UnknownFeatures::kReject, specs);
  std::vector<float> row(4);
  std::vector<Cell> cells(4);
  std::vector<std::string> keys(2);
  auto decode = [&](std::string_view json) {
    simdjson::padded_string padded(json);
    od::parser parser;
    od::document doc = parser.iterate(padded);
    return decoder.DecodeObject(doc.get_object(), -1, row, cells, keys);
  };
  ASSERT_TRUE(decode(R"({"amount": 1, "user_id": 123, "shop": "s-9"})").ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"123", "s-9"}));
  EXPECT_EQ(cells[1], Cell::kUnset);  // Finish not called yet: left for the store
  EXPECT_EQ(decode(R"({"user_id": "123"})").reason(), "bad_entity_key");
  EXPECT_EQ(decode(R"({"user_id": 1.5})").field(), "features.user_id");
  EXPECT_EQ(decode(R"({"shop": 4})").reason(), "bad_entity_key");
  ASSERT_TRUE(decode(R"({"amount": 1})").ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"", ""}));
}

TEST(RowDecoderTest, NumbersAndKeysFromTensorsGetTheSameChecks) {
  InputSchema schema = TestSchema();
  const std::vector<KeySpec> specs{{"user_id", true}, {"shop", false}};
  RowDecoder decoder(schema, UnknownFeatures::kReject, specs);
  std::vector<float> row(4);
  std::vector<Cell> cells(4);
  std::vector<std::string> keys(2);
  decoder.Begin(cells, keys);
  ASSERT_TRUE(decoder.SetNumber(0, 12.5, 3, row, cells).ok());
  EXPECT_EQ(row[0], 12.5f);
  EXPECT_EQ(cells[0], Cell::kGiven);
  EXPECT_EQ(decoder.SetNumber(0, 1, 3, row, cells).reason(), "duplicate_feature");
  EXPECT_EQ(decoder.SetNumber(1, 2.5, 3, row, cells).reason(), "wrong_type");
  EXPECT_EQ(decoder.SetNumber(2, 2, 3, row, cells).reason(), "wrong_type");  // a bool
  EXPECT_EQ(decoder.SetNumber(3, NAN, 3, row, cells).ok(), true);           // NaN: absent
  EXPECT_EQ(cells[3], Cell::kUnset);
  decoder.Begin(cells, keys);
  const Status far = decoder.SetNumber(0, 5000, 3, row, cells);
  EXPECT_EQ(far.reason(), "out_of_range");
  EXPECT_EQ(far.field(), "instances[3].amount");
  EXPECT_EQ(decoder.KeyIndex("shop"), 1);
  EXPECT_EQ(decoder.KeyIndex("amount"), -1);
  ASSERT_TRUE(decoder.SetIntegerKey(0, -42, 0, keys).ok());
  EXPECT_EQ(keys[0], "-42");
  ASSERT_TRUE(decoder.SetTextKey(0, "1001", 0, keys).ok());
  EXPECT_EQ(keys[0], "1001");
  EXPECT_EQ(decoder.SetTextKey(0, "10x", 0, keys).reason(), "bad_entity_key");
  EXPECT_EQ(decoder.SetIntegerKey(1, 7, 0, keys).reason(), "bad_entity_key");  // a string key
  ASSERT_TRUE(decoder.SetTextKey(1, "s-9", 0, keys).ok());
  EXPECT_EQ(keys[1], "s-9");
  EXPECT_EQ(decoder.SetTextKey(1, "", 0, keys).reason(), "bad_entity_key");
}

TEST(InputSchemaTest, RejectsBadDefinitions) {
  EXPECT_FALSE(InputSchema::Create({}).ok());
  EXPECT_FALSE(InputSchema::Create({{.name = "a"}, {.name = "a"}}).ok());
  EXPECT_FALSE(InputSchema::Create({{.name = "a", .min = 2.0, .max = 1.0}}).ok());
  EXPECT_FALSE(InputSchema::Create({{.name = "a", .default_value = 5.0, .max = 1.0}}).ok());
  auto s = InputSchema::Create({{.name = "a"}, {.name = "b"}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->IndexOf("b"), 1);
  EXPECT_EQ(s->IndexOf("c"), -1);
}

}  // namespace
}  // namespace rtml::schema
