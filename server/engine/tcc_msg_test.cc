// Tests of the pure tcc and msg state machines: no threads, no sockets, time passed in.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/engine/machine.h"

namespace dtm {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);
const absl::Duration kLease = absl::Seconds(10);

BranchResult Success() { return {CallOutcome::kSuccess, ""}; }
BranchResult Failure() { return {CallOutcome::kFailure, "ABORTED: no"}; }
BranchResult Ongoing() { return {CallOutcome::kOngoing, "FAILED_PRECONDITION: later"}; }
BranchResult Error() { return {CallOutcome::kError, "UNAVAILABLE"}; }

// A tcc (or an xa) in `status` with `n` registered branches "01".."0n".
Transaction MakeTcc(GlobalStatus status, int n, TransType type = TransType::kTcc) {
  Transaction t;
  t.gid = "t";
  t.trans_type = type;
  t.status = status;
  t.create_time = kStart;
  t.options.retry_interval = absl::Seconds(1);
  t.options.max_retry_interval = absl::Seconds(4);
  for (int i = 0; i < n; ++i) {
    for (BranchOp op : {CommitOp(type), RollbackOp(type)}) {
      Branch b;
      b.branch_id = SagaBranchId(i);
      b.op = op;
      b.target = absl::StrCat("h:1/s.S/", BranchOpName(op), i + 1);
      t.branches.push_back(b);
    }
  }
  return t;
}

Transaction MakeMsg(int n, bool concurrent = false) {
  Transaction t;
  t.gid = "m";
  t.trans_type = TransType::kMsg;
  t.status = GlobalStatus::kSubmitted;
  t.create_time = kStart;
  t.options.concurrent = concurrent;
  t.options.retry_interval = absl::Seconds(1);
  t.options.max_retry_interval = absl::Seconds(4);
  t.options.retry_limit = 1;  // ignored: a message never fails
  for (int i = 0; i < n; ++i) {
    Branch b;
    b.branch_id = SagaBranchId(i);
    b.op = BranchOp::kAction;
    b.target = absl::StrCat("h:1/s.S/A", i + 1);
    t.branches.push_back(b);
  }
  return t;
}

// Drives a state like the engine: writes succeed at once, calls are answered by `answer`
// (by name, e.g. "confirm01"), time moves to the next wake-up when nothing is due.
struct Driver {
  explicit Driver(TransState st) : s(std::move(st)) {}
  std::function<BranchResult(const std::string&)> answer = [](const std::string&) {
    return Success();
  };
  std::string Name(int i) const {
    return absl::StrCat(BranchOpName(s.txn.branches[i].op), s.txn.branches[i].branch_id);
  }
  void Run() {
    for (int guard = 0; guard < 1000; ++guard) {
      Decision d = Decide(s, now, kLease);
      last = d;
      if (d.persist) OnPersisted(s, *d.persist, absl::OkStatus(), now);
      for (int i : d.calls) calls.push_back(Name(i));
      for (int i : d.calls) OnBranchResult(s, i, answer(Name(i)), now, 0.0);
      if (d.done) return;
      if (!d.persist && d.calls.empty()) {
        if (!d.wake) return;
        now = *d.wake;
      }
    }
    FAIL() << "did not settle";
  }
  TransState s;
  absl::Time now = kStart;
  std::vector<std::string> calls;
  Decision last;
};

TEST(TccTest, SubmittedConfirmsInReverseRegistrationOrderOneAtATime) {
  TransState st = NewTransState(MakeTcc(GlobalStatus::kSubmitted, 3));
  Decision first = Decide(st, kStart, kLease);
  ASSERT_THAT(first.calls, ElementsAre(4));  // the last registered branch's confirm
  OnBranchResult(st, 4, Success(), kStart, 0);
  Decision second = Decide(st, kStart, kLease);
  EXPECT_THAT(second.calls, IsEmpty());  // not before confirm03's success is durable
  ASSERT_TRUE(second.persist);
  OnPersisted(st, *second.persist, absl::OkStatus(), kStart);
  EXPECT_THAT(Decide(st, kStart, kLease).calls, ElementsAre(2));

  Driver d(NewTransState(MakeTcc(GlobalStatus::kSubmitted, 3)));
  d.Run();
  EXPECT_THAT(d.calls, ElementsAre("confirm03", "confirm02", "confirm01"));
  EXPECT_EQ(d.s.txn.status, GlobalStatus::kSucceeded);
  EXPECT_TRUE(d.last.done);
}

TEST(TccTest, AbortingCancelsEveryRegisteredBranchInReverse) {
  Driver d(NewTransState(MakeTcc(GlobalStatus::kAborting, 3)));
  d.Run();
  EXPECT_THAT(d.calls, ElementsAre("cancel03", "cancel02", "cancel01"));
  EXPECT_EQ(d.s.txn.status, GlobalStatus::kFailed);
}

TEST(XaTest, SubmittedCommitsAndAbortingRollsBackEveryRegisteredBranch) {
  Driver commit(NewTransState(MakeTcc(GlobalStatus::kSubmitted, 2, TransType::kXa)));
  commit.Run();
  EXPECT_THAT(commit.calls, ElementsAre("commit02", "commit01"));
  EXPECT_EQ(commit.s.txn.status, GlobalStatus::kSucceeded);

  Driver rollback(NewTransState(MakeTcc(GlobalStatus::kAborting, 2, TransType::kXa)));
  rollback.Run();
  EXPECT_THAT(rollback.calls, ElementsAre("rollback02", "rollback01"));
  EXPECT_EQ(rollback.s.txn.status, GlobalStatus::kFailed);
}

TEST(XaTest, ARefusedCommitIsRetriedNeverFailed) {
  // A prepared local transaction cannot be refused: FAILURE there is a branch bug, retried.
  Driver d(NewTransState(MakeTcc(GlobalStatus::kSubmitted, 1, TransType::kXa)));
  int refusals = 2;
  d.answer = [&](const std::string&) { return refusals-- > 0 ? Failure() : Success(); };
  d.Run();
  EXPECT_THAT(d.calls, ElementsAre("commit01", "commit01", "commit01"));
  EXPECT_EQ(d.s.txn.status, GlobalStatus::kSucceeded);
}

TEST(TccTest, NoBranchesEndsAtOnce) {
  Driver ok(NewTransState(MakeTcc(GlobalStatus::kSubmitted, 0)));
  ok.Run();
  EXPECT_EQ(ok.s.txn.status, GlobalStatus::kSucceeded);
  Driver aborted(NewTransState(MakeTcc(GlobalStatus::kAborting, 0)));
  aborted.Run();
  EXPECT_EQ(aborted.s.txn.status, GlobalStatus::kFailed);
}

TEST(TccTest, ConfirmFailureIsRetriedWithBackoffAndStaysVisible) {
  Driver d(NewTransState(MakeTcc(GlobalStatus::kSubmitted, 2)));
  int failures = 0;
  std::vector<absl::Time> at;
  d.answer = [&](const std::string& n) {
    if (n != "confirm02") return Success();
    at.push_back(d.now);
    return ++failures <= 4 ? Failure() : Success();
  };
  d.Run();
  EXPECT_EQ(d.s.txn.status, GlobalStatus::kSucceeded);  // never aborted by a confirm
  EXPECT_THAT(d.calls, ElementsAre("confirm02", "confirm02", "confirm02", "confirm02", "confirm02",
                                   "confirm01"));
  // Backoff doubles from retry_interval (1s) and is capped at max_retry_interval (4s).
  ASSERT_EQ(at.size(), 5u);
  EXPECT_EQ(at[1] - at[0], absl::Milliseconds(500));  // jitter 0: half the nominal 1s
  EXPECT_EQ(at[4] - at[3], absl::Seconds(2));         // half the capped 4s
  const Branch& b = d.s.txn.branches[2];
  EXPECT_EQ(b.attempts, 5);
  EXPECT_EQ(b.last_error, "ABORTED: no");
}

TEST(TccTest, OngoingConfirmIsAskedAgainAfterRetryInterval) {
  Driver d(NewTransState(MakeTcc(GlobalStatus::kSubmitted, 1)));
  std::vector<absl::Time> at;
  d.answer = [&](const std::string&) {
    at.push_back(d.now);
    return at.size() < 3 ? Ongoing() : Success();
  };
  d.Run();
  ASSERT_EQ(at.size(), 3u);
  EXPECT_EQ(at[1] - at[0], absl::Seconds(1));
  EXPECT_EQ(at[2] - at[1], absl::Seconds(1));
  EXPECT_EQ(d.s.txn.status, GlobalStatus::kSucceeded);
}

TEST(TccTest, PreparedIsLeftToTheClientAndTheEngine) {
  TransState st = NewTransState(MakeTcc(GlobalStatus::kPrepared, 2));
  Decision d = Decide(st, kStart + absl::Hours(1), kLease);
  EXPECT_THAT(d.calls, IsEmpty());
  EXPECT_FALSE(d.persist);
  EXPECT_FALSE(d.done);
  AbortTrans(st, "not for a tcc");  // only sagas abort themselves
  EXPECT_EQ(st.txn.status, GlobalStatus::kPrepared);
}

TEST(MsgTest, DeliversInOrderEachAfterThePreviousIsDurable) {
  TransState st = NewTransState(MakeMsg(3));
  EXPECT_THAT(Decide(st, kStart, kLease).calls, ElementsAre(0));
  OnBranchResult(st, 0, Success(), kStart, 0);
  Decision d = Decide(st, kStart, kLease);
  EXPECT_THAT(d.calls, IsEmpty());
  OnPersisted(st, *d.persist, absl::OkStatus(), kStart);
  EXPECT_THAT(Decide(st, kStart, kLease).calls, ElementsAre(1));

  Driver all(NewTransState(MakeMsg(3)));
  all.Run();
  EXPECT_THAT(all.calls, ElementsAre("action01", "action02", "action03"));
  EXPECT_EQ(all.s.txn.status, GlobalStatus::kSucceeded);
}

TEST(MsgTest, ConcurrentDeliversAllAtOnce) {
  TransState st = NewTransState(MakeMsg(3, /*concurrent=*/true));
  EXPECT_THAT(Decide(st, kStart, kLease).calls, ElementsAre(0, 1, 2));
}

TEST(MsgTest, FailureNeverFailsAMessage) {
  Driver d(NewTransState(MakeMsg(2)));
  int n = 0;
  d.answer = [&](const std::string& name) {
    if (name != "action01") return Success();
    ++n;
    return n <= 3 ? Failure() : (n == 4 ? Error() : Success());
  };
  d.Run();
  EXPECT_EQ(d.s.txn.status, GlobalStatus::kSucceeded);
  EXPECT_EQ(d.s.txn.rollback_reason, "");
  EXPECT_THAT(d.calls,
              ElementsAre("action01", "action01", "action01", "action01", "action01", "action02"));
}

TEST(MsgTest, DelayHoldsDeliveryUntilItsTime) {
  TransState st = NewTransState(MakeMsg(1));
  HoldCallsUntil(st, kStart + absl::Seconds(5));
  Decision d = Decide(st, kStart, kLease);
  EXPECT_THAT(d.calls, IsEmpty());
  ASSERT_TRUE(d.wake);
  EXPECT_EQ(*d.wake, kStart + absl::Seconds(5));
  EXPECT_THAT(Decide(st, kStart + absl::Seconds(5), kLease).calls, ElementsAre(0));
}

// The delay is the client's schedule, not a backoff: RetryNow keeps it.
TEST(MsgTest, RetryNowKeepsTheDelay) {
  TransState st = NewTransState(MakeMsg(1));
  HoldCallsUntil(st, kStart + absl::Hours(1));
  RetryAllNow(st);
  Decision d = Decide(st, kStart, kLease);
  EXPECT_THAT(d.calls, IsEmpty());
  ASSERT_TRUE(d.wake);
  EXPECT_EQ(*d.wake, kStart + absl::Hours(1));
  EXPECT_THAT(Decide(st, kStart + absl::Hours(1), kLease).calls, ElementsAre(0));
}

// --- PREPARED tcc and msg ---------------------------------------------------------------------

Transaction Prepared(Transaction t) {
  t.status = GlobalStatus::kPrepared;
  t.options.timeout_to_fail = absl::Seconds(35);
  t.query_prepared = "h:1/s.S/QueryPrepared";
  return t;
}

TEST(PreparedTest, TccClaimedBeforeItsTimeoutWaitsForIt) {
  Transaction tcc = Prepared(MakeTcc(GlobalStatus::kPrepared, 1));
  PreparedStep step = OnPreparedTccDue(tcc, kStart + absl::Seconds(10));
  EXPECT_FALSE(step.leaves());
  EXPECT_EQ(step.retry_at, kStart + absl::Seconds(35));
}

TEST(PreparedTest, TccPastItsTimeoutIsAbortedSayingWhy) {
  Transaction tcc = Prepared(MakeTcc(GlobalStatus::kPrepared, 1));
  PreparedStep step = OnPreparedTccDue(tcc, kStart + absl::Seconds(35));
  EXPECT_EQ(step.to, GlobalStatus::kAborting);  // its cancels run
  EXPECT_THAT(step.reason, ::testing::HasSubstr("timeout_to_fail of 35s passed while PREPARED"));
}

TEST(PreparedTest, XaPastItsTimeoutIsAbortedLikeATcc) {
  Transaction xa = Prepared(MakeTcc(GlobalStatus::kPrepared, 1, TransType::kXa));
  EXPECT_FALSE(OnPreparedTccDue(xa, kStart + absl::Seconds(10)).leaves());
  PreparedStep step = OnPreparedTccDue(xa, kStart + absl::Seconds(35));
  EXPECT_EQ(step.to, GlobalStatus::kAborting);  // its rollbacks run
}

TEST(PreparedTest, BackCheckSuccessDeliversTheMessage) {
  PreparedStep step = OnBackCheckResult(Prepared(MakeMsg(1)), Success(), 0, kStart, 0.5);
  EXPECT_EQ(step.to, GlobalStatus::kSubmitted);
  EXPECT_EQ(step.reason, "");
}

TEST(PreparedTest, BackCheckFailureDropsTheMessageWithTheBranchsReason) {
  PreparedStep step = OnBackCheckResult(Prepared(MakeMsg(1)), Failure(), 0, kStart, 0.5);
  EXPECT_EQ(step.to, GlobalStatus::kFailed);
  EXPECT_THAT(step.reason, ::testing::HasSubstr("h:1/s.S/QueryPrepared"));
  EXPECT_THAT(step.reason, ::testing::HasSubstr("rolled back: ABORTED: no"));
}

TEST(PreparedTest, BackCheckOngoingAsksAgainAfterRetryIntervalWithoutBackoff) {
  Transaction msg = Prepared(MakeMsg(1));
  PreparedStep step = OnBackCheckResult(msg, Ongoing(), 0, kStart, 0.5);
  EXPECT_FALSE(step.leaves());
  EXPECT_EQ(step.retry_at, kStart + absl::Seconds(1));
}

TEST(PreparedTest, BackCheckErrorsBackOffFromRetryIntervalUpToTheMaximum) {
  Transaction msg = Prepared(MakeMsg(1));  // retry_interval 1s, max_retry_interval 4s
  auto wait = [&](int errors, double jitter) {
    PreparedStep step = OnBackCheckResult(msg, Error(), errors, kStart, jitter);
    EXPECT_FALSE(step.leaves());
    return step.retry_at - kStart;
  };
  EXPECT_EQ(wait(1, 1.0), absl::Seconds(1));
  EXPECT_EQ(wait(1, 0.0), absl::Milliseconds(500));  // jitter never below half
  EXPECT_EQ(wait(2, 1.0), absl::Seconds(2));
  EXPECT_EQ(wait(3, 1.0), absl::Seconds(4));
  EXPECT_EQ(wait(10, 1.0), absl::Seconds(4));  // capped
}

TEST(PreparedTest, AbortCancelsATccAndDropsAMsg) {
  EXPECT_EQ(AbortedStatus(TransType::kTcc), GlobalStatus::kAborting);
  EXPECT_EQ(AbortedStatus(TransType::kMsg), GlobalStatus::kFailed);
  EXPECT_EQ(AbortedStatus(TransType::kXa), GlobalStatus::kAborting);
}

TEST(PreparedTest, AbortAgainIsFineOnlyForAnAbortedOne) {
  Transaction tcc = MakeTcc(GlobalStatus::kAborting, 1);
  EXPECT_TRUE(CheckAbortAgain(tcc, TransType::kTcc).ok());  // still cancelling
  tcc.status = GlobalStatus::kFailed;
  EXPECT_TRUE(CheckAbortAgain(tcc, TransType::kTcc).ok());
  tcc.status = GlobalStatus::kSucceeded;
  absl::Status late = CheckAbortAgain(tcc, TransType::kTcc);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.message()), ::testing::HasSubstr("already SUCCEEDED"));
  tcc.status = GlobalStatus::kSubmitted;  // confirming: too late to abort
  EXPECT_EQ(CheckAbortAgain(tcc, TransType::kTcc).code(), absl::StatusCode::kFailedPrecondition);

  Transaction xa = MakeTcc(GlobalStatus::kAborting, 1, TransType::kXa);
  EXPECT_TRUE(CheckAbortAgain(xa, TransType::kXa).ok());  // still rolling back
  EXPECT_EQ(CheckAbortAgain(xa, TransType::kTcc).code(), absl::StatusCode::kFailedPrecondition);

  Transaction msg = MakeMsg(1);
  msg.status = GlobalStatus::kFailed;
  EXPECT_TRUE(CheckAbortAgain(msg, TransType::kMsg).ok());
  absl::Status other = CheckAbortAgain(msg, TransType::kTcc);
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.message()), ::testing::HasSubstr("is a msg transaction"));
}

TEST(PreparedTest, PrepareAgainIsARepeatOnlyWhilePreparedAndOfTheSameType) {
  Transaction tcc = MakeTcc(GlobalStatus::kPrepared, 0);
  EXPECT_TRUE(CheckPrepareAgain(tcc, TransType::kTcc).ok());
  EXPECT_EQ(CheckPrepareAgain(tcc, TransType::kMsg).code(), absl::StatusCode::kAlreadyExists);
  tcc.status = GlobalStatus::kSubmitted;
  absl::Status late = CheckPrepareAgain(tcc, TransType::kTcc);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.message()), ::testing::HasSubstr("needs a new gid"));
}

}  // namespace
}  // namespace dtm
