// Engine tests with a fake branch caller, a fake clock and a manual timer queue over a real
// SQLite store: the engine's plumbing (strands, writes, timers, waiters) without sockets.
#include "server/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/engine/engine_fixture.h"
#include "server/engine/test_transactions.h"
#include "storage/sqlite/sqlite_store.h"
#include "tests/fakes/fake_branch_caller.h"
#include "tests/fakes/fake_clock.h"

namespace dtm {
namespace {

class EngineTest : public test::EngineFixture {
 protected:
  Transaction Saga(const std::string& gid, int steps, bool wait = false) {
    Transaction t = test::MakeTestSaga(gid, steps);
    t.options.wait_result = wait;
    return t;
  }

  absl::StatusOr<SubmitResult> SubmitSync(Transaction t) {
    absl::Notification n;
    absl::StatusOr<SubmitResult> out;
    engine_->Submit(std::move(t), [&](absl::StatusOr<SubmitResult> r) {
      out = std::move(r);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }
  Transaction QuerySync(const std::string& gid) {
    absl::Notification n;
    Transaction out;
    engine_->Query(gid, [&](absl::StatusOr<Transaction> t) {
      if (t.ok()) out = *t;
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }
  // Claims `gid` from the store as recovery would.
  Transaction Claim(const std::string& gid, const std::string& owner = "me") {
    ClaimOp op;
    op.owner = owner;
    op.now = clock_.Now();
    WriteResult r = store_->WriteSync(op);
    for (Transaction& t : r.claimed) {
      if (t.gid == gid) return t;
    }
    ADD_FAILURE() << gid << " was not claimable";
    return Transaction();
  }
  absl::Status PrepareSync(Transaction t) {
    absl::Notification n;
    absl::Status out;
    engine_->Prepare(std::move(t), [&](absl::Status s) {
      out = std::move(s);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }
  Transaction PreparedTcc(const std::string& gid, absl::Duration timeout_to_fail) {
    Transaction t;
    t.gid = gid;
    t.trans_type = TransType::kTcc;
    t.status = GlobalStatus::kPrepared;
    t.options.timeout_to_fail = timeout_to_fail;
    return t;
  }
  // A msg of one step, "h:1/s.S/A1", in `status`.
  Transaction Msg(const std::string& gid, GlobalStatus status) {
    Transaction t;
    t.gid = gid;
    t.trans_type = TransType::kMsg;
    t.status = status;
    Branch b;
    b.branch_id = SagaBranchId(0);
    b.op = BranchOp::kAction;
    b.target = "h:1/s.S/A1";
    t.branches.push_back(b);
    return t;
  }
  // A PREPARED msg of one step whose back-check is "h:1/s.S/QueryPrepared".
  Transaction PreparedMsg(const std::string& gid) {
    Transaction t = Msg(gid, GlobalStatus::kPrepared);
    t.query_prepared = "h:1/s.S/QueryPrepared";
    t.options.timeout_to_fail = absl::Seconds(5);
    return t;
  }
  // Submits a saga of `steps` whose first action answers "ongoing", to be asked again in an
  // hour, and waits until it left memory.
  void SubmitAndPark(const std::string& gid, int steps) {
    Transaction t = Saga(gid, steps);
    t.options.retry_interval = absl::Hours(1);
    ASSERT_TRUE(SubmitSync(t).ok());
    EXPECT_EQ(caller_.Next(), "A1");
    caller_.Answer({CallOutcome::kOngoing, ""});
    ASSERT_TRUE(WaitUntil([&] { return !engine_->IsActive(gid); }));
  }
  // Bulk RetryNow's answer: how many transactions it made due, or why not.
  absl::StatusOr<int64_t> RetryAllWaitingAnswer() {
    absl::Notification n;
    absl::StatusOr<int64_t> out;
    engine_->RetryAllWaiting([&](absl::StatusOr<int64_t> r) {
      out = std::move(r);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }
  // Bulk RetryNow: how many transactions it made due, or -1 on an error.
  int64_t RetryAllWaitingSync() {
    absl::StatusOr<int64_t> out = RetryAllWaitingAnswer();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : -1;
  }
  // Submits a one-step saga whose action answers `first`, and waits until the engine has set
  // the timer of its retry. The retry interval (20 s) keeps it in memory (below park_after).
  void SubmitWaitingInMemory(const std::string& gid, const BranchResult& first) {
    Transaction t = Saga(gid, 1);
    t.options.retry_interval = absl::Seconds(20);
    ASSERT_TRUE(SubmitSync(t).ok());
    EXPECT_EQ(caller_.Next(), "A1");
    caller_.Answer(first);
    ASSERT_TRUE(WaitUntil([&] { return timers_.pending() == 1; }));
  }
  // Waits until the engine has handled everything posted for `gid` so far.
  void Settle(const std::string& gid) { QuerySync(gid); }
  // Waits until the engine has handled the completion of every write committed so far (the
  // store runs completions in commit order, and each hands the engine's part to its strand):
  // a later write's completion ran, then `gid`'s strand settles.
  void SettleWrites(const std::string& gid) {
    ASSERT_EQ(store_->WriteSync(TouchOp{"no-such-gid", clock_.Now()}).status.code(),
              absl::StatusCode::kNotFound);
    Settle(gid);
  }
  bool WaitUntil(const std::function<bool()>& cond) {
    for (int i = 0; i < 2000; ++i) {
      if (cond()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }
  bool WaitStatus(const std::string& gid, GlobalStatus s) {
    for (int i = 0; i < 2000; ++i) {
      if (QuerySync(gid).status == s && !engine_->IsActive(gid)) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }
};

TEST_F(EngineTest, RunsASagaAndAnswersWaitResultWhenDurable) {
  absl::Notification answered;
  absl::StatusOr<SubmitResult> result;
  engine_->Submit(Saga("g1", 2, /*wait=*/true), [&](absl::StatusOr<SubmitResult> r) {
    result = std::move(r);
    answered.Notify();
  });
  EXPECT_EQ(caller_.Next(), "A1");
  const BranchCall& call = caller_.Peek();
  EXPECT_EQ(call.dtm, "dtm:36790");
  EXPECT_EQ(call.gid, "g1");
  EXPECT_EQ(call.trans_type, "saga");
  EXPECT_EQ(call.branch_id, "01");
  EXPECT_EQ(call.op, "action");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_EQ(caller_.Next(), "A2");
  EXPECT_FALSE(answered.HasBeenNotified());
  caller_.Answer({CallOutcome::kSuccess, ""});
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->status, GlobalStatus::kSucceeded);
  // Durable before the answer.
  auto stored = store_->Get("g1");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->status, GlobalStatus::kSucceeded);
  EXPECT_EQ(stored->branches[2].status, BranchStatus::kSucceeded);
}

TEST_F(EngineTest, BackoffWaitsForTheInjectedClock) {
  auto r = SubmitSync(Saga("g2", 1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, GlobalStatus::kSubmitted);
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE"});
  // Wait until the engine has armed its backoff timer.
  for (int i = 0; i < 2000 && timers_.pending() == 0; ++i) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(timers_.pending(), 1u);
  EXPECT_EQ(timers_.RunDue(), 0);  // not due: the fake clock has not moved
  EXPECT_EQ(caller_.pending(), 0u);
  clock_.Advance(absl::Seconds(1));  // the longest jittered first wait
  EXPECT_EQ(timers_.RunDue(), 1);
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("g2", GlobalStatus::kSucceeded));
  EXPECT_EQ(QuerySync("g2").branches[0].attempts, 2);
}

TEST_F(EngineTest, DuplicateSubmitJoinsTheRunningTransaction) {
  ASSERT_TRUE(SubmitSync(Saga("g3", 1)).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  absl::Notification second_done;
  absl::StatusOr<SubmitResult> second;
  engine_->Submit(Saga("g3", 1, /*wait=*/true), [&](absl::StatusOr<SubmitResult> r) {
    second = std::move(r);
    second_done.Notify();
  });
  caller_.Answer({CallOutcome::kSuccess, ""});
  ASSERT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->status, GlobalStatus::kSucceeded);
  EXPECT_EQ(caller_.pending(), 0u);  // A1 was called once
  Transaction other = Saga("g3", 1);
  other.trans_type = TransType::kMsg;
  EXPECT_EQ(SubmitSync(other).status().code(), absl::StatusCode::kAlreadyExists);
}

// A ForceStop through another replica ends a transaction this one runs without taking its
// lease: at the next renewal this one learns the end from the store and retires it, without
// counting a lost lease (nobody took the work over).
TEST_F(EngineTest, AnEndFromAnotherReplicaIsTakenFromTheStoreAtRenewal) {
  ASSERT_TRUE(SubmitSync(Saga("fs1", 1)).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kOngoing, ""});
  Settle("fs1");
  ASSERT_TRUE(engine_->IsActive("fs1"));

  FakeBranchCaller other_caller;
  EngineOptions o;
  o.owner = "other";
  Engine other(o, store_.get(), &other_caller, &clock_, &timers_, &pool_);
  absl::Notification stopped;
  other.ForceStop("fs1", "stopped by an operator", [&](const absl::StatusOr<Transaction>& t) {
    EXPECT_TRUE(t.ok()) << t.status();
    stopped.Notify();
  });
  ASSERT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(10)));

  clock_.Advance(absl::Seconds(5));  // the lease is due for renewal
  engine_->RenewLeases();
  EXPECT_TRUE(WaitUntil([&] { return !engine_->IsActive("fs1"); }));
  Transaction t = QuerySync("fs1");
  EXPECT_EQ(t.status, GlobalStatus::kFailed);
  EXPECT_EQ(t.rollback_reason, "stopped by an operator");
  std::string metrics = engine_->metrics()->Serialize();
  EXPECT_THAT(metrics, ::testing::HasSubstr("\ndtm_lease_losses_total 0\n"));
  EXPECT_THAT(metrics, ::testing::HasSubstr("\ndtm_lease_renewals_total 0\n"));
  EXPECT_EQ(caller_.pending(), 0u);
  other.Shutdown();
}

// A RetryNow through another replica while this one is calling the branch: the touch moves
// the stored next_retry_time back even though it is already past, this replica notices at
// its next renewal, and the branch is called again as soon as the call out answers.
TEST_F(EngineTest, ARetryNowThroughAnotherReplicaDuringACallIsNotLost) {
  ASSERT_TRUE(SubmitSync(Saga("rn1", 1)).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE"});
  ASSERT_TRUE(WaitUntil([&] { return timers_.pending() == 1; }));
  clock_.Advance(absl::Seconds(1));  // the longest jittered first wait
  EXPECT_EQ(timers_.RunDue(), 1);
  EXPECT_EQ(caller_.Next(), "A1");  // the second call is out
  ASSERT_TRUE(store_->WriteSync(TouchOp{"rn1", clock_.Now()}).status.ok());
  clock_.Advance(absl::Seconds(5));  // the lease is due for renewal
  engine_->RenewLeases();
  Settle("rn1");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE"});
  // No backoff wait (the clock does not move): called again at once, and only once.
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE: third"});
  // That answer's write is durable.
  ASSERT_TRUE(WaitUntil(
      [&] { return store_->Get("rn1")->branches[0].last_error == "UNAVAILABLE: third"; }));
  EXPECT_EQ(caller_.pending(), 0u);

  // Touched while waiting: a renewal starts the call (not one that runs while the engine
  // has not yet seen that write complete: renewals leave a transaction with a write in
  // flight alone). Starting the call writes nothing, so the next renewal finds the same
  // touch in the store, and must not take it for a new one.
  const absl::Time touched = clock_.Now();
  ASSERT_TRUE(store_->WriteSync(TouchOp{"rn1", touched}).status.ok());
  ASSERT_TRUE(WaitUntil([&] {
    clock_.Advance(absl::Seconds(4));  // a renewal is due
    engine_->RenewLeases();
    Settle("rn1");
    return caller_.pending() > 0;
  }));
  EXPECT_EQ(caller_.Next(), "A1");
  clock_.Advance(absl::Seconds(4));
  engine_->RenewLeases();
  Settle("rn1");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE"});
  ASSERT_TRUE(WaitUntil([&] { return timers_.pending() == 1; }));
  Settle("rn1");
  EXPECT_EQ(caller_.pending(), 0u);  // waits out its backoff
  EXPECT_EQ(QuerySync("rn1").branches[0].attempts, 4);
  // The answer's write replaced the touched time (the engine had taken the touch in), so
  // later renewals find nothing new.
  ASSERT_TRUE(WaitUntil([&] { return store_->Get("rn1")->next_retry_time > touched; }));
  ASSERT_NO_FATAL_FAILURE(SettleWrites("rn1"));  // else the renewal would skip the stale row
  clock_.Advance(absl::Seconds(4));
  engine_->RenewLeases();
  Settle("rn1");
  EXPECT_EQ(caller_.pending(), 0u);
}

// A RetryNow through another replica while the branch is being called, and an answer that
// asks for a wait long enough to leave memory (park_after): the answer's write keeps the
// touched next_retry_time and tells the engine, which calls again at once rather than leave
// the transaction waiting in the store until its lease runs out.
TEST_F(EngineTest, AWriteThatKeptATouchCallsAgainRatherThanLeaveMemory) {
  Transaction t = Saga("rn2", 1);
  t.options.retry_interval = absl::Hours(1);
  ASSERT_TRUE(SubmitSync(t).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  ASSERT_TRUE(store_->WriteSync(TouchOp{"rn2", clock_.Now()}).status.ok());
  caller_.Answer({CallOutcome::kOngoing, "not yet"});
  EXPECT_EQ(caller_.Next(), "A1");  // the clock did not move and nothing renewed
  EXPECT_TRUE(engine_->IsActive("rn2"));
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("rn2", GlobalStatus::kSucceeded));
  EXPECT_EQ(store_->Get("rn2")->branches[0].attempts, 2);
}

// A bulk RetryNow on the replica that runs a waiting transaction calls its branch again
// once: that transaction is left out of the touch written to the store for the other
// replicas' work, which this replica's next write would otherwise find and take for a second
// RetryNow.
TEST_F(EngineTest, ABulkRetryNowRetriesAWaitingBranchHereOnce) {
  ASSERT_NO_FATAL_FAILURE(
      SubmitWaitingInMemory("rn3", {CallOutcome::kError, "UNAVAILABLE: first"}));
  EXPECT_EQ(RetryAllWaitingSync(), 1);
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE: second"});
  ASSERT_TRUE(WaitUntil(
      [&] { return store_->Get("rn3")->branches[0].last_error == "UNAVAILABLE: second"; }));
  ASSERT_NO_FATAL_FAILURE(SettleWrites("rn3"));
  EXPECT_EQ(caller_.pending(), 0u);  // waits out its backoff
  EXPECT_EQ(QuerySync("rn3").branches[0].attempts, 2);
}

// Work in memory here whose lease ran out (never renewed: the database was out of reach, say)
// may belong to another replica by now: a bulk RetryNow touches it in the store, where its
// owner, whoever that is, finds the touch.
TEST_F(EngineTest, ABulkRetryNowTouchesInTheStoreWorkWhoseLeaseRanOut) {
  ASSERT_NO_FATAL_FAILURE(SubmitWaitingInMemory("rn4", {CallOutcome::kOngoing, "not yet"}));
  ASSERT_NO_FATAL_FAILURE(SettleWrites("rn4"));
  ASSERT_GT(store_->Get("rn4")->next_retry_time, clock_.Now() + absl::Seconds(11));
  clock_.Advance(absl::Seconds(11));  // past the 10 s lease
  EXPECT_EQ(RetryAllWaitingSync(), 1);
  EXPECT_EQ(store_->Get("rn4")->next_retry_time, clock_.Now());
}

// A bulk RetryNow whose store touch fails (the store is out of reach) says so, and has
// retried nothing here either: the caller may well send it again, and a first one that went
// halfway would then have called some branches twice in a row.
TEST_F(EngineTest, ABulkRetryNowThatCannotTouchTheStoreRetriesNothingHere) {
  ASSERT_NO_FATAL_FAILURE(
      SubmitWaitingInMemory("rn5", {CallOutcome::kError, "UNAVAILABLE: first"}));
  ASSERT_NO_FATAL_FAILURE(SettleWrites("rn5"));
  store_->Close();
  absl::StatusOr<int64_t> out = RetryAllWaitingAnswer();
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable) << out.status();
  Settle("rn5");
  EXPECT_EQ(caller_.pending(), 0u);
  EXPECT_EQ(QuerySync("rn5").branches[0].attempts, 1);
}

TEST_F(EngineTest, ResumeContinuesAStoredTransaction) {
  Transaction t = Saga("g4", 2);
  t.branches[0].status = BranchStatus::kSucceeded;
  t.branches[0].attempts = 1;
  t.create_time = clock_.Now();
  t.next_retry_time = clock_.Now();
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  EXPECT_TRUE(engine_->Resume(Claim("g4")));
  EXPECT_EQ(caller_.Next(), "A2");
  caller_.Answer({CallOutcome::kFailure, "ABORTED: no"});
  // A2 may have run before: both steps are compensated, in reverse.
  EXPECT_EQ(caller_.Next(), "C2");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_EQ(caller_.Next(), "C1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("g4", GlobalStatus::kFailed));
}

TEST_F(EngineTest, WorkLeasedByAnotherCoordinatorIsNeverCalledHere) {
  Transaction t = Saga("l1", 1);
  t.create_time = t.next_retry_time = clock_.Now();
  t.owner = "other";
  t.lease_expire = clock_.Now() + absl::Seconds(10);
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  EXPECT_TRUE(engine_->Resume(*store_->Get("l1")));
  Settle("l1");
  EXPECT_EQ(caller_.pending(), 0u);
}

TEST_F(EngineTest, CallsWaitForARenewalWhenTheLeaseRunsShort) {
  ASSERT_TRUE(SubmitSync(Saga("l2", 2)).ok());  // leased until now + 10s
  EXPECT_EQ(caller_.Next(), "A1");
  clock_.Advance(absl::Seconds(8));  // A2 would still run at 8s + 3s request_timeout > 10s
  caller_.Answer({CallOutcome::kSuccess, ""});
  ASSERT_TRUE(
      WaitUntil([&] { return store_->Get("l2")->branches[0].status == BranchStatus::kSucceeded; }));
  Settle("l2");
  EXPECT_EQ(caller_.pending(), 0u);
  engine_->RenewLeases();
  EXPECT_EQ(store_->Get("l2")->lease_expire, clock_.Now() + absl::Seconds(10));
  EXPECT_EQ(caller_.Next(), "A2");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("l2", GlobalStatus::kSucceeded));
}

TEST_F(EngineTest, WorkTakenOverByAnotherCoordinatorIsDroppedAtItsNextWrite) {
  ASSERT_TRUE(SubmitSync(Saga("l3", 2)).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  // We stall past our lease (no renewals); another replica claims the work.
  clock_.Advance(absl::Seconds(11));
  Claim("l3", "other");
  caller_.Answer({CallOutcome::kSuccess, ""});
  ASSERT_TRUE(WaitUntil([&] { return !engine_->IsActive("l3"); }));
  EXPECT_EQ(caller_.pending(), 0u);  // A2 is the new owner's to call
  Transaction stored = *store_->Get("l3");
  EXPECT_EQ(stored.owner, "other");
  EXPECT_EQ(stored.branches[0].status, BranchStatus::kPrepared);  // our write was fenced off
}

TEST_F(EngineTest, RenewalNoticesALostLeaseAndDropsTheWork) {
  ASSERT_TRUE(SubmitSync(Saga("l4", 1)).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  clock_.Advance(absl::Seconds(11));
  Claim("l4", "other");
  engine_->RenewLeases();
  ASSERT_TRUE(WaitUntil([&] { return !engine_->IsActive("l4"); }));
  // The late answer of the call made under our old lease changes nothing.
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_EQ(store_->Get("l4")->branches[0].status, BranchStatus::kPrepared);
  // Later, the other replica dies: we may claim the work again and finish it.
  clock_.Advance(absl::Seconds(11));
  EXPECT_TRUE(engine_->Resume(Claim("l4")));
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("l4", GlobalStatus::kSucceeded));
}

TEST_F(EngineTest, StaleSnapshotOfARetiredTransactionIsNotRunAgain) {
  ASSERT_TRUE(SubmitSync(Saga("g5", 1)).ok());
  Transaction snapshot = *store_->Get("g5");  // what a concurrent claim could have read
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  ASSERT_TRUE(WaitStatus("g5", GlobalStatus::kSucceeded));
  engine_->Resume(snapshot);
  EXPECT_FALSE(engine_->IsActive("g5"));  // activation is synchronous: it was refused
  EXPECT_EQ(caller_.pending(), 0u);
}

TEST_F(EngineTest, QueryReportsOnlyTheDurableGlobalStatus) {
  ASSERT_TRUE(SubmitSync(Saga("g6", 1)).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  EXPECT_EQ(QuerySync("g6").status, GlobalStatus::kSubmitted);
  caller_.Answer({CallOutcome::kFailure, "ABORTED: no"});
  EXPECT_EQ(caller_.Next(), "C1");  // only called once ABORTING is durable
  Transaction t = QuerySync("g6");
  EXPECT_EQ(t.status, GlobalStatus::kAborting);
  EXPECT_EQ(t.branches[0].status, BranchStatus::kFailed);
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("g6", GlobalStatus::kFailed));
}

TEST_F(EngineTest, FailedBackChecksBackOffAndAreForgottenWhenTheClientSubmits) {
  ASSERT_TRUE(PrepareSync(PreparedMsg("m1")).ok());
  clock_.Advance(absl::Seconds(5));  // its timeout_to_fail: recovery claims it
  EXPECT_TRUE(engine_->Resume(Claim("m1")));
  EXPECT_EQ(caller_.Next(), "QueryPrepared");
  EXPECT_EQ(caller_.Peek().op, "msg");
  EXPECT_EQ(caller_.Peek().branch_id, "00");
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE: down"});
  ASSERT_TRUE(WaitUntil([&] { return engine_->back_check_errors_tracked() == 1; }));
  // Postponed with backoff (at most retry_interval for the first error) and released.
  ASSERT_TRUE(WaitUntil([&] { return store_->Get("m1")->owner.empty(); }));
  Transaction stored = *store_->Get("m1");
  EXPECT_EQ(stored.status, GlobalStatus::kPrepared);
  EXPECT_GT(stored.next_retry_time, clock_.Now());
  EXPECT_LE(stored.next_retry_time, clock_.Now() + absl::Seconds(1));
  // Its client commits it after all: the count is moot and forgotten.
  Transaction commit;
  commit.gid = "m1";
  commit.trans_type = TransType::kMsg;
  auto r = SubmitSync(commit);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(engine_->back_check_errors_tracked(), 0u);
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("m1", GlobalStatus::kSucceeded));
}

TEST_F(EngineTest, BackCheckErrorOfAMsgResolvedElsewhereIsForgotten) {
  ASSERT_TRUE(PrepareSync(PreparedMsg("m2")).ok());
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(engine_->Resume(Claim("m2")));
  EXPECT_EQ(caller_.Next(), "QueryPrepared");
  // Meanwhile its client aborts it through another replica.
  UpdateOp abort;
  abort.gid = "m2";
  abort.expected_status = GlobalStatus::kPrepared;
  abort.new_status = GlobalStatus::kFailed;
  abort.update_time = abort.finish_time = clock_.Now();
  ASSERT_TRUE(store_->WriteSync(abort).status.ok());
  caller_.Answer({CallOutcome::kError, "UNAVAILABLE: down"});
  // The failure is counted, then forgotten when the postponement finds it resolved.
  ASSERT_TRUE(WaitUntil([&] { return engine_->back_check_errors_tracked() == 0; }));
  EXPECT_EQ(store_->Get("m2")->status, GlobalStatus::kFailed);
  EXPECT_EQ(caller_.pending(), 0u);
}

TEST_F(EngineTest, TccLeftPreparedPastItsTimeoutIsAbortedAndCancelled) {
  ASSERT_TRUE(PrepareSync(PreparedTcc("t1", absl::Seconds(5))).ok());
  absl::Notification registered;
  engine_->RegisterBranch({"t1", "01", "h:1/s.S/Confirm1", "h:1/s.S/Cancel1", "p"},
                          [&](const absl::Status& s) {
                            EXPECT_TRUE(s.ok()) << s;
                            registered.Notify();
                          });
  registered.WaitForNotification();
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(engine_->Resume(Claim("t1")));
  EXPECT_EQ(caller_.Next(), "Cancel1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("t1", GlobalStatus::kFailed));
  EXPECT_THAT(store_->Get("t1")->rollback_reason, ::testing::HasSubstr("timeout_to_fail of 5s"));
}

TEST_F(EngineTest, TccClaimedBeforeItsTimeoutIsReleasedUntilThen) {
  ASSERT_TRUE(PrepareSync(PreparedTcc("t2", absl::Seconds(30))).ok());
  // Due long before its timeout (as after a clock step on the database): claimed early.
  UpdateOp due;
  due.gid = "t2";
  due.expected_status = due.new_status = GlobalStatus::kPrepared;
  due.update_time = due.next_retry_time = clock_.Now();
  ASSERT_TRUE(store_->WriteSync(due).status.ok());
  EXPECT_TRUE(engine_->Resume(Claim("t2")));
  ASSERT_TRUE(WaitUntil([&] { return store_->Get("t2")->owner.empty(); }));
  Transaction stored = *store_->Get("t2");
  EXPECT_EQ(stored.status, GlobalStatus::kPrepared);
  EXPECT_EQ(stored.next_retry_time, stored.create_time + absl::Seconds(30));
}

// A saga of one step whose action answers "ongoing", asked again an hour later.
TEST_F(EngineTest, ATransactionWaitingLongLeavesMemoryAndRecoveryResumesItWhenDue) {
  Transaction t = Saga("p1", 1);
  t.options.retry_interval = absl::Hours(1);
  ASSERT_TRUE(SubmitSync(t).ok());
  EXPECT_EQ(caller_.Next(), "A1");
  absl::Time answered = clock_.Now();
  caller_.Answer({CallOutcome::kOngoing, "not yet"});
  ASSERT_TRUE(WaitUntil([&] { return !engine_->IsActive("p1"); }));
  EXPECT_EQ(engine_->active_count(), 0u);
  EXPECT_EQ(timers_.pending(), 0u);
  Transaction stored = *store_->Get("p1");
  EXPECT_EQ(stored.status, GlobalStatus::kSubmitted);
  EXPECT_EQ(stored.next_retry_time, answered + absl::Hours(1));
  EXPECT_EQ(stored.branches[0].attempts, 1);
  EXPECT_EQ(QuerySync("p1").branches[0].last_error, "not yet");
  // Not claimable before it is due.
  ClaimOp early;
  early.owner = "me";
  early.now = clock_.Now() + absl::Minutes(59);
  EXPECT_TRUE(store_->WriteSync(early).claimed.empty());
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(engine_->Resume(Claim("p1")));
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("p1", GlobalStatus::kSucceeded));
  EXPECT_EQ(store_->Get("p1")->branches[0].attempts, 2);
}

TEST_F(EngineTest, AShortWaitStaysInMemory) {
  ASSERT_NO_FATAL_FAILURE(SubmitWaitingInMemory("p2", {CallOutcome::kOngoing, ""}));
  EXPECT_TRUE(engine_->IsActive("p2"));
}

TEST_F(EngineTest, RetryNowBringsBackAParkedTransactionAtOnce) {
  ASSERT_NO_FATAL_FAILURE(SubmitAndPark("p3", 1));
  absl::Notification retried;
  engine_->RetryNow("p3", [&](const absl::Status& s) {
    EXPECT_TRUE(s.ok()) << s;
    retried.Notify();
  });
  ASSERT_TRUE(retried.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(caller_.Next(), "A1");  // the clock did not move: no claim, no lease run out
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("p3", GlobalStatus::kSucceeded));
}

// A msg's delay is when its client asked for it to be delivered, not a backoff: RetryNow,
// of its gid or of everything waiting, leaves it alone, in memory as submitted and read back
// from the store after a touch (as recovery would after a crash or another replica's
// RetryNow). It is delivered when the delay is over.
TEST_F(EngineTest, RetryNowLeavesAMsgsDeliveryDelayAlone) {
  auto delayed_msg = [&](const std::string& gid) {
    Transaction t = Msg(gid, GlobalStatus::kSubmitted);
    t.options.delay = absl::Seconds(5);
    return t;
  };
  ASSERT_TRUE(SubmitSync(delayed_msg("d1")).ok());
  Transaction stored = delayed_msg("d2");
  stored.create_time = stored.update_time = clock_.Now();
  stored.next_retry_time = clock_.Now();  // touched
  ASSERT_TRUE(store_->WriteSync(CreateOp{stored}).status.ok());
  EXPECT_TRUE(engine_->Resume(Claim("d2")));
  for (const char* gid : {"d1", "d2"}) {
    absl::Notification retried;
    engine_->RetryNow(gid, [&](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      retried.Notify();
    });
    retried.WaitForNotification();
  }
  EXPECT_EQ(RetryAllWaitingSync(), 2);
  Settle("d1");
  Settle("d2");
  EXPECT_EQ(caller_.pending(), 0u);
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(WaitUntil([&] {
    timers_.RunDue();
    return caller_.pending() == 2;
  }));
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  EXPECT_TRUE(WaitStatus("d1", GlobalStatus::kSucceeded));
  EXPECT_TRUE(WaitStatus("d2", GlobalStatus::kSucceeded));
}

TEST_F(EngineTest, ForceStopEndsAParkedTransaction) {
  ASSERT_NO_FATAL_FAILURE(SubmitAndPark("p4", 2));
  absl::Notification stopped;
  absl::StatusOr<Transaction> result;
  engine_->ForceStop("p4", "operator", [&](absl::StatusOr<Transaction> r) {
    result = std::move(r);
    stopped.Notify();
  });
  ASSERT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, GlobalStatus::kFailed);
  EXPECT_EQ(store_->Get("p4")->status, GlobalStatus::kFailed);
  EXPECT_EQ(caller_.pending(), 0u);
}

}  // namespace
}  // namespace dtm
