// Tests of the PREPARED half of the engine that need no engine: the bounded memory of failed
// back-checks.
#include "server/engine/prepared.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace dtm {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

TEST(BackCheckErrorsTest, CountsFailuresInARowUntilForgotten) {
  BackCheckErrors errors;
  EXPECT_EQ(errors.Failed("m1", kStart, absl::Minutes(1)), 1);
  EXPECT_EQ(errors.Failed("m1", kStart, absl::Minutes(1)), 2);
  EXPECT_EQ(errors.Failed("m2", kStart, absl::Minutes(1)), 1);
  EXPECT_EQ(errors.size(), 2u);
  errors.Forget("m1");
  EXPECT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.Failed("m1", kStart, absl::Minutes(1)), 1);  // starts over
}

TEST(BackCheckErrorsTest, ForgetsGidsNotHeardOfAgainBeforeTheirTime) {
  BackCheckErrors errors;
  // 100 messages fail once, then are resolved elsewhere and never back-checked here again.
  for (int i = 0; i < 100; ++i) errors.Failed(absl::StrCat("gone", i), kStart, absl::Minutes(1));
  // Later, other messages keep failing: the stale entries are dropped as the map grows.
  absl::Time later = kStart + absl::Minutes(2);
  for (int i = 0; i < 200; ++i) errors.Failed(absl::StrCat("live", i), later, absl::Minutes(1));
  EXPECT_LE(errors.size(), 200u);
  EXPECT_EQ(errors.Failed("gone7", later, absl::Minutes(1)), 1);  // it was forgotten
  // A live one keeps its count.
  EXPECT_EQ(errors.Failed("live3", later, absl::Minutes(1)), 2);
}

}  // namespace
}  // namespace dtm
