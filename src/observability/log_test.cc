#include "observability/log.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <string>
#include <vector>

namespace rtml::observability {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("", sink));
  }
  std::vector<std::string> Lines() {
    std::vector<std::string> lines;
    std::string line;
    std::istringstream in(out_.str());
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  }
  std::ostringstream out_;
};

TEST_F(LogTest, JsonLinesCarryComponentContextAndAnEscapedMessage) {
  SetUpLogging({.level = "info", .json = true});
  spdlog::logger& drift = ComponentLogger("test_drift");
  {
    const LogScope scope({.model = "fraud", .version = 2, .request_id = "r-\"1\""});
    drift.warn("PSI \"high\"\n\tfor {}", "amount\x01");
  }
  drift.info("no context");
  drift.debug("below the level");
  spdlog::info("from the command line");

  const std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  ASSERT_EQ(parser.parse(lines[0]).get(e), simdjson::SUCCESS) << lines[0];
  EXPECT_EQ(std::string_view(e["level"]), "warning");
  EXPECT_EQ(std::string_view(e["component"]), "test_drift");
  EXPECT_EQ(std::string_view(e["model"]), "fraud");
  EXPECT_EQ(int64_t(e["version"]), 2);
  EXPECT_EQ(std::string_view(e["request_id"]), "r-\"1\"");
  EXPECT_EQ(std::string_view(e["msg"]), "PSI \"high\"\n\tfor amount\x01");
  EXPECT_TRUE(std::string_view(e["time"]).ends_with("Z"));

  ASSERT_EQ(parser.parse(lines[1]).get(e), simdjson::SUCCESS) << lines[1];
  EXPECT_EQ(std::string_view(e["msg"]), "no context");
  EXPECT_TRUE(e["model"].error()) << "the scope ended: " << lines[1];
  ASSERT_EQ(parser.parse(lines[2]).get(e), simdjson::SUCCESS) << lines[2];
  EXPECT_EQ(std::string_view(e["component"]), "rtml");
}

TEST_F(LogTest, TextLinesNameTheComponentAndAppendTheContext) {
  SetUpLogging({.level = "debug", .json = false});
  spdlog::logger& http = ComponentLogger("test_http");
  {
    const LogScope scope({.request_id = "abc"});
    http.debug("GET /x -> 404");
  }
  const std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_NE(lines[0].find("[test_http] GET /x -> 404  request_id=abc"), std::string::npos)
      << lines[0];
}

}  // namespace
}  // namespace rtml::observability
