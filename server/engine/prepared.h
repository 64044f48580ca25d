// PreparedProtocol: the store-driven half of the Engine, for tcc and msg transactions while
// they are PREPARED. A PREPARED transaction lives only in the store, so that any replica can
// take its client's next request: Prepare creates it, RegisterBranch adds a tcc's branches,
// Submit and Abort move it out of PREPARED with a compare-and-set, and a claim by recovery
// after its timeout_to_fail aborts a tcc or back-checks a msg (query_prepared). What the
// answers and outcomes mean is decided by the pure rules in machine.h; once a transaction
// leaves PREPARED for a status with work to do, the Runner drives it.
//
// Thread-safe. Every method returns at once; callbacks run later on a pool thread.
#ifndef DTM_SERVER_ENGINE_PREPARED_H_
#define DTM_SERVER_ENGINE_PREPARED_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/branch/branch_caller.h"
#include "server/engine/engine_types.h"
#include "server/engine/machine.h"
#include "server/engine/runner.h"
#include "server/runtime/clock.h"
#include "server/runtime/thread_pool.h"
#include "storage/store.h"

namespace dtm {

// Consecutive failed back-checks per msg gid, which set the backoff of the next one. Kept in
// memory only (after a restart the backoff starts over, which is harmless). An entry is
// forgotten when its msg is resolved on this coordinator, and otherwise once no back-check of
// it failed for the `forget_after` given with its last failure: by then the msg has been
// resolved elsewhere (its client, another replica), and nothing else would remove it.
// Thread-safe.
class BackCheckErrors {
 public:
  // Records a failed back-check of `gid` at `now`; returns how many failed in a row.
  int Failed(const std::string& gid, absl::Time now, absl::Duration forget_after);
  void Forget(const std::string& gid);
  size_t size() const;

 private:
  struct Entry {
    int count = 0;
    absl::Time forget_at;
  };
  // Drops expired entries, at most once per doubling of the map, so that the work is
  // amortised over the failures that grew it.
  void PruneLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t prune_at_ ABSL_GUARDED_BY(mu_) = 64;
};

class PreparedProtocol {
 public:
  PreparedProtocol(const EngineOptions& options, Store* store, BranchCaller* caller, Clock* clock,
                   ThreadPool* pool, Runner* runner);

  // See Engine::Prepare, RegisterBranch, Abort.
  void Prepare(Transaction txn, StatusDone done, const std::string& actor = "");
  void RegisterBranch(BranchRegistration registration, StatusDone done);
  void Abort(const std::string& gid, TransType type, const std::string& reason, SubmitDone done,
             const std::string& actor = "");
  // Phase 2 of a PREPARED tcc or msg: commits it unless it moved on, then answers like a
  // repeated Submit.
  void Submit(const std::string& gid, TransType type, bool wait, SubmitDone done,
              const std::string& actor = "");
  // A PREPARED transaction claimed by recovery: its timeout passed, or RetryNow made it due.
  void OnDue(Transaction txn);

  const BackCheckErrors& back_check_errors() const { return back_check_errors_; }

 private:
  // Moves the PREPARED `prepared` to `to` with a compare-and-set (fenced by `fence` when set,
  // else on whichever replica), taking it over; a non-terminal `to` is then run here from a
  // fresh read, which holds every branch registered before the change. `then` gets the
  // write's status and the active entry (null if `to` is terminal or the write failed).
  // `cause` goes into the log line: why the coordinator moved it ("" when its client did).
  void Leave(const Transaction& prepared, GlobalStatus to, const std::string& reason,
             const std::string& fence, std::function<void(absl::Status, Runner::ActivePtr)> then,
             const std::string& cause = "");
  // Carries out what the rules decided for the claimed `txn`.
  void Apply(const Transaction& txn, const PreparedStep& step);
  void BackCheck(Transaction txn);
  // Releases a claimed PREPARED transaction until `at`.
  void Postpone(const Transaction& txn, absl::Time at);

  const EngineOptions options_;
  Store* const store_;
  BranchCaller* const caller_;
  Clock* const clock_;
  ThreadPool* const pool_;
  Runner* const runner_;
  BackCheckErrors back_check_errors_;
};

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_PREPARED_H_
