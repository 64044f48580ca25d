// Recovery over a real SQLite store, the real engine, a fake branch caller and a fake clock:
// a backlog of due transactions is claimed no faster than the engine's working set allows.
#include "server/recovery/recovery.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/engine/engine_fixture.h"
#include "server/engine/test_transactions.h"

namespace dtm {
namespace {

class RecoveryTest : public test::EngineFixture {
 protected:
  // `n` one-step sagas left by a coordinator that is gone, due `after` from now.
  void Backlog(int n, absl::Duration after = absl::ZeroDuration()) {
    for (int i = 0; i < n; ++i) {
      Transaction t = test::MakeTestSaga(absl::StrCat("r", i), 1);
      t.create_time = clock_.Now();
      t.next_retry_time = clock_.Now() + after;
      t.owner = "gone";
      t.lease_expire = clock_.Now();
      ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
    }
  }
};

TEST_F(RecoveryTest, ABacklogIsClaimedNoFasterThanTheWorkingSetAllows) {
  Backlog(10);
  RecoveryOptions o;
  o.batch = 3;
  o.max_active = 4;
  Recovery recovery(o, store_.get(), engine_.get(), &clock_);
  // Work in memory that recovery did not resume does not count against its bound.
  Transaction fresh = test::MakeTestSaga("fresh", 1);
  absl::Notification submitted;
  engine_->Submit(fresh, [&](const absl::StatusOr<SubmitResult>& r) {
    EXPECT_TRUE(r.ok()) << r.status();
    submitted.Notify();
  });
  submitted.WaitForNotification();
  EXPECT_EQ(caller_.Next(), "A1");
  EXPECT_EQ(recovery.RunOnce(), 3);  // a claim of at most `batch`
  EXPECT_EQ(recovery.RunOnce(), 1);  // up to the bound
  EXPECT_EQ(engine_->resumed_count(), 4u);
  EXPECT_EQ(engine_->active_count(), 5u);
  EXPECT_EQ(recovery.RunOnce(), 0);             // nothing ended: nothing more claimed
  caller_.Answer({CallOutcome::kSuccess, ""});  // "fresh" ends
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(caller_.Next(), "A1");
    caller_.Answer({CallOutcome::kSuccess, ""});
  }
  for (int i = 0; i < 2000 && engine_->active_count() > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(engine_->active_count(), 0u);
  EXPECT_EQ(engine_->resumed_count(), 0u);
  EXPECT_EQ(recovery.RunOnce(), 3);
  EXPECT_EQ(recovery.RunOnce(), 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(caller_.Next(), "A1");
    caller_.Answer({CallOutcome::kSuccess, ""});
  }
  for (int i = 0; i < 2000 && engine_->active_count() > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(recovery.RunOnce(), 2);  // the rest
  EXPECT_EQ(recovery.RunOnce(), 0);
}

TEST_F(RecoveryTest, ANudgeClaimsWithoutWaitingForTheNextTick) {
  RecoveryOptions o;
  o.interval = absl::Hours(1);
  Backlog(1, absl::Minutes(1));
  Recovery recovery(o, store_.get(), engine_.get(), &clock_);
  recovery.Start();  // its first round finds nothing due, then it would sleep for an hour
  clock_.Advance(absl::Minutes(1));
  recovery.Nudge();
  EXPECT_EQ(caller_.Next(), "A1");
  caller_.Answer({CallOutcome::kSuccess, ""});
  recovery.Stop();
}

}  // namespace
}  // namespace dtm
