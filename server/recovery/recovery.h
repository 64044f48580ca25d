// Recovery: the loop that makes "nothing is lost" true. Every `interval` it renews the leases
// of the engine's work, then claims the transactions that are due (next_retry_time passed) and
// unleased (their owner's lease ran out: it crashed or lost the database, or it left them in
// the store to wait) and hands them to the engine; every `purge_interval` it deletes finished
// transactions older than `retention` (zero retention: keep forever).
//
// Claims stop while `max_active` transactions recovery resumed are still in memory
// (Engine::resumed_count), so that a backlog (a restart after an outage, a bulk RetryNow) is
// worked off at the engine's pace with a bounded working set; while one remains, the loop
// comes back after `backlog_pause` instead of `interval`.
//
// Owns one thread, joined by Stop(). Thread-safe.
#ifndef DTM_SERVER_RECOVERY_RECOVERY_H_
#define DTM_SERVER_RECOVERY_RECOVERY_H_

#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/runtime/clock.h"
#include "server/runtime/monotonic_wait.h"
#include "storage/store.h"

namespace dtm {

struct RecoveryOptions {
  absl::Duration interval = absl::Seconds(1);
  absl::Duration lease = absl::Seconds(10);
  int batch = 500;
  // dtmd: the smaller of this and --max_active_transactions. Plenty to keep branches busy
  // (20,000 resumed a second at 10 ms each need 200), and a bound on what a backlog of any
  // size costs in memory: a transaction being resumed holds its state and, mostly, a branch
  // call in flight (tens of KB in gRPC's buffers).
  size_t max_active = 1000;
  absl::Duration backlog_pause = absl::Milliseconds(1);
  absl::Duration retention = absl::Hours(24 * 7);
  absl::Duration purge_interval = absl::Minutes(10);
};

class Recovery {
 public:
  Recovery(RecoveryOptions options, Store* store, Engine* engine, Clock* clock);
  ~Recovery();  // Calls Stop().

  void Start();
  void Stop();
  // Claims now rather than at the next tick (work was just made due in the store).
  void Nudge();
  // One claim (of at most `batch`); returns how many transactions were handed to the engine.
  // The loop comes back after `backlog_pause` while claims come back full, so that lease
  // renewals (once per `interval`) go on between claims however large the backlog.
  int RunOnce();
  // One purge round; returns how many transactions were deleted.
  int64_t PurgeOnce();

 private:
  void Loop();

  const RecoveryOptions options_;
  Store* const store_;
  Engine* const engine_;
  Clock* const clock_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool nudged_ ABSL_GUARDED_BY(mu_) = false;
  MonotonicWait wait_;      // the loop's pause (a wall-clock step cannot stretch it)
  std::string last_error_;  // of the last claim; only the loop thread touches it
  bool backlog_ = false;    // the last round left due work unclaimed; loop thread only
  std::thread thread_;
};

}  // namespace dtm

#endif  // DTM_SERVER_RECOVERY_RECOVERY_H_
