#include "storage/group_commit.h"

#include <utility>

namespace dtm {

GroupCommitter::GroupCommitter(ApplyBatch apply, size_t max_batch)
    : apply_(std::move(apply)), max_batch_(max_batch) {
  writer_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Submit(WriteOp op, Store::Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(op), std::move(done)});
      return;
    }
  }
  WriteResult r;
  r.status = absl::UnavailableError("store is closed");
  done(std::move(r));
}

void GroupCommitter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

uint64_t GroupCommitter::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

uint64_t GroupCommitter::ops() const {
  absl::MutexLock lock(&mu_);
  return ops_;
}

void GroupCommitter::Run() {
  std::vector<Pending> batch;
  std::vector<WriteOp*> ops;
  for (;;) {
    batch.clear();
    ops.clear();
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (Pending& p : batch) ops.push_back(&p.op);
    std::vector<WriteResult> results = apply_(ops);
    {
      absl::MutexLock lock(&mu_);
      ++batches_;
      ops_ += batch.size();
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
  }
}

}  // namespace dtm
