#include "http/route_table.h"

#include <gtest/gtest.h>

namespace rtml::http {
namespace {

using Table = RouteTable<int>;

Table Example() {
  return Table({{"/predict", kPost, true, 1},
                {"/v1/models/{}/versions/{}/predict", kPost, true, 2},
                {"/v1/models", kGet, false, 3},
                {"/v1/models/{}", kGet, false, 4},
                {"/v2/models/{}/infer", kPost, true, 5},
                {"/v2/models/{}", kGet, false, 6},
                {"/", kGet, false, 7}});
}

Table::Match Find(const Table& t, std::string_view target, uint8_t method) {
  std::vector<std::string_view> segments;
  PathSegments(target, &segments);
  return t.Find(segments, method);
}

TEST(PathSegmentsTest, SkipsEmptySegmentsAndTheQuery) {
  std::vector<std::string_view> s;
  PathSegments("//v1//models/fraud/?x=/y", &s);
  EXPECT_EQ(s, (std::vector<std::string_view>{"v1", "models", "fraud"}));
  PathSegments("/", &s);
  EXPECT_TRUE(s.empty());
}

TEST(RouteTableTest, MatchesLiteralsAndCapturesArguments) {
  const Table t = Example();
  Table::Match m = Find(t, "/v1/models/fraud/versions/2/predict", kPost);
  ASSERT_NE(m.route, nullptr);
  EXPECT_TRUE(m.method_ok);
  EXPECT_EQ(m.route->handle, 2);
  EXPECT_TRUE(m.route->queued);
  EXPECT_EQ(m.args[0], "fraud");
  EXPECT_EQ(m.args[1], "2");
  m = Find(t, "//predict?debug=1", kPost);
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->handle, 1);
  EXPECT_EQ(Find(t, "/", kGet).route->handle, 7);
  EXPECT_EQ(Find(t, "/v2/models/iris", kGet).route->handle, 6);
  EXPECT_EQ(Find(t, "/v2/models/iris/infer", kPost).args[0], "iris");
}

TEST(RouteTableTest, AKnownPathWithAnotherMethodSaysWhatItAllows) {
  const Table t = Example();
  Table::Match m = Find(t, "/predict", kGet);
  ASSERT_NE(m.route, nullptr);
  EXPECT_FALSE(m.method_ok);
  EXPECT_EQ(m.allowed, kPost);
  EXPECT_EQ(AllowHeader(m.allowed), "POST");
  m = Find(t, "/v1/models", 0);  // DELETE, say
  EXPECT_FALSE(m.method_ok);
  EXPECT_EQ(AllowHeader(m.allowed), "GET");
  EXPECT_EQ(AllowHeader(kGet | kPost), "GET, POST");
}

TEST(RouteTableTest, SamePathDifferentMethodsPicksByMethod) {
  const Table t({{"/x/{}", kGet, false, 1}, {"/x/{}", kPost, true, 2}});
  EXPECT_EQ(Find(t, "/x/a", kGet).route->handle, 1);
  const Table::Match m = Find(t, "/x/b", kPost);
  EXPECT_EQ(m.route->handle, 2);
  EXPECT_EQ(m.args[0], "b");
  EXPECT_EQ(m.allowed, kGet | kPost);
}

TEST(PathSegmentsTest, FixedArrayFormSaysWhenThereAreTooMany) {
  std::array<std::string_view, 3> a;
  EXPECT_EQ(PathSegments("/a//b/c?q", a), 3u);
  EXPECT_EQ(a[2], "c");
  EXPECT_EQ(PathSegments("/a/b/c/d", a), 4u);
  EXPECT_EQ(MethodBit("HEAD"), kGet);
  EXPECT_EQ(MethodBit("DELETE"), 0);
}

TEST(RouteTableTest, UnknownPathsMatchNothing) {
  const Table t = Example();
  for (std::string_view path : {"/v1/models/a/b", "/predict/x", "/v1", "/v2/models/a/versions"}) {
    const Table::Match m = Find(t, path, kGet | kPost);
    EXPECT_EQ(m.route, nullptr) << path;
    EXPECT_FALSE(m.method_ok) << path;
    EXPECT_EQ(m.allowed, 0) << path;
  }
}

}  // namespace
}  // namespace rtml::http
