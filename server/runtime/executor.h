// Executor: runs posted tasks later, on some other thread: the ThreadPool (any worker) or a
// Strand (one task at a time, in order). Code that must hop off a thread it may not block,
// such as the store's writer or completion thread, takes an Executor and does not care which.
#ifndef DTM_SERVER_RUNTIME_EXECUTOR_H_
#define DTM_SERVER_RUNTIME_EXECUTOR_H_

#include <functional>
#include <utility>

namespace dtm {

// Thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void Post(std::function<void()> task) = 0;
  // Runs `task` now, on the calling thread, when that keeps the executor's guarantees (an
  // idle Strand), else Posts it: saves a hand-over to another thread (a wake-up and a context
  // switch) on hot paths. Only for callers whose thread may run short non-blocking work.
  virtual void Execute(std::function<void()> task) { Post(std::move(task)); }
};

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_EXECUTOR_H_
