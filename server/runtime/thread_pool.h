// ThreadPool: a fixed set of worker threads draining one FIFO task queue.
// Strand: runs the tasks posted to it one at a time, in order, on a ThreadPool (the serial
// token that serialises all events of one transaction).
//
// Both are thread-safe. Tasks must not wait on the network, on timers or on other tasks;
// the only waits allowed are short local store reads (Query, List: point lookups and pages
// of at most 1,000 rows). Writes never block a task: they are queued to the group commit.
#ifndef DTM_SERVER_RUNTIME_THREAD_POOL_H_
#define DTM_SERVER_RUNTIME_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/runtime/executor.h"

namespace dtm {

class ThreadPool final : public Executor {
 public:
  // `name`: each worker's thread name (NameThisThread).
  explicit ThreadPool(int threads, const std::string& name = "dtm-pool");
  ~ThreadPool();  // Runs what is queued, then joins.

  // Queues `task`; dropped once Shutdown has begun.
  void Post(std::function<void()> task) override { TryPost(std::move(task)); }
  // Queues `task`; false (and `task` destroyed) once Shutdown has begun.
  bool TryPost(std::function<void()> task);
  // Runs every queued task and joins the workers. Later Posts are dropped.
  void Shutdown();
  bool stopping() const;

 private:
  void Work();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

class Strand final : public Executor, public std::enable_shared_from_this<Strand> {
 public:
  explicit Strand(ThreadPool* pool) : pool_(pool) {}
  // Queues `task`; tasks of one strand never run concurrently and run in posting order.
  // Once the pool is shutting down: a strand that is draining finishes its queue, one that is
  // idle drops what is posted to it (like the pool), with everything the tasks captured.
  void Post(std::function<void()> task) override;
  // An idle strand runs `task` on the calling thread at once (and what is posted meanwhile
  // goes to the pool after it); a busy one queues it. Once the pool is shutting down, as Post.
  void Execute(std::function<void()> task) override;

 private:
  void Drain();
  void DropQueued();

  ThreadPool* const pool_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_THREAD_POOL_H_
