#include "server/runtime/timer_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "tests/fakes/fake_clock.h"

namespace dtm {
namespace {

TEST(TimerQueueTest, ManualModeFiresDueTimersInDeadlineOrder) {
  FakeClock clock;
  TimerQueue timers(&clock, /*manual=*/true);
  std::vector<int> fired;
  absl::Time t0 = clock.Now();
  timers.Schedule(t0 + absl::Seconds(3), [&] { fired.push_back(3); });
  timers.Schedule(t0 + absl::Seconds(1), [&] { fired.push_back(1); });
  auto cancelled = timers.Schedule(t0 + absl::Seconds(2), [&] { fired.push_back(2); });
  EXPECT_TRUE(timers.Cancel(cancelled));
  EXPECT_FALSE(timers.Cancel(cancelled));
  EXPECT_EQ(timers.RunDue(), 0);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(timers.RunDue(), 1);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(timers.RunDue(), 1);
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(TimerQueueTest, ThreadFiresAnEarlierTimerScheduledWhileWaiting) {
  RealClock clock;
  TimerQueue timers(&clock);
  absl::Notification late, early;
  timers.Schedule(clock.Now() + absl::Hours(1), [&] { late.Notify(); });
  timers.Schedule(clock.Now() + absl::Milliseconds(10), [&] { early.Notify(); });
  EXPECT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(late.HasBeenNotified());
  timers.Shutdown();  // drops the pending one
  EXPECT_FALSE(late.HasBeenNotified());
}

// A FakeClock that counts how often it was read.
class CountingClock final : public Clock {
 public:
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    ++reads_;
    return clock_.Now();
  }
  void Advance(absl::Duration d) { clock_.Advance(d); }
  int reads() {
    absl::MutexLock lock(&mu_);
    return reads_;
  }

 private:
  FakeClock clock_;
  absl::Mutex mu_;
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(TimerQueueTest, ThreadNoticesAClockThatJumpsAheadWithinASecond) {
  // The queue's clock may be an estimate of another machine's (the database's) that is
  // corrected without telling the queue: a due timer must still fire soon after, though the
  // thread went to sleep for what was then an hour.
  CountingClock clock;
  TimerQueue timers(&clock);
  absl::Notification fired;
  absl::Time at = clock.Now() + absl::Hours(1);
  int before = clock.reads();
  timers.Schedule(at, [&] { fired.Notify(); });
  // The thread has read the clock (an hour early) and sleeps.
  for (int i = 0; i < 10000 && clock.reads() == before; ++i) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_GT(clock.reads(), before);
  clock.Advance(absl::Hours(1));
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace dtm
