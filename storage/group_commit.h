// GroupCommitter: turns many concurrent writers into few durable commits, as leveldb's
// write path does. Writers queue an operation; one writer thread takes everything pending
// (up to a batch limit), hands it to the backend's ApplyBatch (one database transaction, one
// commit) and then completes each writer with its own result.
//
// Callbacks run on a completion thread of the committer's own, in the order of the commits
// (a claim's excepted, below), never under a lock: the writer goes on to the next batch as soon as
// one is durable, while the callbacks of the last (which start branch calls and answer clients,
// tens of microseconds each) run beside it. Run on the writer, they held every write queued behind
// them for the whole batch's callbacks, which made a commit's latency at moderate load about
// twice the commit itself. A claim's callback is the exception: it runs on the writer, before
// any later write is applied (recovery hands the claimed snapshots to the engine there; see
// recovery.cc), so it may run before callbacks of earlier commits still queued for the
// completion thread. Thread-safe; Stop must not be called from a callback.
#ifndef DTM_STORAGE_GROUP_COMMIT_H_
#define DTM_STORAGE_GROUP_COMMIT_H_

#include <atomic>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/runtime/monotonic_wait.h"
#include "storage/store.h"

namespace dtm {

// A queued write and whom to tell once it is durable.
struct PendingWrite {
  WriteOp op;
  Store::Done done;
};

class GroupCommitter {
 public:
  // Applies all ops of `batch` in one transaction and runs each `done` with its own result.
  // A failure of the database (or of the connection to it) is the same error for every op;
  // an op the database refuses fails alone, and the others are applied again without it
  // (the engine retries failed writes: one bad op must not fail its neighbours every time).
  // A backend may keep some `done`s to run later, e.g. after resolving a commit whose outcome
  // is unknown; it moves them out of `batch`.
  using ApplyBatch = std::function<void(std::vector<PendingWrite>& batch)>;

  // `idle`, if set, runs on the writer thread after `idle_interval` without writes (with an
  // empty batch, for backend housekeeping such as reconnecting).
  GroupCommitter(ApplyBatch apply, size_t max_batch,
                 absl::Duration idle_interval = absl::InfiniteDuration());
  // Runs every op of `batch` through `results` (one per op, in order).
  static void Complete(std::vector<PendingWrite>& batch, std::vector<WriteResult> results);
  ~GroupCommitter();  // Calls Stop().

  void Submit(WriteOp op, Store::Done done);
  // Runs after each batch (Store::set_commit_observer).
  void set_observer(Store::CommitObserver observer);
  // Drains the queue, joins the writer, then runs the callbacks still queued and joins the
  // completion thread. Later Submits fail with UNAVAILABLE (on the completion thread while it
  // runs, at once after).
  void Stop();

  // Number of batches committed so far and ops in them (for tests and metrics).
  uint64_t batches() const;
  uint64_t ops() const;
  // How far behind each thread is, for metrics: writes waiting for the writer (the batch it
  // is applying not counted), and results of finished writes whose callbacks wait for the
  // completion thread (the one running not counted; a claim's, run on the writer, never are).
  Store::Backlog backlog() const;
  // Whether the calling thread is the writer or the completion thread.
  bool OnOwnThread() const;

 private:
  void Run();
  // The completion thread: runs queued callbacks in order until Stop and the queue is empty.
  void RunCompletions();
  // Queues `done` with `result` for the completion thread; runs it here once that stopped.
  void PostCompletion(Store::Done done, WriteResult result);
  // Queues the write (taking op and done) and wakes the writer if it may sleep; false, with
  // both untouched, once the committer stopped.
  bool Enqueue(WriteOp& op, Store::Done& done);

  const ApplyBatch apply_;
  const size_t max_batch_;
  const absl::Duration idle_interval_;
  mutable absl::Mutex mu_;
  std::deque<PendingWrite> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t ops_ ABSL_GUARDED_BY(mu_) = 0;
  Store::CommitObserver observer_ ABSL_GUARDED_BY(mu_);
  MonotonicWait wait_;  // the writer's (notified when queue_ gets its first op or stopping_)

  absl::Mutex completions_mu_;
  std::deque<std::pair<Store::Done, WriteResult>> completions_ ABSL_GUARDED_BY(completions_mu_);
  bool completions_stopping_ ABSL_GUARDED_BY(completions_mu_) = false;
  bool completer_gone_ ABSL_GUARDED_BY(completions_mu_) = false;
  MonotonicWait completions_wait_;  // the completion thread's
  // Queued callbacks not started yet, those the completion thread took out of completions_
  // to run included (it takes all that are queued at once).
  std::atomic<int64_t> completions_waiting_{0};

  std::thread completer_;
  std::thread writer_;
};

}  // namespace dtm

#endif  // DTM_STORAGE_GROUP_COMMIT_H_
