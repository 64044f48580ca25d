// Engine: runs the state machines. It owns the in-memory set of active (non-terminal)
// transactions, serialises the events of each on its own Strand, executes the Decisions of
// the state machine (group-committed writes, asynchronous branch calls, timers) and answers
// the API's callbacks once the outcome is durable.
//
// Thread-safe. Every public method returns at once; callbacks run later on a pool thread.
#ifndef DTM_SERVER_ENGINE_ENGINE_H_
#define DTM_SERVER_ENGINE_ENGINE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/branch/branch_caller.h"
#include "server/engine/machine.h"
#include "server/runtime/clock.h"
#include "server/runtime/thread_pool.h"
#include "server/runtime/timer_queue.h"
#include "storage/store.h"

namespace dtm {

struct EngineOptions {
  // How long this coordinator's claim on a transaction lasts without renewal (RenewLeases),
  // and how far next_retry_time is pushed ahead while a call is in flight: after a crash,
  // another replica (or this one, restarted) picks the work up once both have passed.
  absl::Duration lease = absl::Seconds(10);
  // This coordinator's identity in the store's owner column; unique per process.
  std::string owner = "dtmd";
  // Delay before a write that failed (database unavailable) is tried again.
  absl::Duration write_retry = absl::Seconds(1);
  // Sent to branches as dtm-dtm.
  std::string self_address;
};

struct SubmitResult {
  std::string gid;
  GlobalStatus status = GlobalStatus::kUnspecified;
  std::string rollback_reason;
};

class Engine {
 public:
  using SubmitDone = std::function<void(absl::StatusOr<SubmitResult>)>;
  using TxnDone = std::function<void(absl::StatusOr<Transaction>)>;

  Engine(EngineOptions options, Store* store, BranchCaller* caller, Clock* clock,
         TimerQueue* timers, ThreadPool* pool);
  ~Engine();

  // Stores a new, validated saga or msg and runs it; or, for a tcc or a msg without branches,
  // commits the PREPARED transaction of that gid (phase 2). A gid that exists with the same
  // type answers its current status (waiting like the first Submit if wait_result); with
  // another type, ALREADY_EXISTS. A PREPARED msg submitted again with its steps is committed.
  void Submit(Transaction txn, SubmitDone done);
  // Stores a new PREPARED tcc or msg. Nothing runs until its client submits or aborts it, or
  // it is still PREPARED at create_time + timeout_to_fail: then recovery claims it and the
  // tcc is aborted, the msg back-checked (query_prepared). Preparing a PREPARED gid again
  // succeeds; a gid past PREPARED is FAILED_PRECONDITION, of another type ALREADY_EXISTS.
  void Prepare(Transaction txn, std::function<void(absl::Status)> done);
  // Registers a tcc branch (straight to the store: any replica may take it).
  void RegisterBranch(BranchRegistration registration, std::function<void(absl::Status)> done);
  // The client's rollback of a PREPARED tcc (-> ABORTING, cancels run) or msg (-> FAILED,
  // nothing called). Idempotent; answers the status reached (waiting for the end if the tcc
  // was prepared with wait_result).
  void Abort(const std::string& gid, TransType type, const std::string& reason, SubmitDone done);
  // Answers the freshest state: from memory when active, else from the store.
  void Query(const std::string& gid, TxnDone done);
  void List(ListQuery query, std::function<void(absl::StatusOr<ListPage>)> done);
  // Ends a non-terminal transaction as FAILED without compensation.
  void ForceStop(const std::string& gid, const std::string& reason, TxnDone done);
  // Makes every waiting branch of a non-terminal transaction due now (a PREPARED msg: its
  // back-check).
  void RetryNow(const std::string& gid, std::function<void(absl::Status)> done);
  // RetryNow for every SUBMITTED or ABORTING transaction waiting for a later retry, on any
  // replica; answers how many were made due.
  void RetryAllWaiting(std::function<void(absl::StatusOr<int64_t>)> done);
  // Continues a transaction claimed by recovery; returns false when it was already active
  // here (its lease is refreshed from the claim). A claimed PREPARED one timed out: a tcc is
  // aborted, a msg back-checked.
  bool Resume(Transaction txn);
  // Extends the leases of the work active here that expire within 2/3 of a lease. Work whose
  // lease another coordinator took over, or that ran out while the store was unreachable, is
  // dropped from memory (its owner, or recovery, continues it from the store). Blocking: call
  // from the recovery thread.
  void RenewLeases();

  // Answers pending waiters with the current status and stops calling branches; writes
  // still flow. Call before shutting down the caller, timers, pool and store.
  void Shutdown();

  // Sets the address sent to branches as dtm-dtm (known only once the server listens).
  void set_self_address(std::string address);
  std::string self_address() const;

  const std::string& owner() const { return options_.owner; }
  size_t active_count() const;
  bool IsActive(const std::string& gid) const;

 private:
  struct Active;
  using ActivePtr = std::shared_ptr<Active>;

  // Returns the active entry for `gid`, creating it from `txn` if absent. Returns null for a
  // stored snapshot (`recovered`) of a gid retired here recently: the snapshot may predate
  // its end, and running it again could call a branch after the transaction ended.
  ActivePtr Activate(Transaction txn, bool recovered);
  // Runs `on_active` on the strand of the active entry for `gid`, loading it from the store
  // if needed; `on_stored` receives a terminal transaction or the lookup error instead.
  void WithActive(const std::string& gid, std::function<void(const ActivePtr&)> on_active,
                  TxnDone on_stored);
  void OnCreated(Transaction txn, WriteResult result, SubmitDone done);
  ActivePtr Find(const std::string& gid) const;
  // Phase 2 of a PREPARED tcc or msg: commits it unless it moved on, then answers like a
  // duplicate Submit.
  void SubmitPrepared(const std::string& gid, TransType type, bool wait, SubmitDone done);
  // Answers a Submit of a gid that exists with its current status (see Submit).
  void AnswerExisting(const std::string& gid, TransType type, bool wait, SubmitDone done);
  // Moves the PREPARED `prepared` to `to` with a compare-and-set (fenced by `fence` when set,
  // else on whichever replica), taking it over; a non-terminal `to` is then run here from a
  // fresh read, which holds every branch registered before the change. `then` gets the write's
  // status and the active entry (null if `to` is terminal or the write failed).
  void LeavePrepared(const Transaction& prepared, GlobalStatus to, const std::string& reason,
                     const std::string& fence, std::function<void(absl::Status, ActivePtr)> then);
  // A claimed PREPARED transaction whose timeout passed (or a msg made due by RetryNow).
  void OnPreparedDue(Transaction txn);
  void BackCheck(Transaction txn);
  // Releases a claimed PREPARED transaction until `at`.
  void Postpone(const Transaction& txn, absl::Time at);
  std::vector<std::pair<std::string, std::string>> Metadata(const Transaction& t,
                                                            const std::string& branch_id,
                                                            const char* op) const;
  void AttachSubmit(const ActivePtr& a, TransType type, bool wait, SubmitDone done);
  void Drive(const ActivePtr& a);  // on a's strand
  void Dispatch(const ActivePtr& a, int index);
  void ArmTimer(const ActivePtr& a, std::optional<absl::Time> wake);
  void Retire(const ActivePtr& a, const absl::Status& why);
  // On a's strand: this coordinator no longer owns a's transaction. Forgets it without
  // remembering it as ended, so a later claim can bring it back.
  void Drop(const ActivePtr& a);

  const EngineOptions options_;
  Store* const store_;
  BranchCaller* const caller_;
  Clock* const clock_;
  TimerQueue* const timers_;
  ThreadPool* const pool_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, ActivePtr> active_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string self_address_ ABSL_GUARDED_BY(mu_);
  // Gids retired in the last kRetiredMemory, oldest first (see Activate).
  std::deque<std::pair<absl::Time, std::string>> retired_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> retired_ ABSL_GUARDED_BY(mu_);
  // Consecutive failed back-checks per msg gid (for their backoff).
  absl::flat_hash_map<std::string, int> back_check_errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_ENGINE_H_
