#include "client/common/target.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dtm {
namespace {

using ::testing::HasSubstr;

TEST(TargetTest, ParsesHostPortAndMethod) {
  auto t = ParseGrpcTarget("localhost:50051/bank.Bank/TransOut", "f");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->authority, "localhost:50051");
  EXPECT_EQ(t->method, "/bank.Bank/TransOut");
  auto g = ParseGrpcTarget("grpc://10.0.0.1:9/a.B/C", "f");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->authority, "10.0.0.1:9");
  auto v6 = ParseGrpcTarget("[::1]:8080/a.B/C", "f");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->authority, "[::1]:8080");
}

TEST(TargetTest, RejectsMalformedTargetsNamingTheField) {
  for (const char* bad : {"", "localhost:50051", "localhost/a.B/C", "host:0/a.B/C",
                          "host:99999/a.B/C", "host:x/a.B/C", "host:1/a.B", "host:1//C",
                          "host:1/a.B/", "host:1/a.B/C/D", "http://host:1/x", ":1/a.B/C"}) {
    auto t = ParseGrpcTarget(bad, "steps[3].action");
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("steps[3].action"));
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(std::string("'") + bad + "'"));
  }
}

}  // namespace
}  // namespace dtm
