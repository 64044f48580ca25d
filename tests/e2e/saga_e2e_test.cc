// End-to-end saga tests: a real dtmd process, real gRPC branch services, fault injection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/branch.h"
#include "client/coordinator_client.h"
#include "client/saga.h"
#include "tests/support/branch_script.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/live_dtmd_test.h"

namespace dtm {
namespace {

using test::BranchCallRecord;
using test::BranchReply;
using test::Code;
using test::DtmdProcess;
using test::Failure;
using test::Hang;
using test::Ok;
using test::Ongoing;
using test::TestBranchServer;
using test::Transient;
using test::WaitUntil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SagaE2ETest : public test::LiveDtmdTest<SagaE2ETest> {
 protected:
  // A saga of `n` steps A1..An with compensations C1..Cn.
  Saga MakeSaga(const std::string& gid, int n) {
    Saga saga(client_, gid);
    for (int i = 1; i <= n; ++i) {
      saga.Add(branches_->Target(absl::StrCat("A", i)), branches_->Target(absl::StrCat("C", i)),
               absl::StrCat("payload-", i));
    }
    saga.RetryInterval(absl::Milliseconds(50)).MaxRetryInterval(absl::Milliseconds(200));
    return saga;
  }
};

TEST_F(SagaE2ETest, AllStepsSucceed) {
  std::string gid = Gid();
  auto r = MakeSaga(gid, 3).WaitResult().Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  EXPECT_EQ(r->gid(), gid);
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("A1", "A2", "A3"));
  // Payloads are forwarded unchanged.
  EXPECT_EQ(branches_->CallsFor(gid)[1].payload, "payload-2");
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->branches_size(), 6);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(t->branches(2 * i).op(), v1::ACTION);
    EXPECT_EQ(t->branches(2 * i).status(), v1::BRANCH_SUCCEEDED);
    EXPECT_EQ(t->branches(2 * i).attempts(), 1);
    EXPECT_EQ(t->branches(2 * i + 1).status(), v1::BRANCH_PREPARED);
    EXPECT_EQ(t->branches(2 * i + 1).attempts(), 0);
  }
  EXPECT_TRUE(t->has_finish_time());
}

TEST_F(SagaE2ETest, FailureAtStepKCompensatesKDownToOneInReverse) {
  for (int k = 1; k <= 3; ++k) {
    std::string gid = Gid();
    script_->Set(gid, absl::StrCat("A", k), {Failure()});
    auto r = MakeSaga(gid, 4).WaitResult().Submit();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status(), v1::FAILED) << "k=" << k;
    EXPECT_THAT(r->rollback_reason(), HasSubstr("refused by test"));
    std::vector<std::string> expected;
    for (int i = 1; i <= k; ++i) expected.push_back(absl::StrCat("A", i));
    for (int i = k; i >= 1; --i) expected.push_back(absl::StrCat("C", i));
    EXPECT_EQ(branches_->NamesFor(gid), expected) << "k=" << k;
    auto t = client_->Query(gid);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->status(), v1::FAILED);
    EXPECT_EQ(t->branches(2 * (k - 1)).status(), v1::BRANCH_FAILED);
    EXPECT_THAT(t->branches(2 * (k - 1)).last_error(), HasSubstr("ABORTED"));
  }
}

TEST_F(SagaE2ETest, TransientErrorsAreRetriedThenSucceed) {
  std::string gid = Gid();
  script_->Set(gid, "A2", {Transient(), Transient(), Transient(), Ok()});
  auto r = MakeSaga(gid, 2).WaitResult().Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  // wait_result returns at the first stall (A2's first error), saying "still running".
  EXPECT_EQ(r->status(), v1::SUBMITTED);
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("A1", "A2", "A2", "A2", "A2"));
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->branches(2).attempts(), 4);
  EXPECT_THAT(t->branches(2).last_error(), HasSubstr("flaky"));
}

TEST_F(SagaE2ETest, ABranchAnsweringInvalidTextIsRecordedCleanedAndDoesNotStall) {
  // PostgreSQL refuses text that is not UTF-8: such an answer stored as it is would fail the
  // write at every retry. It is cleaned (U+FFFD) and capped before it is stored.
  std::string gid = Gid();
  std::string latin1 =
      "solde insuffisant: 3 \xE9"
      "cus";  // Latin-1 "é"
  script_->Set(gid, "A1",
               {Code(grpc::StatusCode::UNAVAILABLE, latin1 + std::string(5000, '!')),
                Code(grpc::StatusCode::ABORTED, latin1)});
  auto r = MakeSaga(gid, 1).Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->branches(0).last_error(), HasSubstr("3 \xEF\xBF\xBD"
                                                     "cus"));
  EXPECT_LE(t->branches(0).last_error().size(), 1024u);
  EXPECT_THAT(t->rollback_reason(), HasSubstr("3 \xEF\xBF\xBD"
                                              "cus"));
}

TEST_F(SagaE2ETest, OngoingIsPolledThenSucceeds) {
  std::string gid = Gid();
  script_->Set(gid, "A1", {Ongoing(), Ongoing(), Ok()});
  auto r = MakeSaga(gid, 2).WaitResult().Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUBMITTED);
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("A1", "A1", "A1", "A2"));
}

TEST_F(SagaE2ETest, BranchHangingPastRequestTimeoutIsRetried) {
  std::string gid = Gid();
  script_->Set(gid, "A1", {Hang(), Ok()});
  auto r = MakeSaga(gid, 1).RequestTimeout(absl::Milliseconds(300)).WaitResult().Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->branches(0).attempts(), 2);
  EXPECT_THAT(t->branches(0).last_error(), HasSubstr("DEADLINE_EXCEEDED"));
}

TEST_F(SagaE2ETest, TimeoutToFailWhileOngoingRollsBack) {
  std::string gid = Gid();
  script_->Set(gid, "A2", {Ongoing()});
  auto r = MakeSaga(gid, 3).TimeoutToFail(absl::Milliseconds(500)).Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUBMITTED);
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  auto names = branches_->NamesFor(gid);
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names.front(), "A1");
  EXPECT_THAT(std::vector<std::string>(names.end() - 2, names.end()), ElementsAre("C2", "C1"));
  EXPECT_EQ(std::count(names.begin(), names.end(), "A3"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "C3"), 0);
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->rollback_reason(), HasSubstr("timeout_to_fail"));
}

TEST_F(SagaE2ETest, RetryLimitExhaustedRollsBack) {
  std::string gid = Gid();
  script_->Set(gid, "A2", {Transient()});
  auto saga = MakeSaga(gid, 2).RetryLimit(2);
  ASSERT_TRUE(saga.Submit().ok());
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("A1", "A2", "A2", "A2", "C2", "C1"));
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->rollback_reason(), HasSubstr("retry_limit 2"));
}

TEST_F(SagaE2ETest, FailingCompensationIsRetriedAndVisible) {
  std::string gid = Gid();
  script_->Set(gid, "A2", {Failure()});
  script_->Set(gid, "C1", {Failure(), Transient(), Ok()});
  ASSERT_TRUE(MakeSaga(gid, 2).Submit().ok());
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("A1", "A2", "C2", "C1", "C1", "C1"));
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->branches(1).attempts(), 3);
  EXPECT_THAT(t->branches(1).last_error(), HasSubstr("flaky"));
  EXPECT_TRUE(dtmd_->LogShows(absl::StrCat("compensate not done yet gid=", gid))) << dtmd_->Log();
}

TEST_F(SagaE2ETest, DuplicateSubmitRunsNothingTwice) {
  std::string gid = Gid();
  script_->Set(gid, "A1", {Ongoing(), Ok()});
  Saga saga = MakeSaga(gid, 2);
  auto first = saga.Submit();
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = saga.Submit();  // while running
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->gid(), gid);
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  auto third = saga.WaitResult().Submit();  // after the end
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->status(), v1::SUCCEEDED);
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("A1", "A1", "A2"));
}

TEST_F(SagaE2ETest, ConcurrentStepsFollowTheDag) {
  std::string gid = Gid();
  // A1 and A2 independent; A3 after both; A4 after A3.
  Saga saga = MakeSaga(gid, 4);
  saga.Concurrent().After(2, {0, 1}).After(3, {2});
  // A1 stays ongoing for several polls, so A2 (dispatched together with A1's first call)
  // arrives before A1 succeeds even on a loaded machine.
  script_->Set(gid, "A1", {Ongoing(), Ongoing(), Ongoing(), Ongoing(), Ok()});
  auto r = saga.Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  auto names = branches_->NamesFor(gid);
  auto pos = [&](const std::string& n) {
    return std::find(names.rbegin(), names.rend(), n).base() - names.begin() - 1;
  };
  auto first = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) - names.begin();
  };
  EXPECT_LT(pos("A1"), first("A3"));
  EXPECT_LT(pos("A2"), first("A3"));
  EXPECT_LT(pos("A3"), first("A4"));
  EXPECT_LT(first("A2"), pos("A1"));  // A2 ran while A1 was still ongoing
}

TEST_F(SagaE2ETest, ConcurrentFailureCompensatesInReverseDag) {
  std::string gid = Gid();
  Saga saga = MakeSaga(gid, 3);
  saga.Concurrent().After(2, {0, 1});
  script_->Set(gid, "A3", {Failure()});
  ASSERT_TRUE(saga.WaitResult().Submit().ok());
  ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
  auto names = branches_->NamesFor(gid);
  auto first = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) - names.begin();
  };
  ASSERT_EQ(names.size(), 6u);
  EXPECT_LT(first("C3"), first("C1"));
  EXPECT_LT(first("C3"), first("C2"));
}

TEST_F(SagaE2ETest, MetadataAndHeadersReachTheBranch) {
  std::string gid = Gid();
  script_->Set(gid, "A2", {Failure()});
  auto r = MakeSaga(gid, 2).BranchHeader("x-tenant", "acme").WaitResult().Submit();
  ASSERT_TRUE(r.ok());
  auto calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 4u);
  for (const BranchCallRecord& c : calls) {
    EXPECT_EQ(c.Meta("dtm-gid"), gid);
    EXPECT_EQ(c.Meta("dtm-trans_type"), "saga");
    EXPECT_EQ(c.Meta("x-tenant"), "acme");
    EXPECT_EQ(c.Meta("dtm-dtm"), dtmd_->address());
  }
  EXPECT_EQ(calls[0].Meta("dtm-branch_id"), "01");
  EXPECT_EQ(calls[0].Meta("dtm-op"), "action");
  EXPECT_EQ(calls[1].Meta("dtm-branch_id"), "02");
  EXPECT_EQ(calls[2].Meta("dtm-op"), "compensate");
  EXPECT_EQ(calls[2].Meta("dtm-branch_id"), "02");
  // The client library's branch helper reads the same metadata.
  const BranchContext& b = calls[2].branch;
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.gid, gid);
  EXPECT_EQ(b.trans_type, "saga");
  EXPECT_EQ(b.branch_id, "02");
  EXPECT_EQ(b.op, "compensate");
  EXPECT_EQ(b.dtm, dtmd_->address());
}

TEST_F(SagaE2ETest, ForceStopEndsWithoutCompensation) {
  std::string gid = Gid();
  script_->Set(gid, "A2", {Ongoing()});
  ASSERT_TRUE(MakeSaga(gid, 2).Submit().ok());
  ASSERT_TRUE(branches_->WaitFor(gid, [](auto& calls) { return calls.size() >= 2; }));
  auto t = client_->ForceStop(gid, "operator says stop");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status(), v1::FAILED);
  EXPECT_EQ(t->rollback_reason(), "operator says stop");
  size_t calls_at_stop = branches_->CallsFor(gid).size();
  // A second ForceStop is refused: the transaction is terminal.
  auto again = client_->ForceStop(gid, "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr(gid));
  // RetryNow of a terminal transaction is refused too, and nothing is called any more.
  EXPECT_EQ(client_->RetryNow(gid).code(), absl::StatusCode::kFailedPrecondition);
  std::string probe = Gid();
  ASSERT_TRUE(MakeSaga(probe, 1).WaitResult().Submit().ok());  // a later saga ran fully
  EXPECT_EQ(branches_->CallsFor(gid).size(), calls_at_stop);
  for (const auto& name : branches_->NamesFor(gid)) EXPECT_EQ(name[0], 'A');
}

TEST_F(SagaE2ETest, RetryNowSkipsTheBackoffWait) {
  std::string gid = Gid();
  script_->Set(gid, "A1", {Transient(), Ok()});
  Saga saga = MakeSaga(gid, 1);
  saga.RetryInterval(absl::Seconds(60)).MaxRetryInterval(absl::Seconds(60));
  ASSERT_TRUE(saga.WaitResult().Submit().ok());
  EXPECT_EQ(StatusOf(gid), v1::SUBMITTED);
  ASSERT_TRUE(client_->RetryNow(gid).ok());
  ASSERT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
}

TEST_F(SagaE2ETest, QueryListAndNewGid) {
  auto gid = client_->NewGid();
  ASSERT_TRUE(gid.ok());
  EXPECT_LE(gid->size(), 64u);
  auto gid2 = client_->NewGid();
  ASSERT_TRUE(gid2.ok());
  EXPECT_NE(*gid, *gid2);
  std::string prefix = Gid();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(MakeSaga(absl::StrCat(prefix, "-", i), 1).WaitResult().Submit().ok());
  }
  v1::ListRequest req;
  req.set_gid_prefix(prefix);
  req.set_page_size(2);
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto resp = client_->List(req);
    ASSERT_TRUE(resp.ok()) << resp.status();
    for (const auto& t : resp->transactions()) {
      seen.push_back(t.gid());
      EXPECT_EQ(t.status(), v1::SUCCEEDED);
    }
    if (resp->next_page_token().empty()) break;
    req.set_page_token(resp->next_page_token());
  }
  // Newest first, every one exactly once.
  EXPECT_THAT(
      seen, ElementsAre(prefix + "-4", prefix + "-3", prefix + "-2", prefix + "-1", prefix + "-0"));
  auto missing = client_->Query("no-such-gid");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no-such-gid"));
}

// Every bad input gets a clear error naming the field; nothing accepted is lost.
TEST_F(SagaE2ETest, BadInputIsRejectedWithTheField) {
  std::string ok_gid = Gid();
  ASSERT_TRUE(MakeSaga(ok_gid, 1).WaitResult().Submit().ok());
  struct Case {
    std::string name;
    std::function<void(v1::SubmitRequest&)> mutate;
    absl::StatusCode code;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"empty gid", [](auto& r) { r.set_gid(""); }, absl::StatusCode::kInvalidArgument, "gid"},
      {"long gid", [](auto& r) { r.set_gid(std::string(129, 'g')); },
       absl::StatusCode::kInvalidArgument, "gid"},
      {"bad gid chars", [](auto& r) { r.set_gid("a b/c"); }, absl::StatusCode::kInvalidArgument,
       "a b/c"},
      {"unspecified type", [](auto& r) { r.set_trans_type(v1::TRANS_TYPE_UNSPECIFIED); },
       absl::StatusCode::kInvalidArgument, "trans_type"},
      {"unknown type", [](auto& r) { r.set_trans_type(static_cast<v1::TransType>(42)); },
       absl::StatusCode::kInvalidArgument, "trans_type '42'"},
      {"no steps", [](auto& r) { r.clear_steps(); }, absl::StatusCode::kInvalidArgument, "steps"},
      {"no method", [](auto& r) { r.mutable_steps(0)->set_action("127.0.0.1:1"); },
       absl::StatusCode::kInvalidArgument, "steps[0].action"},
      {"no port", [](auto& r) { r.mutable_steps(0)->set_compensate("localhost/x.Svc/M"); },
       absl::StatusCode::kInvalidArgument, "steps[0].compensate"},
      {"after out of range", [](auto& r) { r.mutable_steps(0)->add_after(7); },
       absl::StatusCode::kInvalidArgument, "steps[0].after[0]"},
      {"after self", [](auto& r) { r.mutable_steps(0)->add_after(0); },
       absl::StatusCode::kInvalidArgument, "own step"},
      {"after cycle",
       [](auto& r) {
         *r.add_steps() = r.steps(0);
         r.mutable_steps(0)->add_after(1);
         r.mutable_steps(1)->add_after(0);
       },
       absl::StatusCode::kInvalidArgument, "cycle"},
      {"negative duration",
       [](auto& r) { r.mutable_options()->mutable_request_timeout()->set_seconds(-1); },
       absl::StatusCode::kInvalidArgument, "options.request_timeout"},
      {"negative retry_limit", [](auto& r) { r.mutable_options()->set_retry_limit(-3); },
       absl::StatusCode::kInvalidArgument, "options.retry_limit"},
      {"payload too large",
       [](auto& r) { r.mutable_steps(0)->set_payload(std::string(2 << 20, 'x')); },
       absl::StatusCode::kResourceExhausted, "steps[0].payload"},
      {"reserved header",
       [](auto& r) { (*r.mutable_options()->mutable_branch_headers())["dtm-gid"] = "x"; },
       absl::StatusCode::kInvalidArgument, "dtm-gid"},
  };
  for (const Case& c : cases) {
    v1::SubmitRequest req = MakeSaga(Gid(), 1).request();
    c.mutate(req);
    auto r = client_->Submit(req);
    EXPECT_EQ(r.status().code(), c.code) << c.name << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.needle)) << c.name;
  }
  // Existing gid with another trans type.
  v1::SubmitRequest msg = MakeSaga(ok_gid, 1).request();
  msg.set_trans_type(v1::MSG);
  msg.mutable_steps(0)->clear_compensate();
  auto exists = client_->Submit(msg);
  EXPECT_EQ(exists.status().code(), absl::StatusCode::kAlreadyExists) << exists.status();
  EXPECT_THAT(std::string(exists.status().message()), HasSubstr(ok_gid));
  // A saga cannot be prepared or aborted; a request without a type names the field.
  grpc::ClientContext ctx;
  v1::PrepareResponse presp;
  v1::PrepareRequest preq;
  preq.set_gid(Gid());
  grpc::Status prepared = client_->stub()->Prepare(&ctx, preq, &presp);
  EXPECT_EQ(prepared.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(prepared.error_message(), HasSubstr("trans_type"));
  grpc::ClientContext actx;
  v1::AbortRequest abort;
  abort.set_gid(ok_gid);
  abort.set_trans_type(v1::SAGA);
  v1::AbortResponse aresp;
  EXPECT_EQ(client_->stub()->Abort(&actx, abort, &aresp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(client_->Query("bad gid!").status().code(), absl::StatusCode::kInvalidArgument);
  v1::ListRequest list;
  list.set_page_size(-1);
  EXPECT_THAT(std::string(client_->List(list).status().message()), HasSubstr("page_size"));
  list.set_page_size(10);
  list.set_page_token("garbage");
  EXPECT_THAT(std::string(client_->List(list).status().message()), HasSubstr("page_token"));
  // Nothing accepted is lost: the good saga is still there.
  EXPECT_EQ(StatusOf(ok_gid), v1::SUCCEEDED);
}

// kill -9 in the middle of a saga, restart on the same database: the saga finishes, and no
// step that was not attempted is compensated.
TEST(SagaCrashTest, Kill9MidSagaThenRestartFinishes) {
  TestBranchServer branches;
  std::string dir = test::MakeTempDir();
  std::string store = test::TestStore(dir);
  std::vector<std::string> flags = {"--lease=500ms", "--recovery_interval=100ms"};
  std::atomic<bool> hang{true};
  branches.SetBehavior([&](const BranchCallRecord& c) {
    if (c.name() == "A2" && hang.load()) return Hang();
    return Ok();
  });
  std::vector<std::string> gids;
  {
    DtmdProcess dtmd(store, flags);
    ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
    auto client = CoordinatorClient::Connect(dtmd.address());
    for (int i = 0; i < 5; ++i) {
      std::string gid = absl::StrCat("crash-", i);
      Saga saga(client.get(), gid);
      for (int s = 1; s <= 3; ++s) {
        saga.Add(branches.Target(absl::StrCat("A", s)), branches.Target(absl::StrCat("C", s)));
      }
      saga.RequestTimeout(absl::Seconds(60)).RetryInterval(absl::Milliseconds(50));
      auto r = saga.Submit();
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->status(), v1::SUBMITTED);
      gids.push_back(gid);
    }
    for (const auto& gid : gids) {
      ASSERT_TRUE(branches.WaitFor(gid, [](auto& calls) {
        return std::any_of(calls.begin(), calls.end(), [](auto& c) { return c.name() == "A2"; });
      })) << dtmd.Log();
    }
    dtmd.Kill9();
  }
  hang = false;
  DtmdProcess dtmd(store, flags);
  ASSERT_TRUE(dtmd.Start().ok());
  auto client = CoordinatorClient::Connect(dtmd.address());
  for (const auto& gid : gids) {
    ASSERT_TRUE(WaitUntil([&] {
      auto t = client->Query(gid);
      return t.ok() && t->status() == v1::SUCCEEDED;
    })) << gid
        << "\n"
        << dtmd.Log();
    auto names = branches.NamesFor(gid);
    // A1's success was durable before A2 was called: A1 ran once; A2 again after restart.
    EXPECT_EQ(std::count(names.begin(), names.end(), "A1"), 1) << gid;
    EXPECT_EQ(std::count(names.begin(), names.end(), "A2"), 2) << gid;
    EXPECT_EQ(std::count(names.begin(), names.end(), "A3"), 1) << gid;
    for (const auto& n : names) EXPECT_EQ(n[0], 'A') << gid << " compensated " << n;
  }
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
}

// A saga whose branch answers "ongoing" with an hour to its next retry leaves dtmd's memory
// (with room for one transaction in memory, another is admitted beside it), survives kill -9
// in the store, and is called again at once on a RetryNow, before and after a restart.
TEST(SagaCrashTest, AWaitingSagaLeavesMemoryAndSurvivesKill9) {
  TestBranchServer branches;
  std::string dir = test::MakeTempDir();
  std::string store = test::TestStore(dir);
  std::vector<std::string> flags = {"--lease=500ms", "--recovery_interval=100ms", "--park_after=2s",
                                    "--max_active_transactions=1"};
  std::atomic<bool> ongoing{true};
  branches.SetBehavior([&](const BranchCallRecord& c) {
    if (c.name() == "A1" && ongoing.load()) return test::Ongoing();
    return Ok();
  });
  const std::string gid = "parked-1";
  auto a1_calls = [&] {
    auto names = branches.NamesFor(gid);
    return std::count(names.begin(), names.end(), "A1");
  };
  // Whether a new (no-op) saga gets in under the bound of one transaction in memory.
  int others = 0;
  auto another_admitted = [&](CoordinatorClient& client) {
    Saga other(&client, absl::StrCat("parked-other-", ++others));
    other.Add("", "");
    return other.Submit().ok();
  };
  {
    DtmdProcess dtmd(store, flags);
    ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
    auto client = CoordinatorClient::Connect(dtmd.address());
    Saga saga(client.get(), gid);
    saga.Add(branches.Target("A1"), branches.Target("C1")).RetryInterval(absl::Hours(1));
    ASSERT_TRUE(saga.Submit().ok());
    ASSERT_TRUE(WaitUntil([&] { return a1_calls() == 1; })) << dtmd.Log();
    // The bound of one in memory holds the next Submit back until the first one left.
    ASSERT_TRUE(WaitUntil([&] { return another_admitted(*client); })) << dtmd.Log();
    ASSERT_TRUE(client->RetryNow(gid).ok());
    ASSERT_TRUE(WaitUntil([&] { return a1_calls() == 2; })) << dtmd.Log();
    // Ongoing again: it leaves memory again, then the coordinator dies.
    ASSERT_TRUE(WaitUntil([&] { return another_admitted(*client); })) << dtmd.Log();
    dtmd.Kill9();
  }
  ongoing = false;
  DtmdProcess dtmd(store, flags);
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  auto client = CoordinatorClient::Connect(dtmd.address());
  EXPECT_EQ(client->Query(gid)->status(), v1::SUBMITTED);
  ASSERT_TRUE(client->RetryNow(gid).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto t = client->Query(gid);
    return t.ok() && t->status() == v1::SUCCEEDED;
  })) << dtmd.Log();
  EXPECT_EQ(a1_calls(), 3);
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
}

// A saga rolling back when dtmd dies: after the restart every attempted step is
// compensated exactly in reverse order, unattempted steps never.
TEST(SagaCrashTest, Kill9DuringRollbackThenRestartCompensates) {
  TestBranchServer branches;
  std::string dir = test::MakeTempDir();
  std::string store = test::TestStore(dir);
  std::vector<std::string> flags = {"--lease=500ms", "--recovery_interval=100ms"};
  std::atomic<bool> hang{true};
  branches.SetBehavior([&](const BranchCallRecord& c) {
    if (c.name() == "A2") return Failure();
    if (c.name() == "C1" && hang.load()) return Hang();
    return Ok();
  });
  std::string gid = "rollback-crash";
  {
    DtmdProcess dtmd(store, flags);
    ASSERT_TRUE(dtmd.Start().ok());
    auto client = CoordinatorClient::Connect(dtmd.address());
    Saga saga(client.get(), gid);
    for (int s = 1; s <= 3; ++s) {
      saga.Add(branches.Target(absl::StrCat("A", s)), branches.Target(absl::StrCat("C", s)));
    }
    saga.RequestTimeout(absl::Seconds(60));
    ASSERT_TRUE(saga.Submit().ok());
    ASSERT_TRUE(branches.WaitFor(
        gid, [](auto& calls) { return !calls.empty() && calls.back().name() == "C1"; }));
    dtmd.Kill9();
  }
  hang = false;
  DtmdProcess dtmd(store, flags);
  ASSERT_TRUE(dtmd.Start().ok());
  auto client = CoordinatorClient::Connect(dtmd.address());
  ASSERT_TRUE(WaitUntil([&] {
    auto t = client->Query(gid);
    return t.ok() && t->status() == v1::FAILED;
  })) << dtmd.Log();
  auto names = branches.NamesFor(gid);
  ASSERT_GE(names.size(), 4u);
  EXPECT_THAT(std::vector<std::string>(names.begin(), names.begin() + 4),
              ElementsAre("A1", "A2", "C2", "C1"));
  EXPECT_EQ(std::count(names.begin(), names.end(), "C3"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "A3"), 0);
  EXPECT_EQ(names.back(), "C1");
  EXPECT_EQ(dtmd.Terminate(), 0);
}

TEST(DtmdTest, RetentionPurgesOnlyFinishedTransactions) {
  TestBranchServer branches;
  branches.SetBehavior(
      [](const BranchCallRecord& c) { return c.gid() == "running" ? Ongoing() : Ok(); });
  DtmdProcess dtmd(test::TestStore(test::MakeTempDir()),
                   {"--retention=300ms", "--purge_interval=50ms"});
  ASSERT_TRUE(dtmd.Start().ok());
  auto client = CoordinatorClient::Connect(dtmd.address());
  // What Submit answers, not a later Query: under load "finished" may be purged (300ms after
  // it ended) before a Query gets to it.
  for (const char* gid : {"finished", "running"}) {
    Saga saga(client.get(), gid);
    saga.Add(branches.Target("A1"), branches.Target("C1")).RetryInterval(absl::Seconds(10));
    auto r = saga.WaitResult().Submit();
    ASSERT_TRUE(r.ok()) << r.status();
    if (std::string(gid) == "finished") {
      EXPECT_EQ(r->status(), v1::SUCCEEDED);
    }
  }
  ASSERT_TRUE(WaitUntil([&] {
    return client->Query("finished").status().code() == absl::StatusCode::kNotFound;
  })) << dtmd.Log();
  EXPECT_TRUE(dtmd.LogShows("purged")) << dtmd.Log();
  auto running = client->Query("running");
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->status(), v1::SUBMITTED);
  EXPECT_EQ(dtmd.Terminate(), 0);
}

// SIGTERM while a wait_result Submit is pending: the caller gets "still running", dtmd exits
// 0, and after a restart the saga finishes.
TEST(DtmdTest, GracefulShutdownAnswersWaitersAndLosesNothing) {
  TestBranchServer branches;
  std::atomic<bool> hang{true};
  branches.SetBehavior(
      [&](const BranchCallRecord& c) { return c.name() == "A1" && hang.load() ? Hang() : Ok(); });
  std::string store = test::TestStore(test::MakeTempDir());
  std::vector<std::string> flags = {"--lease=200ms", "--recovery_interval=50ms"};
  DtmdProcess dtmd(store, flags);
  ASSERT_TRUE(dtmd.Start().ok());
  auto client = CoordinatorClient::Connect(dtmd.address());
  absl::StatusOr<v1::SubmitResponse> answer;
  std::thread submitter([&] {
    Saga saga(client.get(), "sigterm");
    saga.Add(branches.Target("A1"), branches.Target("C1"))
        .Add(branches.Target("A2"), branches.Target("C2"))
        .RequestTimeout(absl::Seconds(60))
        .WaitResult();
    answer = saga.Submit();
  });
  ASSERT_TRUE(branches.WaitFor("sigterm", [](auto& calls) { return !calls.empty(); }));
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
  submitter.join();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status(), v1::SUBMITTED);
  hang = false;
  DtmdProcess again(store, flags);
  ASSERT_TRUE(again.Start().ok());
  auto client2 = CoordinatorClient::Connect(again.address());
  ASSERT_TRUE(WaitUntil([&] {
    auto t = client2->Query("sigterm");
    return t.ok() && t->status() == v1::SUCCEEDED;
  })) << again.Log();
  auto names = branches.NamesFor("sigterm");
  EXPECT_EQ(names.back(), "A2");
  EXPECT_EQ(std::count(names.begin(), names.end(), "C1"), 0);
  EXPECT_EQ(again.Terminate(), 0);
}

TEST(DtmdTest, BadStoreUrlExitsWithMessage) {
  DtmdProcess dtmd("mysql://nowhere");
  absl::Status st = dtmd.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("mysql://nowhere"));
}

}  // namespace
}  // namespace dtm
