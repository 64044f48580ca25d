#include "server/runtime/timer_queue.h"

#include <algorithm>
#include <vector>

#include "server/runtime/thread_name.h"

namespace dtm {
namespace {

// The longest the timer thread sleeps without reading the clock again (see Run).
constexpr absl::Duration kMaxWait = absl::Seconds(1);

}  // namespace

TimerQueue::TimerQueue(Clock* clock, bool manual) : clock_(clock) {
  if (!manual) {
    thread_ = std::thread([this] {
      NameThisThread("dtm-timers");
      Run();
    });
  }
}

TimerQueue::~TimerQueue() { Shutdown(); }

TimerQueue::TimerId TimerQueue::Schedule(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  if (timers_.empty() || when < timers_.begin()->first.first) {
    ++generation_;
    wait_.Notify();
  }
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  deadlines_.emplace(id, when);
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = deadlines_.find(id);
  if (it == deadlines_.end()) return false;
  timers_.erase(std::make_pair(it->second, id));
  deadlines_.erase(it);
  return true;
}

size_t TimerQueue::pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

int TimerQueue::RunDue() {
  std::vector<std::function<void()>> due;
  absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    while (!timers_.empty() && timers_.begin()->first.first <= now) {
      deadlines_.erase(timers_.begin()->first.second);
      due.push_back(std::move(timers_.begin()->second));
      timers_.erase(timers_.begin());
    }
  }
  for (auto& fn : due) fn();
  return static_cast<int>(due.size());
}

void TimerQueue::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    timers_.clear();
    deadlines_.clear();
    ++generation_;
  }
  wait_.Notify();
  if (thread_.joinable()) thread_.join();
}

void TimerQueue::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      uint64_t gen = generation_;
      auto changed = [this, gen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || generation_ != gen;
      };
      if (timers_.empty()) {
        wait_.Until(mu_, changed);
        continue;
      }
      absl::Time next = timers_.begin()->first.first;
      absl::Time now = clock_->Now();
      if (next > now) {
        // The wait runs on the local clock, the deadline is on `clock_`, which may be the
        // database's (a local estimate re-measured every few seconds): look again at least
        // every kMaxWait so that a correction of that estimate delays a timer by no more.
        wait_.For(mu_, std::min(next - now, kMaxWait), changed);
        continue;
      }
    }
    RunDue();
  }
}

}  // namespace dtm
