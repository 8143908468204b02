#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>

namespace rtml {
namespace {

TEST(JsonWriterTest, WritesNestedObjectsAndArraysWithCommas) {
  std::string s;
  JsonWriter w(&s);
  w.BeginObject().Key("a").Int(1).Key("b").BeginArray().Float(0.5f).Null().Bool(true)
      .EndArray().Key("c").BeginObject().EndObject().Key("d").BeginArray().EndArray()
      .EndObject();
  EXPECT_EQ(s, R"({"a":1,"b":[0.5,null,true],"c":{},"d":[]})");
}

TEST(JsonWriterTest, EscapesStrings) {
  std::string s;
  JsonWriter(&s).String("q\"b\\n\n\x01");
  EXPECT_EQ(s, R"("q\"b\\n\n\u0001")");
}

TEST(JsonWriterTest, FloatsRoundTripShortestAndNonFiniteIsNull) {
  std::string s;
  JsonWriter w(&s);
  w.BeginArray().Float(0.1f).Float(1e-7f).Float(NAN).Float(INFINITY).EndArray();
  EXPECT_EQ(s, "[0.1,1e-07,null,null]");
}

}  // namespace
}  // namespace rtml
