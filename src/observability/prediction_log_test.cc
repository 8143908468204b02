#include "observability/prediction_log.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace rtml::observability {
namespace {

TEST(SampleThresholdTest, CoversTheWholeRangeAtRateOneAndNoneAtZero) {
  // Volatile: the conversion must be right at run time, not only when folded.
  volatile double one = 1.0, zero = 0.0, half = 0.5, over = 1.5, under = -0.1;
  EXPECT_EQ(SampleThreshold(one), UINT64_MAX);
  EXPECT_EQ(SampleThreshold(over), UINT64_MAX);
  EXPECT_EQ(SampleThreshold(zero), 0u);
  EXPECT_EQ(SampleThreshold(under), 0u);
  EXPECT_EQ(SampleThreshold(half), uint64_t{1} << 63);
}

}  // namespace
}  // namespace rtml::observability
