#include "common/json_scan.h"

#include <gtest/gtest.h>

namespace rtml {
namespace {

TEST(JsonScanTest, AcceptsValidJson) {
  for (const char* ok : {"{}", "[]", " {\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"]} ",
                         "0", "\"\xc3\xa9\""}) {
    EXPECT_FALSE(FindJsonSyntaxError(ok).has_value()) << ok;
  }
}

void ExpectAt(std::string_view text, size_t offset, std::string_view mention) {
  auto e = FindJsonSyntaxError(text);
  ASSERT_TRUE(e.has_value()) << text;
  EXPECT_EQ(e->offset, offset) << text << ": " << e->message;
  EXPECT_NE(e->message.find(mention), std::string::npos) << e->message;
}

TEST(JsonScanTest, ReportsTheOffsetOfTheFirstError) {
  ExpectAt(R"({"a" 1})", 5, "':'");
  ExpectAt(R"({"a": 1,})", 8, "string key");
  ExpectAt(R"([1, 2)", 5, "']'");
  ExpectAt(R"({"a": tru})", 6, "literal");
  ExpectAt(R"({"a": "x)", 8, "unterminated");
  ExpectAt(R"({"a": 01})", 7, "','");
  ExpectAt(R"({} x)", 3, "after the JSON value");
  ExpectAt("", 0, "end of input");
  ExpectAt("{\"a\": \"\xff\"}", 7, "UTF-8");
  ExpectAt(std::string(2000, '['), 1024, "too deep");
}

}  // namespace
}  // namespace rtml
