#include "server/api/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dtm {
namespace {

using ::testing::HasSubstr;

v1::SubmitRequest Valid() {
  v1::SubmitRequest r;
  r.set_gid("order-42");
  r.set_trans_type(v1::SAGA);
  for (int i = 0; i < 3; ++i) {
    v1::Step* s = r.add_steps();
    s->set_action("h:1/s.S/A");
    s->set_compensate("h:1/s.S/C");
    s->set_payload("p");
  }
  return r;
}

TEST(ValidationTest, BuildsSagaBranchesInPairs) {
  v1::SubmitRequest r = Valid();
  r.mutable_options()->mutable_retry_interval()->set_nanos(250000000);
  r.mutable_steps(2)->set_compensate("");
  auto t = SubmitToTransaction(r, ApiLimits());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status, GlobalStatus::kSubmitted);
  ASSERT_EQ(t->branches.size(), 6u);
  EXPECT_EQ(t->branches[4].branch_id, "03");
  EXPECT_EQ(t->branches[4].op, BranchOp::kAction);
  EXPECT_EQ(t->branches[5].op, BranchOp::kCompensate);
  EXPECT_EQ(t->branches[5].target, "");
  EXPECT_EQ(t->options.retry_interval, absl::Milliseconds(250));
  EXPECT_EQ(t->options.request_timeout, absl::Seconds(3));  // default
  EXPECT_EQ(t->options.max_retry_interval, absl::Minutes(5));
}

TEST(ValidationTest, GidRules) {
  EXPECT_TRUE(ValidateGid("A-z_0.9:x").ok());
  EXPECT_TRUE(ValidateGid(std::string(128, 'a')).ok());
  EXPECT_FALSE(ValidateGid(std::string(129, 'a')).ok());
  EXPECT_FALSE(ValidateGid("").ok());
  EXPECT_THAT(std::string(ValidateGid("a/b").message()), HasSubstr("'a/b'"));
  EXPECT_FALSE(ValidateGid("tab\tgid").ok());
}

TEST(ValidationTest, DetectsLongerCycles) {
  v1::SubmitRequest r = Valid();
  r.mutable_steps(0)->add_after(2);
  r.mutable_steps(1)->add_after(0);
  r.mutable_steps(2)->add_after(1);
  auto t = SubmitToTransaction(r, ApiLimits());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("cycle"));
  // A diamond is fine.
  v1::SubmitRequest ok = Valid();
  *ok.add_steps() = ok.steps(0);
  ok.mutable_steps(1)->add_after(0);
  ok.mutable_steps(2)->add_after(0);
  ok.mutable_steps(3)->add_after(1);
  ok.mutable_steps(3)->add_after(2);
  EXPECT_TRUE(SubmitToTransaction(ok, ApiLimits()).ok());
}

TEST(ValidationTest, PayloadLimitIsConfigurable) {
  ApiLimits limits;
  limits.max_payload_bytes = 4;
  v1::SubmitRequest r = Valid();
  r.mutable_steps(1)->set_payload("12345");
  auto t = SubmitToTransaction(r, limits);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("steps[1].payload is 5 bytes"));
}

TEST(ValidationTest, ListQueryChecksItsFields) {
  v1::ListRequest r;
  EXPECT_EQ(ListToQuery(r, ApiLimits())->page_size, 50);
  r.set_page_size(5000);
  EXPECT_THAT(std::string(ListToQuery(r, ApiLimits()).status().message()),
              HasSubstr("page_size '5000'"));
  r.set_page_size(10);
  r.set_status(static_cast<v1::Status>(77));
  EXPECT_THAT(std::string(ListToQuery(r, ApiLimits()).status().message()),
              HasSubstr("status '77'"));
}

}  // namespace
}  // namespace dtm
