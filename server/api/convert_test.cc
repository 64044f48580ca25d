#include "server/api/convert.h"

#include <gtest/gtest.h>

namespace dtm {
namespace {

TEST(ConvertTest, OptionsKeepEveryFieldIncludingDelay) {
  TransOptions o;
  o.wait_result = true;
  o.timeout_to_fail = absl::Seconds(7);
  o.retry_interval = absl::Milliseconds(1500);
  o.max_retry_interval = absl::Minutes(2);
  o.request_timeout = absl::Seconds(4);
  o.retry_limit = 3;
  o.branch_headers = {{"authorization", "Bearer x"}};
  o.concurrent = true;
  o.delay = absl::Seconds(30);
  v1::TransOptions p;
  ToProto(o, &p);
  EXPECT_TRUE(p.wait_result());
  EXPECT_EQ(FromProto(p.timeout_to_fail()), absl::Seconds(7));
  EXPECT_EQ(FromProto(p.retry_interval()), absl::Milliseconds(1500));
  EXPECT_EQ(FromProto(p.max_retry_interval()), absl::Minutes(2));
  EXPECT_EQ(FromProto(p.request_timeout()), absl::Seconds(4));
  EXPECT_EQ(p.retry_limit(), 3);
  EXPECT_EQ(p.branch_headers().at("authorization"), "Bearer x");
  EXPECT_TRUE(p.concurrent());
  EXPECT_EQ(FromProto(p.delay()), absl::Seconds(30));
}

TEST(ConvertTest, NoDelayLeavesTheFieldUnset) {
  v1::TransOptions p;
  ToProto(TransOptions{}, &p);
  EXPECT_FALSE(p.has_delay());
}

}  // namespace
}  // namespace dtm
