#include "server/runtime/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/runtime/thread_name.h"

namespace dtm {
namespace {

TEST(ThreadPoolTest, WorkersCarryThePoolsName) {
  ThreadPool pool(2, "dtm-test-pool");
  std::string seen;
  absl::Notification done;
  pool.Post([&] {
    seen = ThisThreadName();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(seen, "dtm-test-pool");
}

TEST(StrandTest, RunsTasksOneAtATimeInPostingOrder) {
  ThreadPool pool(4);
  auto strand = std::make_shared<Strand>(&pool);
  std::vector<int> order;  // only touched by the strand's tasks
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false};
  absl::Notification done;
  for (int i = 0; i < 500; ++i) {
    strand->Post([&, i] {
      if (running.fetch_add(1) != 0) overlapped = true;
      order.push_back(i);
      running.fetch_sub(1);
      if (i == 499) done.Notify();
    });
  }
  done.WaitForNotification();
  EXPECT_FALSE(overlapped);
  ASSERT_EQ(order.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(order[i], i);
}

// A task posted to a strand whose pool has stopped never runs; it must not be kept either,
// or whatever it captured (often the strand's owner) would live forever.
TEST(StrandTest, TaskPostedAfterThePoolStoppedIsDroppedWithWhatItCaptured) {
  ThreadPool pool(1);
  auto strand = std::make_shared<Strand>(&pool);
  pool.Shutdown();
  auto captured = std::make_shared<int>(7);
  std::weak_ptr<int> watch = captured;
  bool ran = false;
  strand->Post([captured = std::move(captured), &ran] { ran = true; });
  EXPECT_TRUE(watch.expired());
  EXPECT_FALSE(ran);
}

// A strand with more queued tasks than one turn runs (64) when the pool stops still runs them
// all: the pool's Shutdown runs every task queued before it.
TEST(StrandTest, AStrandDrainingWhenThePoolStopsFinishesItsQueue) {
  ThreadPool pool(1);
  auto strand = std::make_shared<Strand>(&pool);
  absl::Notification started;
  absl::Notification release;
  std::atomic<int> ran{0};
  strand->Post([&] {
    started.Notify();
    release.WaitForNotification();
  });
  started.WaitForNotification();
  for (int i = 0; i < 200; ++i) strand->Post([&] { ran.fetch_add(1); });
  std::thread stopper([&] { pool.Shutdown(); });
  // Shutdown has begun once the pool refuses work.
  while (pool.TryPost([] {})) absl::SleepFor(absl::Milliseconds(1));
  release.Notify();
  stopper.join();
  EXPECT_EQ(ran.load(), 200);
}

}  // namespace
}  // namespace dtm
