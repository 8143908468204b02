#include "model/serving_policy.h"

#include <gtest/gtest.h>

#include <map>

namespace rtml::model {
namespace {

ServingPolicy Parse(std::string_view yaml) {
  auto p = ParseServingPolicy(yaml, "serving.yaml");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : ServingPolicy{};
}

std::string ParseError(std::string_view yaml) {
  auto p = ParseServingPolicy(yaml, "serving.yaml");
  return p.ok() ? "" : p.status().message();
}

TEST(ServingPolicyTest, ParsesEveryKey) {
  const ServingPolicy p = Parse(
      "default: 2\nlabels: {stable: 2, canary: 3}\ntraffic: {2: 90, 3: 10}\n"
      "sticky_key: user_id\nshadow: [4]\n");
  EXPECT_EQ(p.default_version, 2);
  EXPECT_EQ(p.labels.at("canary"), 3);
  EXPECT_EQ(p.total_weight, 100u);
  EXPECT_EQ(p.sticky_key, "user_id");
  EXPECT_EQ(p.shadow, std::vector<int64_t>{4});
  EXPECT_EQ(p.NamedVersions(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_TRUE(Parse("").empty());
}

TEST(ServingPolicyTest, ErrorsNameTheKey) {
  EXPECT_NE(ParseError("defualt: 2\n").find("unknown key 'defualt'"), std::string::npos);
  EXPECT_NE(ParseError("default: two\n").find("not a version number"), std::string::npos);
  EXPECT_NE(ParseError("traffic: {2: -5}\n").find("whole numbers"), std::string::npos);
  EXPECT_NE(ParseError("traffic: {2: 0}\n").find("every weight is 0"), std::string::npos);
  // Found by model_yaml_fuzzer: converting these was undefined behaviour.
  EXPECT_NE(ParseError("traffic: {2: 8.1e115}\n").find("from 0 to 1000000, not 8.1e115"),
            std::string::npos);
  EXPECT_NE(ParseError("traffic: {2: .nan}\n").find("whole numbers"), std::string::npos);
  EXPECT_NE(ParseError("traffic: {2: 2.5}\n").find("whole numbers"), std::string::npos);
  EXPECT_NE(ParseError("default: 2\nshadow: [2]\n").find("never answers"), std::string::npos);
  EXPECT_NE(ParseError("shadow: 4\n").find("list of versions"), std::string::npos);
}

TEST(ServingPolicyTest, RoutesByVersionLabelTrafficThenDefault) {
  const ServingPolicy p = Parse("default: 2\nlabels: {canary: 3}\ntraffic: {2: 90, 3: 10}\n");
  auto by_version = Route(p, 9, {.version = 1});
  EXPECT_EQ((std::pair{by_version->version, by_version->route}),
            (std::pair{int64_t{1}, std::string_view("version")}));
  auto by_label = Route(p, 9, {.label = "canary"});
  EXPECT_EQ((std::pair{by_label->version, by_label->route}),
            (std::pair{int64_t{3}, std::string_view("canary")}));
  EXPECT_EQ(Route(p, 9, {.label = "nope"}).status().reason(), "unknown_label");
  EXPECT_EQ(Route(p, 9, {.draw = 95})->version, 3);
  EXPECT_EQ(Route(p, 9, {.draw = 5})->route, "traffic");
  const ServingPolicy none;
  auto d = Route(none, 7, {.draw = 5});
  EXPECT_EQ((std::pair{d->version, d->route}), (std::pair{int64_t{7}, std::string_view("default")}));
}

TEST(ServingPolicyTest, TrafficSharesFollowTheWeightsAndStickyKeysStick) {
  const ServingPolicy p = Parse("traffic: {1: 70, 2: 20, 3: 10}\n");
  std::map<int64_t, int> by_version;
  for (int user = 0; user < 10000; ++user) {
    const uint64_t h = StickyHash(std::to_string(user));
    const int64_t v = Route(p, 3, {.sticky_hash = h})->version;
    ++by_version[v];
    EXPECT_EQ(Route(p, 3, {.sticky_hash = h})->version, v);  // same key, same version
  }
  EXPECT_NEAR(by_version[1], 7000, 250);
  EXPECT_NEAR(by_version[2], 2000, 250);
  EXPECT_NEAR(by_version[3], 1000, 250);
  EXPECT_EQ(StickyHash("\"42\""), StickyHash("42"));
}

}  // namespace
}  // namespace rtml::model
