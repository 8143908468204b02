#include "features/redis_cluster.h"

#include <gtest/gtest.h>

namespace rtml::features::redis_cluster {
namespace {

TEST(RedisClusterTest, HashesAsTheSpecificationSays) {
  EXPECT_EQ(Crc16("123456789"), 0x31C3);  // the specification's test vector
  EXPECT_EQ(KeySlot("foo"), 12182);       // as CLUSTER KEYSLOT answers
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot(""), 0);
}

TEST(RedisClusterTest, HashTagsPickTheSlot) {
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("{user1000}.followers"), KeySlot("{user1000}.following"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), KeySlot("foo{}{bar}"));  // an empty tag: the whole key
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));  // the first '{' to the next '}'
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("no{close"), KeySlot(std::string_view("no{close")));
}

constexpr char kNodes[] =
    "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave "
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n"
    "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 "
    "connected 5461-10922\n"
    "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003,node-3.example master - 0 "
    "1426238318243 3 connected 10923-16383 [10924->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]\n"
    "6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 slave "
    "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected\n"
    "824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 master,fail - 1426238316232 "
    "0 6 disconnected\n"
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 "
    "connected 0-5460\n";

TEST(RedisClusterTest, MapsEverySlotToItsMaster) {
  auto map = SlotMap::FromClusterNodes(kNodes);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  ASSERT_EQ(map->nodes().size(), 3u);  // the failed master serves nothing; replicas are not masters
  EXPECT_EQ(map->unserved(), 0);
  EXPECT_EQ(map->nodes()[map->NodeFor(0)], (Node{"127.0.0.1", 30001}));
  EXPECT_EQ(map->nodes()[map->NodeFor(5460)].port, 30001);
  EXPECT_EQ(map->nodes()[map->NodeFor(5461)].port, 30002);
  EXPECT_EQ(map->nodes()[map->NodeFor(10924)].port, 30003);  // still the source while migrating
  EXPECT_EQ(map->nodes()[map->NodeFor(16383)].port, 30003);
}

TEST(RedisClusterTest, UnservedSlotsAreCountedAndBadTextIsNamed) {
  auto partial = SlotMap::FromClusterNodes(
      "e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-99 200\n");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->unserved(), kSlots - 101);
  EXPECT_EQ(partial->NodeFor(150), -1);
  EXPECT_EQ(partial->NodeFor(200), 0);
  EXPECT_FALSE(SlotMap::FromClusterNodes("").ok());
  auto garbled = SlotMap::FromClusterNodes("e7d1 127.0.0.1:30001 master - 0 0 1 connected 9-x\n");
  ASSERT_FALSE(garbled.ok());
  EXPECT_NE(garbled.status().message().find("9-x"), std::string::npos);
  auto short_line = SlotMap::FromClusterNodes("e7d1 127.0.0.1:30001 master\n");
  ASSERT_FALSE(short_line.ok());
  EXPECT_NE(short_line.status().message().find("unreadable line"), std::string::npos);
  EXPECT_FALSE(SlotMap::FromClusterNodes("e7d1 nowhere master - 0 0 1 connected 0-1\n").ok());
  EXPECT_FALSE(SlotMap::FromClusterNodes("e7d1 h:1 master - 0 0 1 connected 0-16384\n").ok());
}

TEST(RedisClusterTest, ReadsRedirections) {
  auto moved = ParseRedirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->kind, Redirect::Kind::kMoved);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->node, (Node{"127.0.0.1", 6381}));
  auto ask = ParseRedirect("ASK 12 [::1]:7000");
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->kind, Redirect::Kind::kAsk);
  EXPECT_EQ(ask->node, (Node{"::1", 7000}));
  auto same_host = ParseRedirect("MOVED 7 :6380");
  ASSERT_TRUE(same_host);
  EXPECT_EQ(same_host->node, (Node{"", 6380}));
  EXPECT_FALSE(ParseRedirect("ERR unknown command"));
  EXPECT_FALSE(ParseRedirect("MOVED 99999 127.0.0.1:1"));
  EXPECT_FALSE(ParseRedirect("MOVED 1 127.0.0.1"));
  EXPECT_FALSE(ParseRedirect("CLUSTERDOWN The cluster is down"));
}

}  // namespace
}  // namespace rtml::features::redis_cluster
