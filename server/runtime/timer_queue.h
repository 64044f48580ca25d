// TimerQueue: one ordered set of deadlines served by a single thread (no sleeping thread per
// timer). Callbacks run on the timer thread and must only post work elsewhere.
//
// In manual mode (no thread) nothing fires until RunDue() is called: tests drive it together
// with a FakeClock. Thread-safe.
#ifndef DTM_SERVER_RUNTIME_TIMER_QUEUE_H_
#define DTM_SERVER_RUNTIME_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/runtime/clock.h"
#include "server/runtime/monotonic_wait.h"

namespace dtm {

class TimerQueue {
 public:
  using TimerId = uint64_t;
  // `manual`: no thread; callers fire timers with RunDue().
  explicit TimerQueue(Clock* clock, bool manual = false);
  ~TimerQueue();  // Calls Shutdown().

  // Runs `fn` at or after `when` (by the clock). Returns an id for Cancel.
  TimerId Schedule(absl::Time when, std::function<void()> fn);
  // Returns true if the timer was pending and will not run.
  bool Cancel(TimerId id);
  // Fires every timer due at the clock's current time; returns how many fired.
  int RunDue();
  // Drops pending timers and joins the thread.
  void Shutdown();
  size_t pending() const;

 private:
  void Run();

  Clock* const clock_;
  mutable absl::Mutex mu_;
  // Keyed by (deadline, id) so equal deadlines keep scheduling order.
  std::map<std::pair<absl::Time, TimerId>, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  std::map<TimerId, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumps when an earlier timer arrives
  MonotonicWait wait_;  // the timer thread's (notified when generation_ or stopping_ change)
  std::thread thread_;
};

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_TIMER_QUEUE_H_
