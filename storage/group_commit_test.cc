#include "storage/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"

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

}  // namespace
}  // namespace dtm
