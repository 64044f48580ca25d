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

}  // namespace
}  // namespace dtm
