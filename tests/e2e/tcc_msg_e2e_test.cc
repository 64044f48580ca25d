// End-to-end tests of TCC and two-phase messages: a real dtmd process, real gRPC branch
// services (and the client library's Tcc and Msg helpers), fault injection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/coordinator_client.h"
#include "client/msg.h"
#include "client/tcc.h"
#include "tests/support/branch_script.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/live_dtmd_test.h"

namespace dtm {
namespace {

using test::BranchCallRecord;
using test::BranchReply;
using test::DtmdProcess;
using test::Failure;
using test::Ok;
using test::Ongoing;
using test::TestBranchServer;
using test::Transient;
using test::WaitUntil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

google::protobuf::Duration Millis(int ms) {
  google::protobuf::Duration d;
  d.set_seconds(ms / 1000);
  d.set_nanos((ms % 1000) * 1000000);
  return d;
}

class TccMsgE2ETest : public test::LiveDtmdTest<TccMsgE2ETest> {
 public:
  static std::vector<std::string> DtmdArgs() {
    return {"--lease=1s", "--recovery_interval=100ms", "--timeout_to_fail=30s"};
  }
  static void SetUpTestSuite() {
    LiveDtmdTest::SetUpTestSuite();
    branches_->SetBehavior([](const BranchCallRecord& c) {
      if (c.name() == "TryNested") return NestedTry(c);
      return script_->Next(c);
    });
  }

  // A branch service whose Try opens a nested tcc: sub-branch "<its id>01" with TryN1,
  // ConfirmN1 and CancelN1, as a service written with the client library would.
  static BranchReply NestedTry(const BranchCallRecord& c) {
    absl::StatusOr<Tcc> sub = Tcc::FromBranch(client_, c.branch);
    if (!sub.ok()) return {grpc::Status(grpc::StatusCode::INTERNAL, sub.status().ToString())};
    absl::Status s = sub->CallBranch("nested", branches_->Target("TryN1"),
                                     branches_->Target("ConfirmN1"), branches_->Target("CancelN1"));
    if (!s.ok()) return {grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.ToString())};
    return Ok();
  }

 protected:
  static v1::TransOptions FastRetries() {
    v1::TransOptions o;
    *o.mutable_retry_interval() = Millis(50);
    *o.mutable_max_retry_interval() = Millis(200);
    return o;
  }
  // Calls branch `i` of a tcc: Try<i>, Confirm<i>, Cancel<i>.
  static absl::Status Branch(Tcc& tcc, int i) {
    return tcc.CallBranch(absl::StrCat("p", i), branches_->Target(absl::StrCat("Try", i)),
                          branches_->Target(absl::StrCat("Confirm", i)),
                          branches_->Target(absl::StrCat("Cancel", i)));
  }
  static absl::Status ThreeBranches(Tcc& tcc) {
    for (int i = 1; i <= 3; ++i) {
      absl::Status s = Branch(tcc, i);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  absl::Status PrepareTcc(const std::string& gid, v1::TransOptions options = FastRetries()) {
    v1::PrepareRequest req;
    req.set_gid(gid);
    req.set_trans_type(v1::TCC);
    *req.mutable_options() = std::move(options);
    return client_->Prepare(req);
  }
  absl::Status Register(const std::string& gid, const std::string& id, const std::string& confirm,
                        const std::string& cancel) {
    v1::RegisterBranchRequest req;
    req.set_gid(gid);
    req.set_trans_type(v1::TCC);
    req.set_branch_id(id);
    req.set_confirm(confirm);
    req.set_cancel(cancel);
    return client_->RegisterBranch(req);
  }
  static v1::Transaction QueryOk(const std::string& gid) {
    auto t = client_->Query(gid);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : v1::Transaction();
  }
};

// ---- TCC ----

TEST_F(TccMsgE2ETest, TccSuccessConfirmsInReverseRegistrationOrder) {
  std::string gid = Gid();
  v1::TransOptions o = FastRetries();
  o.set_wait_result(true);
  auto r = Tcc::Run(client_, gid, ThreeBranches, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  EXPECT_THAT(branches_->NamesFor(gid),
              ElementsAre("Try1", "Try2", "Try3", "Confirm3", "Confirm2", "Confirm1"));
  // The Try carried the dtm-* metadata; confirms carry their op and the branch's payload.
  std::vector<BranchCallRecord> calls = branches_->CallsFor(gid);
  EXPECT_EQ(calls[0].op(), "try");
  EXPECT_EQ(calls[0].branch_id(), "01");
  EXPECT_EQ(calls[0].Meta("dtm-trans_type"), "tcc");
  EXPECT_EQ(calls[0].payload, "p1");
  EXPECT_EQ(calls[3].op(), "confirm");
  EXPECT_EQ(calls[3].branch_id(), "03");
  EXPECT_EQ(calls[3].payload, "p3");
  v1::Transaction t = QueryOk(gid);
  EXPECT_EQ(t.trans_type(), v1::TCC);
  ASSERT_EQ(t.branches_size(), 6);
  EXPECT_EQ(t.branches(0).op(), v1::CONFIRM);
  EXPECT_EQ(t.branches(0).status(), v1::BRANCH_SUCCEEDED);
  EXPECT_EQ(t.branches(1).op(), v1::CANCEL);
  EXPECT_EQ(t.branches(1).status(), v1::BRANCH_PREPARED);  // never called
}

TEST_F(TccMsgE2ETest, TryFailureCancelsEveryRegisteredBranchInReverseAndNeverConfirms) {
  std::string gid = Gid();
  script_->Set(gid, "Try2", {Failure()});
  auto r = Tcc::Run(client_, gid, ThreeBranches, FastRetries());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  // Branch 2 was registered before its Try ran (and refused): it is cancelled too; branch 3
  // was never registered.
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Try1", "Try2", "Cancel2", "Cancel1"));
  EXPECT_THAT(QueryOk(gid).rollback_reason(), HasSubstr("refused by test"));
}

TEST_F(TccMsgE2ETest, AnExceptionInTheBodyAbortsAndIsRethrown) {
  std::string gid = Gid();
  // Run rethrows instead of returning a status: nothing to look at.
  EXPECT_THROW(static_cast<void>(Tcc::Run(client_, gid,
                                          [](Tcc& tcc) -> absl::Status {
                                            absl::Status s = Branch(tcc, 1);
                                            if (s.ok()) throw std::runtime_error("boom");
                                            return s;
                                          })),
               std::runtime_error);
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Try1", "Cancel1"));
  EXPECT_THAT(QueryOk(gid).rollback_reason(), HasSubstr("boom"));
}

TEST_F(TccMsgE2ETest, ConfirmAnsweringOngoingIsAskedAgainUntilOk) {
  std::string gid = Gid();
  script_->Set(gid, "Confirm1", {Ongoing(), Ongoing(), Ok()});
  v1::TransOptions o = FastRetries();
  auto r = Tcc::Run(
      client_, gid, [](Tcc& tcc) { return Branch(tcc, 1); }, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Try1", "Confirm1", "Confirm1", "Confirm1"));
  EXPECT_EQ(QueryOk(gid).branches(0).attempts(), 3);
}

TEST_F(TccMsgE2ETest, CancelFailingTransientlyIsRetriedAndVisibleThenSucceeds) {
  std::string gid = Gid();
  script_->Set(gid, "Try1", {Failure()});
  script_->Set(gid, "Cancel1", {Transient(), Failure(), Transient(), Ok()});
  auto r = Tcc::Run(
      client_, gid, [](Tcc& tcc) { return Branch(tcc, 1); }, FastRetries());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  v1::Transaction t = QueryOk(gid);
  EXPECT_EQ(t.branches(1).op(), v1::CANCEL);
  EXPECT_EQ(t.branches(1).attempts(), 4);
  EXPECT_EQ(t.branches(1).status(), v1::BRANCH_SUCCEEDED);
  EXPECT_THAT(t.branches(1).last_error(), HasSubstr("flaky"));
  EXPECT_TRUE(dtmd_->LogShows(absl::StrCat("cancel not done yet gid=", gid))) << dtmd_->Log();
  EXPECT_THAT(branches_->NamesFor(gid),
              ElementsAre("Try1", "Cancel1", "Cancel1", "Cancel1", "Cancel1"));
}

TEST_F(TccMsgE2ETest, ATccWhoseClientDiedIsAbortedWhenItsTimeoutPasses) {
  std::string gid = Gid();
  v1::TransOptions o = FastRetries();
  *o.mutable_timeout_to_fail() = Millis(300);
  absl::Time before_prepare = absl::Now();
  ASSERT_TRUE(PrepareTcc(gid, o).ok());
  // The client registers and tries one branch, then vanishes without Submit or Abort.
  ASSERT_TRUE(
      Register(gid, "01", branches_->Target("Confirm1"), branches_->Target("Cancel1")).ok());
  // Not aborted before its timeout: only checkable while the timeout cannot have passed yet
  // (a loaded machine or a sanitizer build may take longer than that to get here).
  v1::Status early = StatusOf(gid);
  if (absl::Now() - before_prepare < absl::Milliseconds(300)) {
    EXPECT_EQ(early, v1::PREPARED);
  }
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Cancel1"));
  EXPECT_THAT(QueryOk(gid).rollback_reason(), HasSubstr("timeout_to_fail of 300ms"));
  // Too late now: its client's Submit answers the outcome, and registering is refused.
  v1::SubmitRequest submit;
  submit.set_gid(gid);
  submit.set_trans_type(v1::TCC);
  auto late = client_->Submit(submit);
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->status(), v1::FAILED);
}

// ---- XA: the same protocol, each branch registered by its phase-2 target ----

TEST_F(TccMsgE2ETest, XaCommitsOrRollsBackEveryRegisteredBranchThroughItsPhase2Target) {
  auto prepare_xa = [&](const std::string& gid, v1::TransOptions o) {
    v1::PrepareRequest req;
    req.set_gid(gid);
    req.set_trans_type(v1::XA);
    *req.mutable_options() = std::move(o);
    return client_->Prepare(req);
  };
  auto register_xa = [&](const std::string& gid, const std::string& id) {
    v1::RegisterBranchRequest req;
    req.set_gid(gid);
    req.set_trans_type(v1::XA);
    req.set_branch_id(id);
    req.set_phase2_target(branches_->Target(absl::StrCat("Xa", id)));
    return client_->RegisterBranch(req);
  };
  const std::string committed = Gid();
  ASSERT_TRUE(prepare_xa(committed, FastRetries()).ok());
  ASSERT_TRUE(register_xa(committed, "01").ok());
  ASSERT_TRUE(register_xa(committed, "02").ok());
  // An xa's branch does not register into a tcc, nor a tcc's into an xa.
  absl::Status as_tcc = Register(committed, "03", branches_->Target("C"), branches_->Target("X"));
  EXPECT_EQ(as_tcc.code(), absl::StatusCode::kAlreadyExists) << as_tcc;
  v1::SubmitRequest submit;
  submit.set_gid(committed);
  submit.set_trans_type(v1::XA);
  submit.mutable_options()->set_wait_result(true);
  auto r = client_->Submit(submit);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  std::vector<BranchCallRecord> calls = branches_->CallsFor(committed);
  ASSERT_EQ(calls.size(), 2u);
  for (const BranchCallRecord& c : calls) {
    EXPECT_EQ(c.op(), "commit");
    EXPECT_EQ(c.Meta("dtm-trans_type"), "xa");
    EXPECT_EQ(c.name(), absl::StrCat("Xa", c.branch_id()));
  }
  v1::Transaction t = QueryOk(committed);
  EXPECT_EQ(t.trans_type(), v1::XA);
  ASSERT_EQ(t.branches_size(), 4);
  EXPECT_EQ(t.branches(0).op(), v1::COMMIT);
  EXPECT_EQ(t.branches(1).op(), v1::ROLLBACK);
  EXPECT_EQ(t.branches(1).status(), v1::BRANCH_PREPARED);  // never called

  // Aborted by its client: every registered branch is rolled back.
  const std::string aborted = Gid();
  ASSERT_TRUE(prepare_xa(aborted, FastRetries()).ok());
  ASSERT_TRUE(register_xa(aborted, "01").ok());
  v1::AbortRequest abort;
  abort.set_gid(aborted);
  abort.set_trans_type(v1::XA);
  ASSERT_TRUE(client_->Abort(abort).ok());
  ASSERT_TRUE(WaitStatus(aborted, v1::FAILED));
  ASSERT_EQ(branches_->CallsFor(aborted).size(), 1u);
  EXPECT_EQ(branches_->CallsFor(aborted)[0].op(), "rollback");
  EXPECT_EQ(register_xa(aborted, "02").code(), absl::StatusCode::kFailedPrecondition);

  // Its client died: timeout_to_fail rolls it back.
  const std::string abandoned = Gid();
  v1::TransOptions o = FastRetries();
  *o.mutable_timeout_to_fail() = Millis(300);
  ASSERT_TRUE(prepare_xa(abandoned, o).ok());
  ASSERT_TRUE(register_xa(abandoned, "01").ok());
  ASSERT_TRUE(WaitStatus(abandoned, v1::FAILED));
  ASSERT_EQ(branches_->CallsFor(abandoned).size(), 1u);
  EXPECT_EQ(branches_->CallsFor(abandoned)[0].op(), "rollback");
  EXPECT_THAT(QueryOk(abandoned).rollback_reason(), HasSubstr("timeout_to_fail of 300ms"));
}

TEST_F(TccMsgE2ETest, RegisterAfterAbortIsRefusedAndAbortIsIdempotent) {
  std::string gid = Gid();
  ASSERT_TRUE(PrepareTcc(gid).ok());
  ASSERT_TRUE(
      Register(gid, "01", branches_->Target("Confirm1"), branches_->Target("Cancel1")).ok());
  v1::AbortRequest abort;
  abort.set_gid(gid);
  abort.set_trans_type(v1::TCC);
  abort.set_reason("changed my mind");
  auto a = client_->Abort(abort);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->status() == v1::ABORTING || a->status() == v1::FAILED) << a->status();
  absl::Status late = Register(gid, "02", branches_->Target("Confirm2"), "");
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_THAT(std::string(late.message()), HasSubstr("PREPARED"));
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Cancel1"));
  EXPECT_EQ(QueryOk(gid).rollback_reason(), "changed my mind");
  auto again = client_->Abort(abort);  // a repeat after an unknown outcome
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->status(), v1::FAILED);
  // Submit after the abort answers the outcome; nothing is confirmed.
  v1::SubmitRequest submit;
  submit.set_gid(gid);
  submit.set_trans_type(v1::TCC);
  EXPECT_EQ(client_->Submit(submit)->status(), v1::FAILED);
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Cancel1"));
}

TEST_F(TccMsgE2ETest, RepeatsAfterUnknownOutcomesAreHarmlessAndConflictsAreNamed) {
  std::string gid = Gid();
  ASSERT_TRUE(PrepareTcc(gid).ok());
  ASSERT_TRUE(PrepareTcc(gid).ok());  // Prepare again: fine
  ASSERT_TRUE(
      Register(gid, "01", branches_->Target("Confirm1"), branches_->Target("Cancel1")).ok());
  ASSERT_TRUE(
      Register(gid, "01", branches_->Target("Confirm1"), branches_->Target("Cancel1")).ok());
  absl::Status other = Register(gid, "01", branches_->Target("ConfirmX"), "");
  EXPECT_EQ(other.code(), absl::StatusCode::kAlreadyExists) << other;
  EXPECT_THAT(std::string(other.message()), HasSubstr("ConfirmX"));
  v1::SubmitRequest submit;
  submit.set_gid(gid);
  submit.set_trans_type(v1::TCC);
  submit.mutable_options()->set_wait_result(true);
  auto r1 = client_->Submit(submit);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->status(), v1::SUCCEEDED);
  auto r2 = client_->Submit(submit);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->status(), v1::SUCCEEDED);
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("Confirm1"));  // once
  // Aborting a submitted tcc, preparing it again, or submitting an unknown one: refused.
  v1::AbortRequest abort;
  abort.set_gid(gid);
  abort.set_trans_type(v1::TCC);
  EXPECT_EQ(client_->Abort(abort).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PrepareTcc(gid).code(), absl::StatusCode::kFailedPrecondition);
  submit.set_gid(Gid());
  auto unknown = client_->Submit(submit);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("Prepare it"));
  // A tcc gid is not a msg.
  v1::AbortRequest as_msg;
  as_msg.set_gid(gid);
  as_msg.set_trans_type(v1::MSG);
  EXPECT_EQ(client_->Abort(as_msg).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TccMsgE2ETest, NestedTccSubBranchesAreConfirmedWithTheRest) {
  std::string gid = Gid();
  v1::TransOptions o = FastRetries();
  o.set_wait_result(true);
  auto r = Tcc::Run(
      client_, gid,
      [](Tcc& tcc) {
        absl::Status s = Branch(tcc, 1);
        if (!s.ok()) return s;
        // Branch 02's Try is a service that opens sub-branch 0201 itself.
        return tcc.CallBranch("outer", branches_->Target("TryNested"),
                              branches_->Target("Confirm2"), branches_->Target("Cancel2"));
      },
      o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  // Registration order 01, 02, 0201: confirmed last first.
  EXPECT_THAT(branches_->NamesFor(gid),
              ElementsAre("Try1", "TryNested", "TryN1", "ConfirmN1", "Confirm2", "Confirm1"));
  std::vector<BranchCallRecord> calls = branches_->CallsFor(gid);
  EXPECT_EQ(calls[2].branch_id(), "0201");
  EXPECT_EQ(calls[3].branch_id(), "0201");
  v1::Transaction t = QueryOk(gid);
  ASSERT_EQ(t.branches_size(), 6);
  EXPECT_EQ(t.branches(4).branch_id(), "0201");
}

TEST_F(TccMsgE2ETest, NestedTccSubBranchesAreCancelledWithTheRest) {
  std::string gid = Gid();
  script_->Set(gid, "Try3", {Failure()});
  auto r = Tcc::Run(
      client_, gid,
      [](Tcc& tcc) {
        absl::Status s =
            tcc.CallBranch("outer", branches_->Target("TryNested"), branches_->Target("Confirm1"),
                           branches_->Target("Cancel1"));
        if (!s.ok()) return s;
        return tcc.CallBranch("third", branches_->Target("Try3"), branches_->Target("Confirm3"),
                              branches_->Target("Cancel3"));
      },
      FastRetries());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  // Registered 01, 0101, 02: cancelled 02, 0101, 01.
  EXPECT_THAT(branches_->NamesFor(gid),
              ElementsAre("TryNested", "TryN1", "Try3", "Cancel3", "CancelN1", "Cancel1"));
}

// ---- Two-phase messages ----

TEST_F(TccMsgE2ETest, MsgDirectSubmitDeliversInOrder) {
  std::string gid = Gid();
  Msg msg(client_, gid);
  msg.Add(branches_->Target("M1"), "one").Add(branches_->Target("M2"), "two");
  msg.options() = FastRetries();
  msg.options().set_wait_result(true);
  auto r = msg.Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("M1", "M2"));
  std::vector<BranchCallRecord> calls = branches_->CallsFor(gid);
  EXPECT_EQ(calls[0].op(), "action");
  EXPECT_EQ(calls[0].Meta("dtm-trans_type"), "msg");
  EXPECT_EQ(calls[1].payload, "two");
  v1::Transaction t = QueryOk(gid);
  ASSERT_EQ(t.branches_size(), 2);  // actions only: a message has no compensation
  EXPECT_EQ(t.branches(1).op(), v1::ACTION);
}

TEST_F(TccMsgE2ETest, MsgFailureIsRetriedNeverFailed) {
  std::string gid = Gid();
  script_->Set(gid, "M1", {Failure(), Failure(), Transient(), Ok()});
  Msg msg(client_, gid);
  msg.Add(branches_->Target("M1")).Add(branches_->Target("M2"));
  msg.options() = FastRetries();
  msg.options().set_retry_limit(1);  // a saga's cap; a message ignores it
  ASSERT_TRUE(msg.Submit().ok());
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("M1", "M1", "M1", "M1", "M2"));
  EXPECT_TRUE(dtmd_->LogShows(absl::StrCat("action not done yet gid=", gid))) << dtmd_->Log();
}

TEST_F(TccMsgE2ETest, MsgConcurrentDeliversAllAtOnce) {
  std::string gid = Gid();
  script_->Set(gid, "M1", {Ongoing(), Ok()});
  Msg msg(client_, gid);
  msg.Add(branches_->Target("M1")).Add(branches_->Target("M2")).Add(branches_->Target("M3"));
  msg.options() = FastRetries();
  msg.options().set_concurrent(true);
  ASSERT_TRUE(msg.Submit().ok());
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  // M2 and M3 did not wait for M1 (which was not done at first).
  std::vector<std::string> names = branches_->NamesFor(gid);
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(std::count(names.begin(), names.begin() + 3, "M1"), 1);
  EXPECT_EQ(names.back(), "M1");
}

TEST_F(TccMsgE2ETest, MsgPreparedThenSubmittedIsDeliveredWithoutABackCheck) {
  std::string gid = Gid();
  Msg msg(client_, gid);
  msg.Add(branches_->Target("M1"), "x");
  msg.options() = FastRetries();
  bool local_ran = false;
  auto r = msg.DoAndSubmit(branches_->Target("QueryPrepared"), [&] {
    local_ran = StatusOf(gid) == v1::PREPARED;  // the local transaction runs after Prepare
    return absl::OkStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(local_ran);
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("M1"));
  EXPECT_EQ(QueryOk(gid).query_prepared(), branches_->Target("QueryPrepared"));
}

TEST_F(TccMsgE2ETest, MsgWhoseLocalTransactionRefusesIsDroppedWithoutDelivery) {
  std::string gid = Gid();
  Msg msg(client_, gid);
  msg.Add(branches_->Target("M1"));
  auto r = msg.DoAndSubmit(branches_->Target("QueryPrepared"),
                           [] { return absl::AbortedError("insufficient funds"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(StatusOf(gid), v1::FAILED);
  EXPECT_THAT(QueryOk(gid).rollback_reason(), HasSubstr("insufficient funds"));
  EXPECT_TRUE(msg.Abort().ok());  // idempotent
  // A dropped message stays dropped: Submit answers FAILED and delivers nothing.
  auto late = msg.Submit();
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->status(), v1::FAILED);
  EXPECT_THAT(branches_->NamesFor(gid), IsEmpty());
}

// The client prepares, commits locally and dies before Submit: the coordinator asks
// QueryPrepared once timeout_to_fail passed.
Msg PreparedAndAbandoned(CoordinatorClient* client, TestBranchServer* branches,
                         const std::string& gid, const v1::TransOptions& base) {
  Msg msg(client, gid);
  msg.Add(branches->Target("M1"), "a").Add(branches->Target("M2"), "b");
  msg.options() = base;
  *msg.options().mutable_timeout_to_fail() = Millis(200);
  EXPECT_TRUE(msg.Prepare(branches->Target("QueryPrepared")).ok());
  return msg;
}

TEST_F(TccMsgE2ETest, MsgBackCheckCommittedDelivers) {
  std::string gid = Gid();
  PreparedAndAbandoned(client_, branches_, gid, FastRetries());
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("QueryPrepared", "M1", "M2"));
  BranchCallRecord check = branches_->CallsFor(gid)[0];
  EXPECT_EQ(check.op(), "msg");
  EXPECT_EQ(check.branch_id(), "00");
  EXPECT_EQ(check.Meta("dtm-trans_type"), "msg");
  EXPECT_TRUE(
      dtmd_->LogShows(absl::StrCat("transaction status gid=", gid,
                                   " trans_type=msg status=SUBMITTED cause=\"back-check says "
                                   "committed")))
      << dtmd_->Log();
}

TEST_F(TccMsgE2ETest, MsgBackCheckRolledBackFailsWithoutCallingABranch) {
  std::string gid = Gid();
  script_->Set(gid, "QueryPrepared", {Failure()});
  PreparedAndAbandoned(client_, branches_, gid, FastRetries());
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("QueryPrepared"));
  EXPECT_THAT(QueryOk(gid).rollback_reason(), HasSubstr("rolled back"));
}

TEST_F(TccMsgE2ETest, MsgBackCheckOngoingOrFailingIsAskedAgain) {
  std::string gid = Gid();
  script_->Set(gid, "QueryPrepared", {Ongoing(), Transient(), Ongoing(), Ok()});
  PreparedAndAbandoned(client_, branches_, gid, FastRetries());
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("QueryPrepared", "QueryPrepared",
                                                    "QueryPrepared", "QueryPrepared", "M1", "M2"));
}

TEST_F(TccMsgE2ETest, MsgDelayHoldsDeliveryBack) {
  std::string gid = Gid();
  Msg msg(client_, gid);
  msg.Add(branches_->Target("M1"));
  msg.options() = FastRetries();
  *msg.options().mutable_delay() = Millis(700);
  absl::Time before = absl::Now();
  auto r = msg.Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUBMITTED);
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  std::vector<BranchCallRecord> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_GE(calls[0].time - before, absl::Milliseconds(700));
}

// kill -9 of the coordinator in the middle of a tcc's confirms and with a prepared msg
// waiting for its back-check: after a restart on the same store, both finish.
TEST_F(TccMsgE2ETest, TccAndMsgFinishAfterTheCoordinatorIsKilled) {
  std::string dir = test::MakeTempDir();
  auto own = std::make_unique<DtmdProcess>(
      test::TestStore(dir), std::vector<std::string>{"--lease=1s", "--recovery_interval=100ms"});
  ASSERT_TRUE(own->Start().ok()) << own->Log();
  auto client = CoordinatorClient::Connect(own->address());
  std::string tcc = Gid();
  std::string msg_gid = Gid();
  script_->Set(tcc, "Confirm1", {test::Hang(), Ok()});  // the first call never answers
  auto r = Tcc::Run(
      client.get(), tcc,
      [](Tcc& t) {
        absl::Status s = Branch(t, 1);
        return s.ok() ? Branch(t, 2) : s;
      },
      FastRetries());
  ASSERT_TRUE(r.ok()) << r.status();
  Msg msg(client.get(), msg_gid);
  msg.Add(branches_->Target("M1"));
  msg.options() = FastRetries();
  *msg.options().mutable_timeout_to_fail() = Millis(1500);
  ASSERT_TRUE(msg.Prepare(branches_->Target("QueryPrepared")).ok());
  // Confirm2 done, Confirm1 in flight: kill.
  ASSERT_TRUE(branches_->WaitFor(tcc, [](const std::vector<BranchCallRecord>& c) {
    return c.size() == 4 && c[3].name() == "Confirm1";
  }));
  own->Kill9();
  ASSERT_TRUE(own->Start().ok()) << own->Log();
  client = CoordinatorClient::Connect(own->address());
  ASSERT_TRUE(WaitUntil([&] {
    auto a = client->Query(tcc);
    auto b = client->Query(msg_gid);
    return a.ok() && b.ok() && a->status() == v1::SUCCEEDED && b->status() == v1::SUCCEEDED;
  })) << own->Log();
  // Confirm1 again (idempotent re-call), Confirm2 not again: its success was durable.
  EXPECT_THAT(branches_->NamesFor(tcc),
              ElementsAre("Try1", "Try2", "Confirm2", "Confirm1", "Confirm1"));
  EXPECT_THAT(branches_->NamesFor(msg_gid), ElementsAre("QueryPrepared", "M1"));
  EXPECT_EQ(own->Terminate(), 0) << own->Log();
}

TEST_F(TccMsgE2ETest, BadTccAndMsgRequestsNameTheField) {
  v1::PrepareRequest no_check;
  no_check.set_gid(Gid());
  no_check.set_trans_type(v1::MSG);
  no_check.add_steps()->set_action(branches_->Target("M1"));
  absl::Status s = client_->Prepare(no_check);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("query_prepared"));

  v1::SubmitRequest compensating;
  compensating.set_gid(Gid());
  compensating.set_trans_type(v1::MSG);
  v1::Step* step = compensating.add_steps();
  step->set_action(branches_->Target("M1"));
  step->set_compensate(branches_->Target("C1"));
  EXPECT_THAT(std::string(client_->Submit(compensating).status().message()),
              HasSubstr("steps[0].compensate"));

  v1::SubmitRequest delayed_saga;
  delayed_saga.set_gid(Gid());
  delayed_saga.set_trans_type(v1::SAGA);
  delayed_saga.add_steps()->set_action(branches_->Target("A1"));
  *delayed_saga.mutable_options()->mutable_delay() = Millis(5);
  EXPECT_THAT(std::string(client_->Submit(delayed_saga).status().message()),
              HasSubstr("options.delay"));

  v1::RegisterBranchRequest reg;
  reg.set_gid(Gid());
  reg.set_trans_type(v1::TCC);
  reg.set_branch_id("01");
  reg.set_confirm("not a target");
  s = client_->RegisterBranch(reg);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("confirm"));
  reg.set_confirm("");
  reg.set_branch_id("");
  EXPECT_THAT(std::string(client_->RegisterBranch(reg).message()), HasSubstr("branch_id"));
  reg.set_branch_id("01");
  EXPECT_EQ(client_->RegisterBranch(reg).code(), absl::StatusCode::kNotFound);

  v1::SubmitRequest tcc_steps;
  tcc_steps.set_gid(Gid());
  tcc_steps.set_trans_type(v1::TCC);
  tcc_steps.add_steps();
  EXPECT_THAT(std::string(client_->Submit(tcc_steps).status().message()),
              HasSubstr("RegisterBranch"));
}

}  // namespace
}  // namespace dtm
