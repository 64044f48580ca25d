#include "storage/group_commit.h"

#include <utility>
#include <variant>

#include "absl/time/clock.h"
#include "server/runtime/thread_name.h"

namespace dtm {

GroupCommitter::GroupCommitter(ApplyBatch apply, size_t max_batch, absl::Duration idle_interval)
    : apply_(std::move(apply)), max_batch_(max_batch), idle_interval_(idle_interval) {
  completer_ = std::thread([this] {
    NameThisThread("dtm-store-done");
    RunCompletions();
  });
  writer_ = std::thread([this] {
    NameThisThread("dtm-store-write");
    Run();
  });
}

namespace {
// The committer whose writer or completion thread this is (set by each for itself).
thread_local const GroupCommitter* current_committer = nullptr;
}  // namespace

bool GroupCommitter::OnOwnThread() const { return current_committer == this; }

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Submit(WriteOp op, Store::Done done) {
  if (!std::holds_alternative<ClaimOp>(op)) {
    done = [this, done = std::move(done)](WriteResult r) mutable {
      PostCompletion(std::move(done), std::move(r));
    };
  }
  if (Enqueue(op, done)) return;
  WriteResult r;
  r.status = absl::UnavailableError("store is closed");
  done(std::move(r));
}

bool GroupCommitter::Enqueue(WriteOp& op, Store::Done& done) {
  bool wake = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    queue_.push_back(PendingWrite{std::move(op), std::move(done)});
    wake = queue_.size() == 1;
  }
  // The writer sleeps only on an empty queue: one wakeup per batch, not per write; after the
  // unlock, so that it does not wake only to wait for the mutex.
  if (wake) wait_.Notify();
  return true;
}

void GroupCommitter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  wait_.Notify();
  if (writer_.joinable()) writer_.join();
  // Every batch is done: the completion thread runs what the writer left it, then ends.
  {
    absl::MutexLock lock(&completions_mu_);
    completions_stopping_ = true;
  }
  completions_wait_.Notify();
  if (completer_.joinable()) completer_.join();
}

void GroupCommitter::PostCompletion(Store::Done done, WriteResult result) {
  completions_mu_.Lock();
  if (completer_gone_) {
    completions_mu_.Unlock();
    // After Stop (a backend completing what it held back, as PgStore's Close does): here.
    done(std::move(result));
    return;
  }
  completions_.emplace_back(std::move(done), std::move(result));
  completions_waiting_.fetch_add(1, std::memory_order_relaxed);
  const bool wake = completions_.size() == 1;
  completions_mu_.Unlock();
  if (wake) completions_wait_.Notify();
}

void GroupCommitter::RunCompletions() {
  current_committer = this;
  std::deque<std::pair<Store::Done, WriteResult>> ready;
  for (;;) {
    {
      absl::MutexLock lock(&completions_mu_);
      auto some = [this]() ABSL_SHARED_LOCKS_REQUIRED(completions_mu_) {
        return completions_stopping_ || !completions_.empty();
      };
      completions_wait_.For(completions_mu_, absl::InfiniteDuration(), some);
      if (completions_.empty()) {
        completer_gone_ = true;  // stopping, and nothing left
        return;
      }
      ready.swap(completions_);
    }
    for (auto& [done, result] : ready) {
      completions_waiting_.fetch_sub(1, std::memory_order_relaxed);
      done(std::move(result));
    }
    ready.clear();
  }
}

uint64_t GroupCommitter::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

uint64_t GroupCommitter::ops() const {
  absl::MutexLock lock(&mu_);
  return ops_;
}

Store::Backlog GroupCommitter::backlog() const {
  Store::Backlog b;
  {
    absl::MutexLock lock(&mu_);
    b.writes = static_cast<int64_t>(queue_.size());
  }
  b.completions = completions_waiting_.load(std::memory_order_relaxed);
  return b;
}

void GroupCommitter::Complete(std::vector<PendingWrite>& batch, std::vector<WriteResult> results) {
  for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

void GroupCommitter::set_observer(Store::CommitObserver observer) {
  absl::MutexLock lock(&mu_);
  observer_ = std::move(observer);
}

void GroupCommitter::Run() {
  current_committer = this;
  std::vector<PendingWrite> batch;
  Store::CommitObserver observer;
  for (;;) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      wait_.For(mu_, idle_interval_, ready);
      if (queue_.empty() && stopping_) return;  // drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!batch.empty()) {
        ++batches_;
        ops_ += batch.size();
      }
      if (!observer) observer = observer_;
    }
    const size_t size = batch.size();
    const absl::Time start = absl::Now();
    apply_(batch);
    if (size > 0 && observer) observer(absl::Now() - start, size);
  }
}

}  // namespace dtm
