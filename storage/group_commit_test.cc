#include "storage/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace dtm {
namespace {

TEST(GroupCommitterTest, BatchesWhatQueuedWhileTheWriterWasBusy) {
  absl::Notification release;
  std::atomic<int> applied_batches{0};
  std::vector<size_t> sizes;
  GroupCommitter gc(
      [&](std::vector<PendingWrite>& batch) {
        if (applied_batches++ == 0) release.WaitForNotification();  // hold the first batch
        sizes.push_back(batch.size());
        GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
      },
      /*max_batch=*/64);
  std::atomic<int> done{0};
  gc.Submit(PurgeOp{}, [&](const WriteResult&) { done++; });
  // Wait until the writer holds the first batch, then queue 100 more.
  while (applied_batches.load() == 0) std::this_thread::yield();
  for (int i = 0; i < 100; ++i) gc.Submit(PurgeOp{}, [&](const WriteResult&) { done++; });
  release.Notify();
  gc.Stop();
  EXPECT_EQ(done.load(), 101);
  ASSERT_EQ(sizes.size(), 3u);  // 1, then 64 + 36 (bounded batches)
  EXPECT_EQ(sizes[0], 1u);
  EXPECT_EQ(sizes[1], 64u);
  EXPECT_EQ(sizes[2], 36u);
  EXPECT_EQ(gc.batches(), 3u);
  EXPECT_EQ(gc.ops(), 101u);
}

// What waits for the writer, then what waits for the completion thread, is counted.
TEST(GroupCommitterTest, TheBacklogCountsWritesAndCallbacksStillWaiting) {
  absl::Notification writer_held, release_writer, completer_held, release_completer;
  std::atomic<int> applied{0};
  GroupCommitter gc(
      [&](std::vector<PendingWrite>& batch) {
        if (applied.fetch_add(static_cast<int>(batch.size())) == 0) {
          writer_held.Notify();
          release_writer.WaitForNotification();
        }
        GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
      },
      /*max_batch=*/64);
  EXPECT_EQ(gc.backlog().writes, 0);
  EXPECT_EQ(gc.backlog().completions, 0);
  gc.Submit(PurgeOp{}, [&](const WriteResult&) {
    completer_held.Notify();
    release_completer.WaitForNotification();
  });
  writer_held.WaitForNotification();
  for (int i = 0; i < 5; ++i) gc.Submit(PurgeOp{}, [](const WriteResult&) {});
  EXPECT_EQ(gc.backlog().writes, 5);  // the batch being applied is not counted
  release_writer.Notify();
  // The first callback holds the completion thread; the other five come to wait behind it.
  completer_held.WaitForNotification();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (gc.backlog().completions < 5 && absl::Now() < deadline) std::this_thread::yield();
  EXPECT_EQ(gc.backlog().completions, 5);
  EXPECT_EQ(gc.backlog().writes, 0);
  release_completer.Notify();
  gc.Stop();
  EXPECT_EQ(gc.backlog().completions, 0);
}

TEST(GroupCommitterTest, EachWriterGetsItsOwnResult) {
  GroupCommitter gc(
      [](std::vector<PendingWrite>& batch) {
        std::vector<WriteResult> out(batch.size());
        for (size_t i = 0; i < batch.size(); ++i) {
          out[i].purged = std::get<PurgeOp>(batch[i].op).limit;
        }
        GroupCommitter::Complete(batch, std::move(out));
      },
      16);
  std::vector<int64_t> got(20, -1);
  std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i) {
    PurgeOp op;
    op.limit = i;
    gc.Submit(op, [&, i](const WriteResult& r) {
      got[i] = r.purged;
      done++;
    });
  }
  gc.Stop();
  EXPECT_EQ(done.load(), 20);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(got[i], i);
}

TEST(GroupCommitterTest, IdleTicksRunWithAnEmptyBatch) {
  std::atomic<int> idle{0};
  GroupCommitter gc(
      [&](std::vector<PendingWrite>& batch) {
        if (batch.empty()) idle++;
        GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
      },
      16, absl::Milliseconds(1));
  while (idle.load() < 3) std::this_thread::yield();
  gc.Stop();
  EXPECT_EQ(gc.batches(), 0u);  // ticks are not batches
}

TEST(GroupCommitterTest, CallbacksRunInOrderOffTheWriterWhichGoesOn) {
  std::atomic<int> applied{0};
  std::thread::id writer;
  GroupCommitter gc(
      [&](std::vector<PendingWrite>& batch) {
        writer = std::this_thread::get_id();
        applied += static_cast<int>(batch.size());
        GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
      },
      /*max_batch=*/1);
  absl::Notification release;
  std::vector<int> order;  // written by the completion thread only
  std::thread::id completer;
  gc.Submit(PurgeOp{}, [&](const WriteResult&) {
    completer = std::this_thread::get_id();
    order.push_back(0);
    release.WaitForNotification();  // the first callback holds the completion thread
  });
  for (int i = 1; i <= 3; ++i) {
    gc.Submit(PurgeOp{}, [&, i](const WriteResult&) { order.push_back(i); });
  }
  // The writer commits all four batches while the first callback still runs (had it to run
  // them itself, it would stop at the first: the test fails at the deadline, not hangs).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (applied.load() < 4 && absl::Now() < deadline) std::this_thread::yield();
  EXPECT_EQ(applied.load(), 4);
  release.Notify();
  gc.Stop();  // runs what is left of the callbacks before it returns
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_NE(completer, writer);
}

TEST(GroupCommitterTest, AClaimCompletesOnTheWriterBeforeTheNextBatch) {
  std::vector<std::string> events;  // written by the writer only, and read after Stop
  std::thread::id writer;
  GroupCommitter gc(
      [&](std::vector<PendingWrite>& batch) {
        writer = std::this_thread::get_id();
        for (const PendingWrite& w : batch) {
          events.push_back(std::holds_alternative<ClaimOp>(w.op) ? "apply claim" : "apply");
        }
        GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
      },
      /*max_batch=*/1);
  std::thread::id claim_thread;
  absl::Notification claimed;
  gc.Submit(ClaimOp{}, [&](const WriteResult&) {
    claim_thread = std::this_thread::get_id();
    events.push_back("claim done");
    claimed.Notify();
  });
  gc.Submit(PurgeOp{}, [](const WriteResult&) {});
  gc.Stop();
  ASSERT_TRUE(claimed.HasBeenNotified());
  EXPECT_EQ(claim_thread, writer);
  EXPECT_EQ(events, (std::vector<std::string>{"apply claim", "claim done", "apply"}));
}

TEST(GroupCommitterTest, AClaimsCallbackDoesNotWaitForEarlierOnesQueued) {
  GroupCommitter gc(
      [](std::vector<PendingWrite>& batch) {
        GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
      },
      /*max_batch=*/1);
  absl::Notification release;
  absl::Notification claimed;
  gc.Submit(PurgeOp{}, [&](const WriteResult&) { release.WaitForNotification(); });
  gc.Submit(ClaimOp{}, [&](const WriteResult&) { claimed.Notify(); });
  // The completion thread is held by the first callback; the claim's completes regardless.
  EXPECT_TRUE(claimed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  release.Notify();
  gc.Stop();
}

// A backend that applies every write at once, counting them in `applied`.
auto CountingApply(std::atomic<int>& applied) {
  return [&applied](std::vector<PendingWrite>& batch) {
    applied += static_cast<int>(batch.size());
    GroupCommitter::Complete(batch, std::vector<WriteResult>(batch.size()));
  };
}

TEST(GroupCommitterTest, AWriteAfterStopFailsUnavailableWithoutBeingApplied) {
  std::atomic<int> applied{0};
  GroupCommitter gc(CountingApply(applied), 16);
  gc.Stop();
  for (bool claim : {false, true}) {
    absl::Status status;
    bool called = false;
    WriteOp op = claim ? WriteOp(ClaimOp{}) : WriteOp(PurgeOp{});
    gc.Submit(op, [&](const WriteResult& r) {
      status = r.status;
      called = true;
    });
    // Both threads are gone: the callback ran before Submit returned, on this thread.
    ASSERT_TRUE(called) << (claim ? "claim" : "purge");
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(status.message(), "store is closed");
  }
  EXPECT_EQ(applied.load(), 0);
}

// Writes racing with Stop: each callback runs exactly once, with success exactly for the
// writes the writer applied, and UNAVAILABLE for the others; Stop returns only after all of
// those accepted before it have run.
TEST(GroupCommitterTest, WritesRacingWithStopEachEndOnceAppliedOrRefused) {
  std::atomic<int> applied{0};
  GroupCommitter gc(CountingApply(applied),
                    /*max_batch=*/8);
  constexpr int kWrites = 2000;
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::atomic<int> submitted{0};
  std::thread submitter([&] {
    for (int i = 0; i < kWrites; ++i) {
      gc.Submit(PurgeOp{}, [&](const WriteResult& r) {
        if (r.status.ok()) {
          ok++;
        } else if (r.status.code() == absl::StatusCode::kUnavailable) {
          refused++;
        } else {
          other++;
        }
      });
      submitted++;
    }
  });
  // Stop once some writes are in, while the submitter is still going (or just done).
  while (submitted.load() < kWrites / 4) std::this_thread::yield();
  gc.Stop();
  const int applied_at_stop = applied.load();
  submitter.join();
  EXPECT_EQ(ok.load() + refused.load() + other.load(), kWrites);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ok.load(), applied_at_stop);  // nothing applied after Stop returned
  EXPECT_EQ(applied.load(), applied_at_stop);
  EXPECT_GE(ok.load(), kWrites / 4);  // what was in before Stop was applied, not refused
}

TEST(GroupCommitterTest, ACallbackAfterStopRunsAtOnce) {
  std::vector<PendingWrite> held;  // a backend keeping a write's callback for later
  GroupCommitter gc([&](std::vector<PendingWrite>& batch) { held.swap(batch); }, 16);
  bool done = false;
  gc.Submit(PurgeOp{}, [&](const WriteResult& r) { done = r.status.ok(); });
  gc.Stop();  // the writer applied the queued batch before it ended
  ASSERT_EQ(held.size(), 1u);
  GroupCommitter::Complete(held, std::vector<WriteResult>(1));
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace dtm
