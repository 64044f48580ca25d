#include "server/recovery/recovery.h"

#include <algorithm>

#include "absl/synchronization/notification.h"
#include "server/runtime/log.h"
#include "server/runtime/thread_name.h"

namespace dtm {

Recovery::Recovery(RecoveryOptions options, Store* store, Engine* engine, Clock* clock)
    : options_(options), store_(store), engine_(engine), clock_(clock) {}

Recovery::~Recovery() { Stop(); }

void Recovery::Start() {
  thread_ = std::thread([this] {
    NameThisThread("dtm-recovery");
    Loop();
  });
}

void Recovery::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  wait_.Notify();
  if (thread_.joinable()) thread_.join();
}

void Recovery::Nudge() {
  absl::MutexLock lock(&mu_);
  nudged_ = true;
  wait_.Notify();
}

int Recovery::RunOnce() {
  backlog_ = false;
  // Resumed transactions still in memory: work recovery handed over and the engine has not
  // finished or parked yet. Other work in memory (new Submits, short waits) does not count.
  size_t resumed = engine_->resumed_count();
  if (resumed >= options_.max_active) {
    backlog_ = true;  // maybe: a round after they left tells
    return 0;
  }
  ClaimOp op;
  op.owner = engine_->owner();
  op.now = clock_->Now();
  op.limit = static_cast<int>(
      std::min<size_t>(static_cast<size_t>(options_.batch), options_.max_active - resumed));
  op.lease = options_.lease;
  // The claimed snapshots go to the engine in the claim's own completion, on the store's
  // writer thread, before any later write is applied. A transaction this coordinator still
  // runs (claimable because its lease lapsed) is then either still in memory, and Resume
  // keeps the running one, or every write it made is in the snapshot. Handed over later, a
  // snapshot could predate a write the running one made just before it ended or left memory,
  // and be run again from that older state (a saga's next action called after it had
  // decided to roll back).
  absl::Notification claimed;
  absl::Status status;
  size_t count = 0;
  int handed = 0;
  store_->Write(op, [&](WriteResult r) {
    status = r.status;
    count = r.claimed.size();
    if (status.ok()) {
      for (Transaction& t : r.claimed) {
        if (engine_->Resume(std::move(t))) ++handed;
      }
    }
    claimed.Notify();
  });
  claimed.WaitForNotification();
  if (!status.ok()) {
    std::string error = status.ToString();
    if (error != last_error_) {  // once per distinct failure, not every tick
      Log(LogLevel::kWarning, "recovery claim failed").Field("error", error);
      last_error_ = std::move(error);
    }
    return 0;
  }
  last_error_.clear();
  engine_->metrics()->RecoveryClaimed(handed);
  backlog_ = static_cast<int>(count) == op.limit;
  return handed;
}

int64_t Recovery::PurgeOnce() {
  if (options_.retention <= absl::ZeroDuration()) return 0;
  int64_t total = 0;
  for (;;) {
    PurgeOp op;
    op.finished_before = clock_->Now() - options_.retention;
    WriteResult r = store_->WriteSync(op);
    if (!r.status.ok()) {
      Log(LogLevel::kWarning, "purge failed").Field("error", r.status.ToString());
      return total;
    }
    total += r.purged;
    if (r.purged < op.limit) return total;
  }
}

void Recovery::Loop() {
  absl::Time next_purge = clock_->Now();
  absl::Time next_renewal = clock_->Now();
  absl::Time next_log = clock_->Now();
  int64_t resumed = 0;  // not logged yet: one line per interval at most, the first at once
  for (;;) {
    if (clock_->Now() >= next_renewal) {  // once per interval, also while a backlog is worked
      engine_->RenewLeases();
      next_renewal = clock_->Now() + options_.interval;
    }
    resumed += RunOnce();
    if (resumed > 0 && clock_->Now() >= next_log) {
      Log(LogLevel::kInfo, "recovery resumed transactions").Field("count", resumed);
      resumed = 0;
      next_log = clock_->Now() + options_.interval;
    }
    if (clock_->Now() >= next_purge) {
      int64_t purged = PurgeOnce();
      if (purged > 0) {
        Log(LogLevel::kInfo, "purged finished transactions").Field("count", purged);
      }
      next_purge = clock_->Now() + options_.purge_interval;
    }
    absl::MutexLock lock(&mu_);
    auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || nudged_; };
    absl::Duration pause =
        backlog_ ? std::min(options_.backlog_pause, options_.interval) : options_.interval;
    wait_.For(mu_, pause, wake);
    if (stopping_) return;
    nudged_ = false;
  }
}

}  // namespace dtm
