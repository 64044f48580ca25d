// FakeBranchCaller: a BranchCaller for engine tests. It records each call and leaves it
// pending until the test answers it, so a test decides the order and the outcome of every
// branch call. Thread-safe.
#ifndef DTM_TESTS_FAKES_FAKE_BRANCH_CALLER_H_
#define DTM_TESTS_FAKES_FAKE_BRANCH_CALLER_H_

#include <deque>
#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/branch/branch_caller.h"

namespace dtm {

class FakeBranchCaller : public BranchCaller {
 public:
  void Call(BranchCall call, std::function<void(BranchResult)> done) override {
    absl::MutexLock lock(&mu_);
    pending_.push_back({std::move(call), std::move(done)});
  }
  void Shutdown() override {}

  // Waits for the next call and returns the name of its method ("A1").
  std::string Next() {
    absl::MutexLock lock(&mu_);
    auto has = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !pending_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&has), absl::Seconds(10))) return "<none>";
    const std::string& t = pending_.front().first.target;
    return t.substr(t.rfind('/') + 1);
  }
  // The oldest pending call.
  BranchCall Peek() {
    absl::MutexLock lock(&mu_);
    return pending_.front().first;
  }
  void Answer(BranchResult r) {
    std::function<void(BranchResult)> done;
    {
      absl::MutexLock lock(&mu_);
      done = std::move(pending_.front().second);
      pending_.pop_front();
    }
    done(std::move(r));
  }
  size_t pending() {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }

 private:
  absl::Mutex mu_;
  std::deque<std::pair<BranchCall, std::function<void(BranchResult)>>> pending_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm

#endif  // DTM_TESTS_FAKES_FAKE_BRANCH_CALLER_H_
