// GroupCommitter: turns many concurrent writers into few durable commits, as leveldb's
// write path does. Writers queue an operation; one writer thread takes everything pending
// (up to a batch limit), hands it to the backend's ApplyBatch (one database transaction, one
// commit) and then completes each writer with its own result.
//
// Thread-safe. Callbacks run on the writer thread, never under the queue lock.
#ifndef DTM_STORAGE_GROUP_COMMIT_H_
#define DTM_STORAGE_GROUP_COMMIT_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"

namespace dtm {

class GroupCommitter {
 public:
  // Applies all ops in one transaction; returns one result per op, in order. A failure of
  // the whole transaction is reported as the same error for every op.
  using ApplyBatch = std::function<std::vector<WriteResult>(std::vector<WriteOp*>&)>;

  GroupCommitter(ApplyBatch apply, size_t max_batch);
  ~GroupCommitter();  // Calls Stop().

  void Submit(WriteOp op, Store::Done done);
  // Drains the queue and joins the writer. Later Submits fail with UNAVAILABLE.
  void Stop();

  // Number of batches committed so far and ops in them (for tests and metrics).
  uint64_t batches() const;
  uint64_t ops() const;

 private:
  struct Pending {
    WriteOp op;
    Store::Done done;
  };
  void Run();

  const ApplyBatch apply_;
  const size_t max_batch_;
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t ops_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread writer_;
};

}  // namespace dtm

#endif  // DTM_STORAGE_GROUP_COMMIT_H_
