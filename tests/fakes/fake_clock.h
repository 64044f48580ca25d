// FakeClock: a Clock for tests that moves only when told to.
#ifndef DTM_TESTS_FAKES_FAKE_CLOCK_H_
#define DTM_TESTS_FAKES_FAKE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/runtime/clock.h"

namespace dtm {

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm

#endif  // DTM_TESTS_FAKES_FAKE_CLOCK_H_
