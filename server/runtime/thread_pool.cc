#include "server/runtime/thread_pool.h"

#include <utility>

#include "server/runtime/thread_name.h"

namespace dtm {

ThreadPool::ThreadPool(int threads, const std::string& name) {
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this, name] {
      NameThisThread(name);
      Work();
    });
  }
}

ThreadPool::~ThreadPool() { Shutdown(); }

bool ThreadPool::TryPost(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  tasks_.push_back(std::move(task));
  return true;
}

bool ThreadPool::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void ThreadPool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void ThreadPool::Work() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void Strand::Post(std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
    if (running_) return;
    running_ = true;
  }
  // A stopped pool never runs this strand again: keeping the tasks would keep what they
  // captured alive for good (a task holding the owner of this strand is a reference cycle).
  if (!pool_->TryPost([self = shared_from_this()] { self->Drain(); })) DropQueued();
}

void Strand::Execute(std::function<void()> task) {
  if (pool_->stopping()) {
    Post(std::move(task));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (running_) {
      tasks_.push_back(std::move(task));
      return;
    }
    running_ = true;
  }
  task();
  // What was posted while `task` ran waits for a worker, as after any Post.
  {
    absl::MutexLock lock(&mu_);
    if (tasks_.empty()) {
      running_ = false;
      return;
    }
  }
  if (!pool_->TryPost([self = shared_from_this()] { self->Drain(); })) DropQueued();
}

void Strand::Drain() {
  for (;;) {
    // Runs a bounded number of tasks, then yields the worker so one busy strand cannot
    // starve the others.
    for (int i = 0; i < 64; ++i) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&mu_);
        if (tasks_.empty()) {
          running_ = false;
          return;
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
    // A pool shutting down runs what was queued but takes nothing new: finish here.
    if (pool_->TryPost([self = shared_from_this()] { self->Drain(); })) return;
  }
}

void Strand::DropQueued() {
  // The tasks may hold the last references to this strand: destroy them outside the lock,
  // with this strand kept alive until they are gone.
  std::shared_ptr<Strand> self = shared_from_this();
  std::deque<std::function<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(tasks_);
    running_ = false;
  }
}

}  // namespace dtm
