// MonotonicWait: a timed wait for a condition guarded by an absl::Mutex, timed by the
// monotonic clock.
//
// Why not absl::Mutex::AwaitWithTimeout: the Abseil dtmd builds with (Debian 12's 20220623)
// turns every timed wait into a futex wait until an absolute CLOCK_REALTIME deadline. When the
// wall clock is stepped back (NTP, an operator, a VM restored) while such a wait runs, the wait
// lasts as much longer as the step: an hour back, and the recovery loop stops renewing leases
// (the other replicas take the work over from a live process), the timer queue stops firing
// retries, the store's writer stops its idle work, for an hour. std::condition_variable_any's
// wait_for waits on the steady clock (glibc's pthread_cond_clockwait with CLOCK_MONOTONIC),
// which no step moves.
//
// Unlike Await, which re-evaluates its condition whenever the mutex is released, this waits
// for a Notify(): whoever changes what a waiter waits for calls Notify() after the change
// (with the mutex held, or after releasing it: either way no wakeup is lost, because the
// waiter checks the condition with the mutex held before it sleeps). Thread-safe.
#ifndef DTM_SERVER_RUNTIME_MONOTONIC_WAIT_H_
#define DTM_SERVER_RUNTIME_MONOTONIC_WAIT_H_

#include <chrono>
#include <condition_variable>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dtm {

class MonotonicWait {
 public:
  // With `mu` held (it is released while waiting and held again on return): waits until
  // `done()` is true or `timeout` has passed on the monotonic clock; returns done().
  template <typename Done>
  bool For(absl::Mutex& mu, absl::Duration timeout, Done done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Lockable lockable{mu};
    if (timeout > absl::Hours(24 * 365)) {  // steady_clock::now() + that could overflow
      cv_.wait(lockable, done);
      return true;
    }
    return cv_.wait_for(lockable, absl::ToChronoNanoseconds(timeout), done);
  }
  // With `mu` held: waits until `done()` is true, however long.
  template <typename Done>
  void Until(absl::Mutex& mu, Done done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Lockable lockable{mu};
    cv_.wait(lockable, done);
  }
  // Wakes every waiter, to look at its condition again.
  void Notify() { cv_.notify_all(); }

 private:
  // absl::Mutex under the names std::condition_variable_any calls.
  struct Lockable {
    absl::Mutex& mu;
    void lock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu.Lock(); }
    void unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu.Unlock(); }
  };
  std::condition_variable_any cv_;
};

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_MONOTONIC_WAIT_H_
