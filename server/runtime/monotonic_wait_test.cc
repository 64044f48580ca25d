#include "server/runtime/monotonic_wait.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace dtm {
namespace {

TEST(MonotonicWaitTest, ReturnsAtOnceWhenTheConditionHolds) {
  absl::Mutex mu;
  MonotonicWait wait;
  absl::MutexLock lock(&mu);
  const absl::Time start = absl::Now();
  EXPECT_TRUE(wait.For(mu, absl::Hours(1), [] { return true; }));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST(MonotonicWaitTest, TimesOutWithTheConditionFalse) {
  absl::Mutex mu;
  MonotonicWait wait;
  absl::MutexLock lock(&mu);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(wait.For(mu, absl::Milliseconds(50), [] { return false; }));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
}

TEST(MonotonicWaitTest, ANotifyAfterAChangeWakesTheWaiter) {
  absl::Mutex mu;
  MonotonicWait wait;
  bool done = false;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(20));
    absl::MutexLock lock(&mu);
    done = true;
    wait.Notify();
  });
  {
    absl::MutexLock lock(&mu);
    // Long enough that only the notification can end it within the test's timeout.
    EXPECT_TRUE(
        wait.For(mu, absl::Hours(1), [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return done; }));
    wait.Until(mu, [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return done; });
  }
  setter.join();
}

}  // namespace
}  // namespace dtm
