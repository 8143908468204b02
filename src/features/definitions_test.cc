#include "features/definitions.h"

#include <gtest/gtest.h>

namespace rtml::features {
namespace {

constexpr char kGood[] = R"(
project: fraud
entities:
  - {name: user, join_key: user_id, dtype: int64}
feature_views:
  - name: user_stats
    entities: [user]
    ttl_seconds: 86400
    push_source: user_stats_push
    source: {path: data/users.csv, timestamp_field: ts}
    features:
      - {name: avg_amount_30d, dtype: float}
      - {name: country, dtype: string}
feature_services:
  - {name: all_user, features: [user_stats]}
  - {name: one, features: ["user_stats:country"]}
)";

TEST(DefinitionsTest, ParsesResolvesAndHashes) {
  auto d = Definitions::Parse(kGood, "/repo", "features.yaml");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->project(), "fraud");
  const FeatureView* v = d->FindView("user_stats");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->source.path, "/repo/data/users.csv");
  EXPECT_EQ(v->source.timestamp_field, "ts");
  EXPECT_EQ(d->FindPushTarget("user_stats_push"), v);
  EXPECT_EQ(d->FindService("all_user")->features.size(), 2u);
  EXPECT_EQ(d->RefName(d->FindService("one")->features[0]), "user_stats:country");
  EXPECT_EQ(d->version_hash().size(), 16u);
  auto changed = Definitions::Parse(std::string(kGood) + "\n", "/repo", "f");
  EXPECT_EQ(changed->version_hash(), d->version_hash());  // formatting does not matter
  std::string other = kGood;
  other.replace(other.find("86400"), 5, "3600");
  EXPECT_NE(Definitions::Parse(other, "/repo", "f")->version_hash(), d->version_hash());
  EXPECT_NE(d->ToJson().find(R"("join_key":"user_id","dtype":"int64")"), std::string::npos);
}

void ExpectFails(std::string yaml, std::string_view mention) {
  auto d = Definitions::Parse(yaml, ".", "features.yaml");
  ASSERT_FALSE(d.ok()) << yaml;
  EXPECT_NE(d.status().message().find(mention), std::string::npos) << d.status().message();
}

TEST(DefinitionsTest, RejectsBadDefinitionsNamingThePlace) {
  ExpectFails("entities: [{name: u, dtype: float}]", "entity keys are int64 or string");
  ExpectFails("feature_views: [{name: v, entities: [nobody], features: [{name: a}]}]",
              "unknown entity 'nobody'");
  ExpectFails("entities: [{name: u}]\nfeature_views: [{name: v, entities: [u], features: []}]",
              "non-empty list");
  ExpectFails("entities: [{name: u}]\nfeature_views: [{name: v, entities: [u], "
              "features: [{name: a, dtype: complex}]}]",
              "unknown dtype 'complex'");
  ExpectFails("entities: [{name: u}]\nfeature_views: [{name: v, entities: [u], "
              "features: [{name: a}]}]\nfeature_services: [{name: s, features: [v:b]}]",
              "has no feature 'b'");
  ExpectFails("entities: [{name: u}]\nfeature_views: [{name: v, entities: [u], ttl_seconds: -1,"
              " features: [{name: a}]}]",
              "ttl_seconds");
  ExpectFails("entitys: []", "unknown key 'entitys'");
  ExpectFails("entities: [{name: 'a b'}]", "letters, digits");
}

}  // namespace
}  // namespace rtml::features
