// DTM's gRPC requests as DTM's Go SDK builds them (client/dtmgrpc/dtmgimp GetDtmRequest:
// TransOptions always set, Steps the JSON of the steps, "null" without any, one BinPayload per
// step), and every refusal naming DTM's field.
#include "server/api/dtmgimp/dtmgimp_convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;

const ApiLimits kLimits;

// What the Go SDK sends for a saga of `steps` (action, compensate) pairs.
dtmgimp::DtmRequest GoSaga(const std::string& gid,
                           const std::vector<std::pair<std::string, std::string>>& steps) {
  dtmgimp::DtmRequest req;
  req.set_gid(gid);
  req.set_transtype("saga");
  req.mutable_transoptions();  // always present, all zero
  std::string json = "[";
  for (size_t i = 0; i < steps.size(); ++i) {
    absl::StrAppend(&json, i ? "," : "", R"({"action":")", steps[i].first, R"(","compensate":")",
                    steps[i].second, R"("})");
    req.add_binpayloads(absl::StrCat("payload ", i));
  }
  req.set_steps(json + "]");
  return req;
}

dtmgimp::DtmRequest GoTcc(const std::string& gid, const std::string& type = "tcc") {
  dtmgimp::DtmRequest req;
  req.set_gid(gid);
  req.set_transtype(type);
  req.mutable_transoptions();
  req.set_steps("null");
  return req;
}

TEST(DtmgimpConvertTest, ReadsTheGoSdksSaga) {
  dtmgimp::DtmRequest req = GoSaga(
      "g1", {{"localhost:58081/busi.Busi/TransOut", "localhost:58081/busi.Busi/TransOutRevert"},
             {"localhost:58081/busi.Busi/TransIn", "localhost:58081/busi.Busi/TransInRevert"}});
  auto* o = req.mutable_transoptions();
  o->set_waitresult(true);
  o->set_timeouttofail(1800);
  o->set_retryinterval(5);
  o->set_requesttimeout(8);
  o->set_retrylimit(3);
  (*o->mutable_branchheaders())["Test_Header"] = "x";
  auto t = DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->gid, "g1");
  EXPECT_EQ(t->trans_type, TransType::kSaga);
  EXPECT_EQ(t->status, GlobalStatus::kSubmitted);
  EXPECT_TRUE(t->options.wait_result);
  EXPECT_EQ(t->options.timeout_to_fail, absl::Seconds(1800));
  EXPECT_EQ(t->options.retry_interval, absl::Seconds(5));
  EXPECT_EQ(t->options.request_timeout, absl::Seconds(8));
  EXPECT_EQ(t->options.retry_limit, 3);
  EXPECT_EQ(t->options.branch_headers.at("test_header"), "x");  // metadata keys: lowercase
  ASSERT_EQ(t->branches.size(), 4u);
  EXPECT_EQ(t->branches[0].op, BranchOp::kAction);
  EXPECT_EQ(t->branches[0].target, "localhost:58081/busi.Busi/TransOut");
  EXPECT_EQ(t->branches[1].op, BranchOp::kCompensate);
  EXPECT_EQ(t->branches[1].target, "localhost:58081/busi.Busi/TransOutRevert");
  EXPECT_EQ(t->branches[2].branch_id, "02");
  EXPECT_EQ(t->branches[2].payload, "payload 1");
  EXPECT_EQ(t->branches[3].payload, "payload 1");
}

TEST(DtmgimpConvertTest, ZeroOrAbsentOptionsKeepTheDefaults) {
  dtmgimp::DtmRequest req = GoSaga("g1", {{"localhost:1/a.B/C", ""}});
  auto t = DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->options, DefaultOptions(TransType::kSaga, kLimits));
  req.clear_transoptions();  // other SDKs may leave it out
  t = DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->options, DefaultOptions(TransType::kSaga, kLimits));
  auto tcc = DtmRequestToTransaction(GoTcc("t1"), DtmRoute::kPrepare, kLimits);
  ASSERT_TRUE(tcc.ok()) << tcc.status();
  EXPECT_EQ(tcc->options.timeout_to_fail, kLimits.default_timeout_to_fail);
}

TEST(DtmgimpConvertTest, ReadsAConcurrentSagaFromCustomedData) {
  dtmgimp::DtmRequest req =
      GoSaga("c1", {{"h:1/a.B/A0", ""}, {"h:1/a.B/A1", ""}, {"h:1/a.B/A2", ""}});
  req.set_customeddata(R"({"orders":{"1":[0],"2":[0,1]},"concurrent":true})");
  auto t = DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->options.concurrent);
  EXPECT_TRUE(t->branches[0].after.empty());
  EXPECT_EQ(t->branches[2].after, std::vector<int32_t>({0}));
  EXPECT_EQ(t->branches[4].after, std::vector<int32_t>({0, 1}));
}

TEST(DtmgimpConvertTest, ReadsTheGoSdksMsgWithItsDelayInAnyCase) {
  dtmgimp::DtmRequest req;
  req.set_gid("m1");
  req.set_transtype("msg");
  req.mutable_transoptions();
  req.set_steps(R"([{"action":"localhost:58081/busi.Busi/TransIn"}])");
  req.add_binpayloads("in");
  req.set_queryprepared("localhost:58081/busi.Busi/QueryPrepared");
  req.set_customeddata(R"({"Delay":10})");  // Go's decoder matches keys in any case
  auto t = DtmRequestToTransaction(req, DtmRoute::kPrepare, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status, GlobalStatus::kPrepared);
  EXPECT_EQ(t->query_prepared, "localhost:58081/busi.Busi/QueryPrepared");
  EXPECT_EQ(t->options.delay, absl::Seconds(10));
  ASSERT_EQ(t->branches.size(), 1u);
  EXPECT_EQ(t->branches[0].payload, "in");
  // Submit sends the whole request again: the commit of the prepared message.
  t = DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status, GlobalStatus::kSubmitted);
}

TEST(DtmgimpConvertTest, ReadsTccAndXaWithNullSteps) {
  for (const char* type : {"tcc", "xa"}) {
    dtmgimp::DtmRequest req = GoTcc("t1", type);
    for (DtmRoute route : {DtmRoute::kPrepare, DtmRoute::kSubmit}) {
      auto t = DtmRequestToTransaction(req, route, kLimits);
      ASSERT_TRUE(t.ok()) << type << " " << t.status();
      EXPECT_EQ(t->trans_type, ParseDtmTransType(type));
      EXPECT_TRUE(t->branches.empty());
    }
    req.set_steps("");
    EXPECT_TRUE(DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits).ok()) << type;
    req.set_rollbackreason("insufficient funds");
    auto abort = DtmRequestToTransaction(req, DtmRoute::kAbort, kLimits);
    ASSERT_TRUE(abort.ok()) << abort.status();
    EXPECT_EQ(abort->rollback_reason, "insufficient funds");
  }
}

TEST(DtmgimpConvertTest, AbortReadsOnlyGidTypeAndReason) {
  // DTM's msg DoAndSubmit aborts with its whole request: steps and payloads are not read.
  dtmgimp::DtmRequest req;
  req.set_gid("m1");
  req.set_transtype("msg");
  req.set_steps(R"([{"action":"h:1/a.B/C"}])");
  auto t = DtmRequestToTransaction(req, DtmRoute::kAbort, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->trans_type, TransType::kMsg);
  EXPECT_TRUE(t->branches.empty());
}

TEST(DtmgimpConvertTest, RefusesBadInputNamingDtmsField) {
  struct Case {
    std::function<void(dtmgimp::DtmRequest&)> change;
    const char* why;
  };
  const Case cases[] = {
      {[](auto& r) { r.clear_gid(); }, "Gid is missing"},
      {[](auto& r) { r.set_gid("a/b"); }, "Gid 'a/b'"},
      {[](auto& r) { r.clear_transtype(); }, "TransType is missing"},
      {[](auto& r) { r.set_transtype("dance"); }, "TransType 'dance' is not saga, tcc, msg or xa"},
      {[](auto& r) { r.set_steps("[{"); }, "Steps is not valid JSON"},
      {[](auto& r) { r.set_steps("{}"); }, "Steps must be an array"},
      {[](auto& r) {
         r.set_steps("null");
         r.clear_binpayloads();
       },
       "Steps is empty: a saga needs at least one step"},
      {[](auto& r) { r.set_steps(R"([{"action":"h:1/a.B/C"},{"action":7}])"); },
       "Steps[1].action must be a string"},
      {[](auto& r) { r.set_steps(R"([{"action":"h:1/a.B/C"},{"action":"unix:/x"}])"); },
       "Steps[1].action"},
      {[](auto& r) { r.add_binpayloads("extra"); }, "BinPayloads has 3 entries for 2 steps"},
      {[](auto& r) { r.clear_binpayloads(); }, "BinPayloads has 0 entries for 2 steps"},
      {[](auto& r) { r.mutable_transoptions()->set_timeouttofail(-1); },
       "TransOptions.TimeoutToFail '-1' is negative"},
      {[](auto& r) { r.mutable_transoptions()->set_retryinterval(-5); },
       "TransOptions.RetryInterval '-5' is negative"},
      {[](auto& r) { r.mutable_transoptions()->set_requesttimeout(INT64_MAX); },
       "TransOptions.RequestTimeout"},
      {[](auto& r) { r.mutable_transoptions()->set_retrylimit(-1); },
       "TransOptions.RetryLimit '-1' is negative"},
      {[](auto& r) { (*r.mutable_transoptions()->mutable_branchheaders())["dtm-gid"] = "x"; },
       "TransOptions.BranchHeaders key 'dtm-gid' is reserved"},
      {[](auto& r) {
         (*r.mutable_transoptions()->mutable_branchheaders())["X-A"] = "1";
         (*r.mutable_transoptions()->mutable_branchheaders())["x-a"] = "2";
       },
       "' is given twice, in two cases"},
      {[](auto& r) { r.set_customeddata("{"); }, "CustomedData must be a JSON object"},
      {[](auto& r) { r.set_customeddata(R"({"concurrent":true,"orders":{"5":[0]}})"); },
       "CustomedData.orders['5'] is not a step index"},
      {[](auto& r) { r.set_queryprepared("h:1/a.B/Q"); }, "QueryPrepared 'h:1/a.B/Q' is only"},
      {[](auto& r) { r.set_rollbackreason(std::string(2000, 'x')); }, "RollbackReason is 2000"},
  };
  for (const Case& c : cases) {
    dtmgimp::DtmRequest req = GoSaga("g", {{"h:1/a.B/A", "h:1/a.B/B"}, {"h:1/a.B/C", ""}});
    c.change(req);
    auto t = DtmRequestToTransaction(req, DtmRoute::kSubmit, kLimits);
    ASSERT_FALSE(t.ok()) << c.why;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.why));
  }
  dtmgimp::DtmRequest tcc = GoTcc("t");
  tcc.set_steps(R"([{"action":"h:1/a.B/C"}])");
  tcc.add_binpayloads("");
  auto steps = DtmRequestToTransaction(tcc, DtmRoute::kPrepare, kLimits);
  EXPECT_EQ(steps.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(steps.status().message()), HasSubstr("Steps is set, but a tcc's"));
  dtmgimp::DtmRequest msg = GoTcc("m", "msg");
  msg.set_steps(R"([{"action":"h:1/a.B/C"}])");
  msg.add_binpayloads("");
  auto no_check = DtmRequestToTransaction(msg, DtmRoute::kPrepare, kLimits);
  EXPECT_THAT(std::string(no_check.status().message()), HasSubstr("QueryPrepared is empty"));

  ApiLimits small;
  small.max_payload_bytes = 3;
  dtmgimp::DtmRequest big = GoSaga("g", {{"h:1/a.B/A", ""}});
  big.set_binpayloads(0, "1234");
  auto too_big = DtmRequestToTransaction(big, DtmRoute::kSubmit, small);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(too_big.status().message()), HasSubstr("BinPayloads[0] is 4 bytes"));
}

TEST(DtmgimpConvertTest, WorkflowIsUnimplementedAndSagaPrepareOrAbortRefused) {
  dtmgimp::DtmRequest wf = GoTcc("w", "workflow");
  for (DtmRoute route : {DtmRoute::kPrepare, DtmRoute::kSubmit, DtmRoute::kAbort}) {
    auto t = DtmRequestToTransaction(wf, route, kLimits);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("workflow"));
  }
  dtmgimp::DtmRequest saga = GoSaga("g", {{"h:1/a.B/A", ""}});
  for (DtmRoute route : {DtmRoute::kPrepare, DtmRoute::kAbort}) {
    auto t = DtmRequestToTransaction(saga, route, kLimits);
    EXPECT_EQ(ToDtmgimpStatus(t.status()).code(), absl::StatusCode::kAborted) << t.status();
  }
}

TEST(DtmgimpConvertTest, ReadsTccAndXaRegistrations) {
  dtmgimp::DtmBranchRequest req;
  req.set_gid("t1");
  req.set_transtype("tcc");
  req.set_branchid("01");
  req.set_op("ignored");
  (*req.mutable_data())["confirm"] = "localhost:58081/busi.Busi/TransOutConfirm";
  (*req.mutable_data())["cancel"] = "localhost:58081/busi.Busi/TransOutRevert";
  req.set_busipayload("req");
  auto r = DtmBranchRequestToRegistration(req, kLimits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->gid, "t1");
  EXPECT_EQ(r->trans_type, TransType::kTcc);
  EXPECT_EQ(r->branch_id, "01");
  EXPECT_EQ(r->confirm, "localhost:58081/busi.Busi/TransOutConfirm");
  EXPECT_EQ(r->cancel, "localhost:58081/busi.Busi/TransOutRevert");
  EXPECT_EQ(r->payload, "req");
  EXPECT_EQ(r->max_registrations, kLimits.max_steps);

  dtmgimp::DtmBranchRequest xa;
  xa.set_gid("x1");
  xa.set_transtype("xa");
  xa.set_branchid("01");
  (*xa.mutable_data())["url"] = "localhost:58081/busi.Busi/XaTransOut";
  auto x = DtmBranchRequestToRegistration(xa, kLimits);
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(x->trans_type, TransType::kXa);
  EXPECT_EQ(x->confirm, "localhost:58081/busi.Busi/XaTransOut");
  EXPECT_EQ(x->cancel, x->confirm);
  EXPECT_TRUE(x->payload.empty());
}

TEST(DtmgimpConvertTest, RefusesBadRegistrationsNamingDtmsField) {
  struct Case {
    std::function<void(dtmgimp::DtmBranchRequest&)> change;
    absl::StatusCode code;
    const char* why;
  };
  const Case cases[] = {
      {[](auto& r) { r.clear_gid(); }, absl::StatusCode::kInvalidArgument, "Gid is missing"},
      {[](auto& r) { r.clear_branchid(); }, absl::StatusCode::kInvalidArgument,
       "BranchID is empty"},
      {[](auto& r) { r.set_branchid("0 1"); }, absl::StatusCode::kInvalidArgument,
       "BranchID '0 1'"},
      {[](auto& r) { r.set_transtype("saga"); }, absl::StatusCode::kInvalidArgument,
       "TransType 'saga' has no branches that register themselves"},
      {[](auto& r) { r.set_transtype("dance"); }, absl::StatusCode::kInvalidArgument,
       "TransType 'dance'"},
      {[](auto& r) { r.set_transtype("workflow"); }, absl::StatusCode::kUnimplemented, "workflow"},
      {[](auto& r) { (*r.mutable_data())["confirm"] = "ftp://x/y"; },
       absl::StatusCode::kInvalidArgument, "Data['confirm']"},
      {[](auto& r) {
         r.set_transtype("xa");
         r.mutable_data()->clear();
       },
       absl::StatusCode::kInvalidArgument, "Data['url'] is missing"},
      {[](auto& r) { r.set_busipayload(std::string(2 << 20, 'x')); },
       absl::StatusCode::kResourceExhausted, "BusiPayload is"},
  };
  for (const Case& c : cases) {
    dtmgimp::DtmBranchRequest req;
    req.set_gid("t1");
    req.set_transtype("tcc");
    req.set_branchid("01");
    (*req.mutable_data())["confirm"] = "h:1/a.B/Confirm";
    (*req.mutable_data())["cancel"] = "h:1/a.B/Cancel";
    c.change(req);
    auto r = DtmBranchRequestToRegistration(req, kLimits);
    ASSERT_FALSE(r.ok()) << c.why;
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.why));
  }
}

TEST(DtmgimpConvertTest, RefusedStateChangesAreAbortedAsDtmsSdksRead) {
  for (const absl::Status& s :
       {absl::FailedPreconditionError("no longer prepared"),
        absl::NotFoundError("no transaction 'g'"), absl::AlreadyExistsError("'g' is a saga")}) {
    absl::Status got = ToDtmgimpStatus(s);
    EXPECT_EQ(got.code(), absl::StatusCode::kAborted);
    EXPECT_EQ(got.message(), s.message());
  }
  for (const absl::Status& s : {absl::OkStatus(), absl::InvalidArgumentError("x"),
                                absl::ResourceExhaustedError("x"), absl::PermissionDeniedError("x"),
                                absl::UnauthenticatedError("x"), absl::UnavailableError("x")}) {
    EXPECT_EQ(ToDtmgimpStatus(s), s);
  }
}

TEST(DtmgimpConvertTest, SubmitOutcomeSaysFailureAndOngoingApart) {
  EXPECT_TRUE(DtmSubmitOutcome("g", GlobalStatus::kSubmitted, "", false).ok());
  EXPECT_TRUE(DtmSubmitOutcome("g", GlobalStatus::kSucceeded, "", true).ok());
  absl::Status failed = DtmSubmitOutcome("g", GlobalStatus::kFailed, "insufficient funds", true);
  EXPECT_EQ(failed.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(failed.message(), "insufficient funds");
  EXPECT_EQ(DtmSubmitOutcome("g", GlobalStatus::kSubmitted, "", true).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::Status again = DtmSubmitOutcome("g", GlobalStatus::kSucceeded, "", false);
  EXPECT_EQ(again.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(again.message()), HasSubstr("is already succeed"));
  // Rolling back (an xa's client lost the race with its timeout): a failure, waited for or not.
  for (bool wait : {false, true}) {
    absl::Status late = DtmSubmitOutcome("g", GlobalStatus::kAborting, "timeout_to_fail", wait);
    EXPECT_EQ(late.code(), absl::StatusCode::kAborted) << wait;
    EXPECT_EQ(late.message(), "transaction 'g' is aborting: timeout_to_fail") << wait;
  }
}

}  // namespace
}  // namespace dtm
