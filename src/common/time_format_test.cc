#include "common/time_format.h"

#include <gtest/gtest.h>

namespace rtml {
namespace {

TEST(TimeFormatTest, ParsesIsoAndEpochForms) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00Z").value(), 0);
  EXPECT_EQ(ParseTimestamp("2026-11-26T06:00:00Z").value(), 1795672800LL * 1000000);
  EXPECT_EQ(ParseTimestamp("2026-11-26 06:00:00").value(), 1795672800LL * 1000000);
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:00:00+01:00").value(), 1795672800LL * 1000000);
  EXPECT_EQ(ParseTimestamp("2026-11-26T06:00:00.25Z").value(), 1795672800250000LL);
  EXPECT_EQ(ParseTimestamp("2026-11-26").value(), 1795651200LL * 1000000);
  EXPECT_EQ(ParseTimestamp("1795672800").value(), 1795672800LL * 1000000);
  EXPECT_EQ(ParseTimestamp("1795672800.5").value(), 1795672800500000LL);
  EXPECT_EQ(ParseTimestamp("1960-01-01T00:00:00Z").value(), -315619200LL * 1000000);
}

TEST(TimeFormatTest, RejectsNonTimestamps) {
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-26T25:00:00Z", "2026-11-26T",
                          "2026/11/26", "2026-11-26T06:00:00Q", "1e400"}) {
    auto r = ParseTimestamp(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_EQ(r.status().reason(), "bad_timestamp");
  }
}

TEST(TimeFormatTest, FormatsRoundTrip) {
  for (int64_t us : {int64_t{0}, int64_t{1795672800250000}, int64_t{-315619200000000},
                     int64_t{951782400000001}}) {
    EXPECT_EQ(ParseTimestamp(FormatTimestamp(us)).value(), us) << FormatTimestamp(us);
  }
  EXPECT_EQ(FormatTimestamp(1795672800LL * 1000000), "2026-11-26T06:00:00Z");
}

}  // namespace
}  // namespace rtml
