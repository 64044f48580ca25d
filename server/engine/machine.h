// The state machines of the three transaction types: pure functions over TransState. No I/O,
// no clock reads, no threads. The engine feeds them events (a branch answered, a write became
// durable, time passed) and executes the Decision they return (persist, call branches, arm a
// timer, answer waiters). saga.cc, tcc.cc and msg.cc hold what differs; this file's
// functions dispatch on the transaction's type.
//
// Semantics (DTM's, with its known flaws fixed; README.md describes them for users):
// - Saga: actions in order (or as the `after` DAG allows); all succeed -> SUCCEEDED. An
//   action's FAILURE, `timeout_to_fail`, or `retry_limit` exhausted -> ABORTING, then the
//   compensation of every attempted step in reverse (reverse-DAG) order -> FAILED.
// - Tcc (once the client submitted or aborted it): SUBMITTED -> the confirms in reverse
//   registration order -> SUCCEEDED; ABORTING -> the cancels, every registered branch, in
//   reverse order -> FAILED. One at a time: each after the later one durably succeeded.
// - Xa: as a tcc, with commit for confirm and rollback for cancel.
// - Msg (once submitted): the actions in order, each after the one before durably
//   succeeded, or all at once when concurrent -> SUCCEEDED. A message never fails.
// - Compensations, confirms, cancels and msg actions must eventually succeed: FAILURE there is
//   retried with backoff like a transient error, and stays visible (attempts, last_error).
// - A PREPARED transaction is never driven by Decide: the engine handles Prepare,
//   RegisterBranch, the client's Submit/Abort and the coordinator's timeout / back-check
//   through the store, by the rules at the end of this file.
//
// Durability rule: a branch is called only once the record that makes it callable is
// durable (the created transaction for first actions, the durable success of its
// predecessors, the durable ABORTING status for compensations); a terminal status is written
// together with the branch results that justify it.
#ifndef DTM_SERVER_ENGINE_MACHINE_H_
#define DTM_SERVER_ENGINE_MACHINE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/branch/branch_caller.h"
#include "server/engine/backoff.h"
#include "server/model/transaction.h"
#include "storage/store.h"

namespace dtm {

// What the engine knows of one branch beyond its stored row. Not persisted.
struct BranchRuntime {
  bool in_flight = false;
  bool dirty = false;  // the row differs from what is durable
  BranchStatus durable_status = BranchStatus::kPrepared;
  int consecutive_errors = 0;
  absl::Time not_before = absl::InfinitePast();  // earliest next call (backoff / ongoing)
  bool retry_on_answer = false;  // RetryNow came during a call: its answer waits for nothing
  bool maybe_attempted = false;  // recovered: may have been called before a restart
};

struct TransState {
  Transaction txn;
  std::vector<BranchRuntime> rt;  // parallel to txn.branches
  GlobalStatus durable_status = GlobalStatus::kUnspecified;
  // The stored next_retry_time as this coordinator last wrote (or read) it. A write keeps a
  // stored one earlier than this: a touch (RetryNow through another replica) moved it back.
  absl::Time durable_next_retry_time = absl::InfinitePast();
  bool global_dirty = false;
  bool persist_in_flight = false;
  absl::Time persist_not_before = absl::InfinitePast();  // after a failed write
  bool stalled = false;  // some call of the current round answered ONGOING or an error
  // A msg's delivery time (its `delay` after the submit): no branch is called before it,
  // whatever RetryNow says, since it is the client's schedule, not a backoff.
  absl::Time hold_until = absl::InfinitePast();
};

struct Decision {
  std::vector<int> calls;           // branch indexes to call now
  std::optional<UpdateOp> persist;  // write to issue now
  std::optional<absl::Time> wake;   // when to decide again, if nothing else happens
  bool answer_waiters = false;      // a Submit with wait_result can be answered now
  bool done = false;                // terminal and durable: drop from memory
};

// Builds the state of a transaction just created or submitted (all of it durable).
TransState NewTransState(Transaction txn);
// Builds the state of a transaction read back from the store after a restart or a claim.
// Saga actions that may have been called before (their predecessors durably succeeded) are
// treated as attempted, so they are compensated if the saga rolls back. A branch with errors
// backs off as after `attempts` errors in a row.
TransState RecoveredTransState(Transaction txn);
// No branch is called before `at` (a msg's delivery delay), RetryAllNow included.
void HoldCallsUntil(TransState& s, absl::Time at);

// Records the answer of branch `index`. `jitter` in [0, 1] picks the backoff wait.
void OnBranchResult(TransState& s, int index, const BranchResult& answer, absl::Time now,
                    double jitter);
// Moves a saga to ABORTING (if still forward) with `reason`.
void AbortTrans(TransState& s, const std::string& reason);
// Marks the transaction FAILED without compensation (ForceStop).
void ForceStopTrans(TransState& s, const std::string& reason, absl::Time now);
// What a write makes durable: kept (without payloads) until the write completes.
struct WrittenState {
  GlobalStatus status = GlobalStatus::kUnspecified;
  absl::Time next_retry_time = absl::InfinitePast();
  std::vector<std::pair<int, BranchStatus>> branches;
};
WrittenState SummarizeWrite(const UpdateOp& op);

// Called after a write finished with `status`. A failed write is retried no sooner than
// `retry_at`.
void OnPersisted(TransState& s, const WrittenState& written, const absl::Status& status,
                 absl::Time retry_at);
inline void OnPersisted(TransState& s, const UpdateOp& op, const absl::Status& status,
                        absl::Time retry_at) {
  OnPersisted(s, SummarizeWrite(op), status, retry_at);
}
// Makes every waiting branch due now (RetryNow), or at the end of a msg's delivery delay if
// that is later (hold_until). A branch whose call is still out is called
// again as soon as that call answers, whatever the answer's backoff: the retry asked for
// starts after the request, even when the request raced with a call about to fail.
void RetryAllNow(TransState& s);
// Decides what to do next. Marks returned calls in flight and counts their attempts.
// `lease` is how far ahead next_retry_time is pushed while work is in flight.
Decision Decide(TransState& s, absl::Time now, absl::Duration lease);

// True if the saga's step `step` had its action called (or possibly called).
bool SagaStepAttempted(const TransState& s, int step);

// --- PREPARED tcc and msg --------------------------------------------------------------------
// A PREPARED transaction is not driven by Decide: it waits in the store for its client's
// Submit or Abort (any replica may receive them). These rules answer what the client asks
// of it, and what the engine does when it is still PREPARED after its timeout_to_fail and
// recovery claims it. Pure, like the machines above.

// What to do with a claimed PREPARED transaction: leave PREPARED for `to`, with `reason` as
// its rollback_reason; or, if `to` is kUnspecified, stay PREPARED and be claimed again at
// `retry_at`.
struct PreparedStep {
  GlobalStatus to = GlobalStatus::kUnspecified;
  std::string reason;
  absl::Time retry_at = absl::InfinitePast();

  bool leaves() const { return to != GlobalStatus::kUnspecified; }
};

// A claimed PREPARED tcc (tcc.cc): its client neither submitted nor aborted it within
// timeout_to_fail, so it is aborted (ABORTING: its cancels run). Claimed before its timeout
// (made due by RetryNow), it waits for the real one.
PreparedStep OnPreparedTccDue(const Transaction& tcc, absl::Time now);
// The answer of a claimed PREPARED msg's back-check (msg.cc): committed locally (success) ->
// SUBMITTED, delivered; rolled back (failure) -> FAILED, nothing delivered; ongoing -> asked
// again after retry_interval; an error -> asked again with backoff, `consecutive_errors`
// (this one included) doubling the wait from retry_interval, `jitter` in [0, 1].
PreparedStep OnBackCheckResult(const Transaction& msg, const BranchResult& result,
                               int consecutive_errors, absl::Time now, double jitter);

// The status a client's Abort moves a PREPARED `type` to: a tcc's cancels must run
// (ABORTING); a msg has delivered nothing, so there is nothing to undo (FAILED).
GlobalStatus AbortedStatus(TransType type);
// Whether an Abort by a client who takes the gid for a `asked` may be answered with `t`'s
// state now that `t` left PREPARED: OK for a repeat of an earlier abort (FAILED, or a tcc
// still ABORTING); FAILED_PRECONDITION if it moved on otherwise or is of another type.
absl::Status CheckAbortAgain(const Transaction& t, TransType asked);
// Whether a Prepare of a gid that exists as `existing` is a harmless repeat (OK: PREPARED,
// same type), is of another type (ALREADY_EXISTS) or comes too late (FAILED_PRECONDITION).
absl::Status CheckPrepareAgain(const Transaction& existing, TransType asked);
// ALREADY_EXISTS: `t`'s gid is taken by a transaction of another type than `asked`.
absl::Status TypeMismatch(const Transaction& t, TransType asked);
// OK when `actor` may act on `t`: "" (anyone), or the name that created it; PERMISSION_DENIED
// otherwise (the same words as the API's own check).
absl::Status CheckActor(const Transaction& t, const std::string& actor);

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_MACHINE_H_
