#include "kafka/offset_tracker.h"

#include <gtest/gtest.h>

namespace rtml::kafka {
namespace {

TEST(OffsetTrackerTest, CommitsOnlyTheDonePrefix) {
  OffsetTracker t;
  for (int64_t o = 10; o < 15; ++o) t.Track(0, o);
  EXPECT_EQ(t.in_flight(), 5u);
  t.Done(0, 11);
  t.Done(0, 12);
  EXPECT_FALSE(t.Committable(0).has_value());  // 10 still in flight holds them back
  EXPECT_TRUE(t.TakeCommittable().empty());
  t.Done(0, 10);
  EXPECT_EQ(t.Committable(0), 13);
  auto c = t.TakeCommittable();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], (std::pair<int32_t, int64_t>{0, 13}));
  EXPECT_TRUE(t.TakeCommittable().empty());  // reported once
  t.Done(0, 14);
  EXPECT_EQ(t.Committable(0), 13);  // 13 still pending
  t.Done(0, 13);
  EXPECT_EQ(t.Committable(0), 15);
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(OffsetTrackerTest, PartitionsAreIndependentAndGapsAreFine) {
  OffsetTracker t;
  t.Track(1, 100);
  t.Track(1, 105);  // offsets need not be contiguous (compaction, control records)
  t.Track(2, 7);
  t.Done(2, 7);
  t.Done(1, 105);
  EXPECT_EQ(t.Committable(2), 8);
  EXPECT_FALSE(t.Committable(1).has_value());
  t.Done(1, 100);
  EXPECT_EQ(t.Committable(1), 106);
}

TEST(OffsetTrackerTest, RevokedPartitionsIgnoreLateAcknowledgements) {
  OffsetTracker t;
  t.Track(3, 1);
  t.Track(3, 2);
  t.Drop(3);
  EXPECT_EQ(t.in_flight(), 0u);
  t.Done(3, 1);
  EXPECT_FALSE(t.Committable(3).has_value());
  t.Done(3, 1);  // twice is harmless
  EXPECT_EQ(t.in_flight(), 0u);
}

}  // namespace
}  // namespace rtml::kafka
