#include "server/engine/backoff.h"

#include <gtest/gtest.h>

namespace dtm {
namespace {

TEST(BackoffPolicyTest, DoublesFromInitialUpToTheCap) {
  BackoffPolicy p{absl::Seconds(1), absl::Seconds(10)};
  EXPECT_EQ(p.Nominal(1), absl::Seconds(1));
  EXPECT_EQ(p.Nominal(2), absl::Seconds(2));
  EXPECT_EQ(p.Nominal(3), absl::Seconds(4));
  EXPECT_EQ(p.Nominal(4), absl::Seconds(8));
  EXPECT_EQ(p.Nominal(5), absl::Seconds(10));
  EXPECT_EQ(p.Nominal(1000), absl::Seconds(10));  // no overflow for huge counts
}

TEST(BackoffPolicyTest, JitterStaysBetweenHalfAndFullNominal) {
  BackoffPolicy p{absl::Milliseconds(100), absl::Minutes(5)};
  for (int failures = 1; failures < 30; ++failures) {
    absl::Duration nominal = p.Nominal(failures);
    EXPECT_EQ(p.Jittered(failures, 0.0), nominal / 2);
    EXPECT_EQ(p.Jittered(failures, 1.0), nominal);
    absl::Duration mid = p.Jittered(failures, 0.5);
    EXPECT_GT(mid, nominal / 2);
    EXPECT_LT(mid, nominal);
    EXPECT_LE(p.Jittered(failures, 1.0), absl::Minutes(5));
  }
  // Out-of-range draws are clamped, never below half.
  EXPECT_EQ(p.Jittered(1, -3.0), absl::Milliseconds(50));
  EXPECT_EQ(p.Jittered(1, 7.0), absl::Milliseconds(100));
}

}  // namespace
}  // namespace dtm
