#include "server/api/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "absl/strings/str_cat.h"

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
  r.set_status(v1::STATUS_UNSPECIFIED);
  r.mutable_created_before()->set_seconds(1);
  r.mutable_created_before()->set_nanos(-1);
  EXPECT_THAT(std::string(ListToQuery(r, ApiLimits()).status().message()),
              HasSubstr("created_before '1s -1ns' is not a valid Timestamp"));
  r.mutable_created_before()->set_nanos(0);
  r.mutable_created_after()->set_seconds(INT64_MIN);
  EXPECT_THAT(std::string(ListToQuery(r, ApiLimits()).status().message()),
              HasSubstr("created_after '-9223372036854775808s 0ns' is not a valid Timestamp"));
  r.mutable_created_after()->set_seconds(0);
  EXPECT_TRUE(ListToQuery(r, ApiLimits()).ok());
}

// Branch headers that would frame the request dtmd sends, name its host or steer its
// connection are refused: a client-chosen Content-Length beside dtmd's own body, or a
// Transfer-Encoding, is request smuggling for whatever proxy stands before the branch.
TEST(ValidationTest, BranchHeadersCannotFrameTheCall) {
  for (const char* key : {"content-length", "transfer-encoding", "host", "connection", "te",
                          "upgrade", "expect", "keep-alive", "content-type"}) {
    v1::SubmitRequest r = Valid();
    (*r.mutable_options()->mutable_branch_headers())[key] = "0";
    auto t = SubmitToTransaction(r, ApiLimits());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(t.status().message()),
                HasSubstr(absl::StrCat("options.branch_headers key '", key,
                                       "' is a header of the HTTP request itself")));
  }
  v1::SubmitRequest fine = Valid();
  (*fine.mutable_options()->mutable_branch_headers())["authorization"] = "Bearer t";
  (*fine.mutable_options()->mutable_branch_headers())["x-content-length"] = "0";
  EXPECT_TRUE(SubmitToTransaction(fine, ApiLimits()).ok());
}

// Durations are kept in microseconds: a finer one is rounded up, never down to 0.
TEST(ValidationTest, DurationsFinerThanAMicrosecondAreRoundedUp) {
  v1::SubmitRequest r = Valid();
  r.mutable_options()->mutable_timeout_to_fail()->set_nanos(1);
  r.mutable_options()->mutable_request_timeout()->set_nanos(999999999);
  auto t = SubmitToTransaction(r, ApiLimits());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->options.timeout_to_fail, absl::Microseconds(1));
  EXPECT_EQ(t->options.request_timeout, absl::Seconds(1));
}

// A bad gid is quoted escaped: its control characters reach no terminal or log as they are.
TEST(ValidationTest, ABadGidIsQuotedEscaped) {
  v1::SubmitRequest r = Valid();
  r.set_gid(std::string("a\nb\x1b[31m\0", 9));
  auto t = SubmitToTransaction(r, ApiLimits());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(t.status().message());
  EXPECT_THAT(message, HasSubstr("gid 'a\\nb\\x1b[31m\\x00' has a character outside"));
  EXPECT_EQ(message.find_first_of(std::string("\n\x1b\0", 3)), std::string::npos) << message;
}

TEST(ValidationTest, LimitsOnHeadersIntervalsAndSizeNameTheFlag) {
  ApiLimits limits;
  limits.max_headers = 2;
  limits.max_header_bytes = 10;
  limits.max_transaction_bytes = 100;
  struct Case {
    std::function<void(v1::SubmitRequest&)> change;
    absl::StatusCode code;
    const char* message;
  };
  const Case cases[] = {
      {[](auto& r) {
         auto& h = *r.mutable_options()->mutable_branch_headers();
         h["a"] = "1";
         h["b"] = "2";
         h["c"] = "3";
       },
       absl::StatusCode::kResourceExhausted,
       "options.branch_headers has 3 headers, more than "
       "the limit of 2 (--max_headers)"},
      {[](auto& r) { (*r.mutable_options()->mutable_branch_headers())["key"] = "12345678"; },
       absl::StatusCode::kResourceExhausted, "is 11 bytes, more than the limit of 10"},
      {[](auto& r) { r.mutable_options()->mutable_retry_interval()->set_nanos(1); },
       absl::StatusCode::kInvalidArgument,
       "options.retry_interval '1ns' is below the minimum of 100ms (--min_retry_interval)"},
      {[](auto& r) { r.mutable_options()->mutable_request_timeout()->set_nanos(50000000); },
       absl::StatusCode::kInvalidArgument, "options.request_timeout '50ms' is below"},
      {[](auto& r) { r.mutable_steps(0)->set_payload(std::string(40, 'x')); },
       absl::StatusCode::kResourceExhausted,
       "steps add up to 138 bytes of targets and payloads, more than the limit of 100 "
       "(--max_transaction_bytes)"},
      {[](auto& r) { r.mutable_steps(0)->set_action("unix:/run/secret.sock/a.B/C"); },
       absl::StatusCode::kInvalidArgument, "steps[0].action 'unix:/run/secret.sock/a.B/C'"},
  };
  for (const Case& c : cases) {
    v1::SubmitRequest r = Valid();
    c.change(r);
    auto t = SubmitToTransaction(r, limits);
    EXPECT_EQ(t.status().code(), c.code) << t.status();
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message));
  }
  v1::SubmitRequest fine = Valid();
  (*fine.mutable_options()->mutable_branch_headers())["k"] = "v";
  fine.mutable_options()->mutable_retry_interval()->set_nanos(100000000);
  EXPECT_TRUE(SubmitToTransaction(fine, limits).ok());
  limits.max_steps = 2;
  auto many = SubmitToTransaction(Valid(), limits);
  EXPECT_EQ(many.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(many.status().message()), HasSubstr("(--max_steps)"));
}

TEST(ValidationTest, RegistrationsCarryTheTransactionBounds) {
  ApiLimits limits;
  limits.max_steps = 7;
  limits.max_transaction_bytes = 99;
  v1::RegisterBranchRequest r;
  r.set_gid("g");
  r.set_trans_type(v1::TCC);
  r.set_branch_id("01");
  r.set_confirm("h:1/s.S/C");
  auto reg = ReadRegistration(r, limits);
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_EQ(reg->max_registrations, 7);
  EXPECT_EQ(reg->max_transaction_bytes, 99);
  v1::ListRequest list;
  EXPECT_EQ(ListToQuery(list, limits)->max_bytes, limits.max_list_bytes);
}

TEST(ValidationTest, AnXaBranchGivesOnePhase2TargetAndATccBranchConfirmAndCancel) {
  ApiLimits limits;
  v1::RegisterBranchRequest r;
  r.set_gid("g");
  r.set_trans_type(v1::XA);
  r.set_branch_id("01");
  auto missing = ReadRegistration(r, limits);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("phase2_target is empty"));
  r.set_phase2_target("h:1/bank.Bank/TransOutXa");
  auto xa = ReadRegistration(r, limits);
  ASSERT_TRUE(xa.ok()) << xa.status();
  EXPECT_EQ(xa->trans_type, TransType::kXa);
  EXPECT_EQ(xa->confirm, "h:1/bank.Bank/TransOutXa");
  EXPECT_EQ(xa->cancel, "h:1/bank.Bank/TransOutXa");
  r.set_cancel("h:1/s.S/Cancel");
  auto mixed = ReadRegistration(r, limits);
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(mixed.status().message()), HasSubstr("cancel 'h:1/s.S/Cancel'"));

  r.set_trans_type(v1::TCC);
  r.clear_cancel();
  auto tcc = ReadRegistration(r, limits);
  EXPECT_EQ(tcc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tcc.status().message()), HasSubstr("phase2_target"));
  r.set_trans_type(v1::MSG);
  EXPECT_EQ(ReadRegistration(r, limits).status().code(), absl::StatusCode::kFailedPrecondition);

  v1::SubmitRequest with_steps = Valid();
  with_steps.set_trans_type(v1::XA);
  auto refused = SubmitToTransaction(with_steps, limits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("XA Submit takes none"));
}

}  // namespace
}  // namespace dtm
