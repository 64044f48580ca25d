#include "server/model/trace_context.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dtm {
namespace {

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ValidatesTraceParent) {
  EXPECT_TRUE(ValidTraceParent(kParent));
  EXPECT_FALSE(ValidTraceParent(""));
  EXPECT_FALSE(ValidTraceParent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(ValidTraceParent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(ValidTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(ValidTraceParent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(ValidTraceParent(std::string(kParent) + "-extra"));  // version 00 has 4 fields
  EXPECT_TRUE(ValidTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
  EXPECT_FALSE(ValidTraceParent("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(TraceContextTest, ChildKeepsTraceIdAndFlagsWithNewSpans) {
  std::set<std::string> spans;
  for (int i = 0; i < 50; ++i) {
    std::string child = ChildTraceParent(kParent);
    ASSERT_TRUE(ValidTraceParent(child)) << child;
    EXPECT_EQ(TraceIdOf(child), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(child.substr(53), "01");
    EXPECT_NE(child.substr(36, 16), "00f067aa0ba902b7");
    spans.insert(child.substr(36, 16));
  }
  EXPECT_EQ(spans.size(), 50u);
}

TEST(TraceContextTest, AnInvalidParentStartsANewTrace) {
  std::string a = ChildTraceParent("garbage");
  std::string b = ChildTraceParent("");
  EXPECT_TRUE(ValidTraceParent(a));
  EXPECT_TRUE(ValidTraceParent(b));
  EXPECT_NE(TraceIdOf(a), TraceIdOf(b));
}

TEST(TraceContextTest, AdoptPrefersTheRequestsContextAndCleansBranchHeaders) {
  std::map<std::string, std::string> h = {
      {"traceparent", "junk"}, {"tracestate", "a=1"}, {"x-tenant", "t1"}};
  TraceContext c = AdoptTraceContext(kParent, "vendor=x", h);
  EXPECT_EQ(c.traceparent, kParent);
  EXPECT_EQ(c.tracestate, "vendor=x");
  EXPECT_THAT(h, ::testing::ElementsAre(::testing::Pair("x-tenant", "t1")));
}

TEST(TraceContextTest, AdoptTakesBranchHeadersAsDtmClientsSendThem) {
  std::map<std::string, std::string> h = {{"traceparent", kParent}, {"tracestate", "a=1"}};
  TraceContext c = AdoptTraceContext("", "", h);
  EXPECT_EQ(c.traceparent, kParent);
  EXPECT_EQ(c.tracestate, "a=1");
  EXPECT_TRUE(h.empty());
}

TEST(TraceContextTest, AdoptStartsATraceWithoutAValidOne) {
  std::map<std::string, std::string> h;
  TraceContext c = AdoptTraceContext("00-bad", std::string(600, 'x'), h);
  EXPECT_TRUE(ValidTraceParent(c.traceparent));
  EXPECT_EQ(c.tracestate, "");
  EXPECT_FALSE(ValidTraceState(std::string(600, 'x')));
  EXPECT_FALSE(ValidTraceState("a=\n"));
}

}  // namespace
}  // namespace dtm
