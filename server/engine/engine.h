// Engine: runs the state machines; what the API layer and recovery talk to. It has two
// halves, joined where a transaction leaves PREPARED:
// - the Runner (runner.h) owns the in-memory set of transactions active here, serialises the
//   events of each on its own Strand, executes the Decisions of the state machine
//   (group-committed writes, asynchronous branch calls, timers) and answers the API's
//   callbacks once the outcome is durable;
// - the PreparedProtocol (prepared.h) keeps PREPARED tcc and msg transactions in the store,
//   where any replica can take their client's Prepare, RegisterBranch, Submit or Abort, and
//   aborts or back-checks those left PREPARED past their timeout.
// This class routes each request to its half. An xa goes every way a tcc does (its branches'
// phase-2 ops are commit and rollback rather than confirm and cancel), so "tcc" below stands
// for both.
//
// Thread-safe. Every public method returns at once; callbacks run later on a pool thread.
#ifndef DTM_SERVER_ENGINE_ENGINE_H_
#define DTM_SERVER_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/branch/branch_caller.h"
#include "server/engine/engine_types.h"
#include "server/metrics/metrics.h"
#include "server/model/list_query.h"
#include "server/runtime/clock.h"
#include "server/runtime/thread_pool.h"
#include "server/runtime/timer_queue.h"
#include "storage/store.h"

namespace dtm {

class Runner;
class PreparedProtocol;

class Engine {
 public:
  using SubmitDone = ::dtm::SubmitDone;
  using TxnDone = ::dtm::TxnDone;

  Engine(EngineOptions options, Store* store, BranchCaller* caller, Clock* clock,
         TimerQueue* timers, ThreadPool* pool);
  ~Engine();

  // Stores a new, validated saga or msg and runs it; or, for a tcc or a msg without branches,
  // commits the PREPARED transaction of that gid (phase 2). A gid that exists with the same
  // type answers its current status (waiting like the first Submit if wait_result); with
  // another type, ALREADY_EXISTS. A PREPARED msg submitted again with its steps is committed.
  //
  // `actor` (here and in Prepare, Abort, BranchRegistration::actor): "" lets any caller act on
  // an existing transaction; a name only on one that name created (PERMISSION_DENIED
  // otherwise), checked against the stored transaction where the operation reads or writes it.
  void Submit(Transaction txn, SubmitDone done, const std::string& actor = "");
  // Stores a new PREPARED tcc or msg. Nothing runs until its client submits or aborts it, or
  // it is still PREPARED at create_time + timeout_to_fail: then recovery claims it and the
  // tcc is aborted, the msg back-checked (query_prepared). Preparing a PREPARED gid again
  // succeeds; a gid past PREPARED is FAILED_PRECONDITION, of another type ALREADY_EXISTS.
  void Prepare(Transaction txn, StatusDone done, const std::string& actor = "");
  // Registers a tcc branch (straight to the store: any replica may take it).
  void RegisterBranch(BranchRegistration registration, StatusDone done);
  // The client's rollback of a PREPARED tcc (-> ABORTING, cancels run) or msg (-> FAILED,
  // nothing called). Idempotent; answers the status reached (waiting for the end if the tcc
  // was prepared with wait_result).
  void Abort(const std::string& gid, TransType type, const std::string& reason, SubmitDone done,
             const std::string& actor = "");
  // Answers the freshest state: from memory when active, else from the store.
  void Query(const std::string& gid, TxnDone done);
  void List(ListQuery query, std::function<void(absl::StatusOr<ListPage>)> done);
  // Ends a non-terminal transaction as FAILED without compensation.
  void ForceStop(const std::string& gid, const std::string& reason, const TxnDone& done);
  // Makes every waiting branch of a non-terminal transaction due now (a PREPARED msg: its
  // back-check).
  void RetryNow(const std::string& gid, StatusDone done);
  // RetryNow for every SUBMITTED or ABORTING transaction waiting for a later retry, on any
  // replica; answers how many were made due.
  void RetryAllWaiting(std::function<void(absl::StatusOr<int64_t>)> done);
  // Continues a transaction claimed by recovery; returns false when it was already active
  // here (its lease is refreshed from the claim). A claimed PREPARED one timed out: a tcc is
  // aborted, a msg back-checked.
  // Never blocks: recovery calls it on the store's writer thread, in the claim's completion.
  bool Resume(Transaction txn);
  // Extends the leases of the work active here that expire within 2/3 of a lease. Work whose
  // lease another coordinator took over, or that ran out while the store was unreachable, is
  // dropped from memory (its owner, or recovery, continues it from the store). Blocking: call
  // from the recovery thread.
  void RenewLeases();

  // Answers pending waiters with the current status and stops calling branches; writes
  // still flow. Call before shutting down the caller, timers, pool and store.
  void Shutdown();

  // `made_due` runs (on any thread, briefly) when a RetryNow made work due in the store that
  // recovery is to claim, so that it claims it now rather than at its next tick.
  void set_made_due_hook(std::function<void()> made_due);

  // Sets the addresses sent to branches as dtm (known only once the servers listen).
  void set_self_address(std::string address);
  void set_http_self_address(std::string address);
  std::string self_address() const;

  const std::string& owner() const { return options_.owner; }
  Metrics* metrics() const { return options_.metrics; }
  size_t active_count() const;
  // Of active_count, the transactions Resume took in (from recovery's claims) that are still
  // in memory.
  size_t resumed_count() const;
  bool IsActive(const std::string& gid) const;
  // How many msg gids have a count of failed back-checks in memory (for tests).
  size_t back_check_errors_tracked() const;

 private:
  void OnCreated(Transaction txn, WriteResult result, SubmitDone done, const std::string& actor);

  std::unique_ptr<Metrics> own_metrics_;  // when options.metrics was null
  const EngineOptions options_;           // options_.metrics is never null
  Store* const store_;
  Clock* const clock_;
  ThreadPool* const pool_;
  std::unique_ptr<Runner> runner_;
  std::unique_ptr<PreparedProtocol> prepared_;
};

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_ENGINE_H_
