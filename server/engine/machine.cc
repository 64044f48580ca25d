#include "server/engine/machine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/engine/machine_internal.h"

namespace dtm {
namespace machine {

// Whether branch `i` may be called now; otherwise extends `wake` with when it may.
bool Due(TransState& s, int i, absl::Time now, std::optional<absl::Time>& wake) {
  if (s.rt[i].in_flight) return false;
  if (s.rt[i].not_before > now) {
    wake = wake ? std::min(*wake, s.rt[i].not_before) : s.rt[i].not_before;
    return false;
  }
  return true;
}

void MarkCalled(TransState& s, int i, Decision& d) {
  s.rt[i].in_flight = true;
  s.txn.branches[i].attempts++;
  d.calls.push_back(i);
}

void Finish(TransState& s, GlobalStatus status, absl::Time now) {
  s.txn.status = status;
  s.txn.finish_time = now;
  s.global_dirty = true;
}

void DecideLastFirst(TransState& s, const std::vector<int>& indexes, GlobalStatus final_status,
                     absl::Time now, Decision& d) {
  const bool callable = s.durable_status == s.txn.status;
  bool later_durable = true;  // every branch after the current one durably succeeded
  bool all_succeeded = true;
  for (auto it = indexes.rbegin(); it != indexes.rend(); ++it) {
    const int i = *it;
    if (s.txn.branches[i].status == BranchStatus::kSucceeded) {
      later_durable = later_durable && s.rt[i].durable_status == BranchStatus::kSucceeded;
      continue;
    }
    all_succeeded = false;
    if (callable && later_durable && Due(s, i, now, d.wake)) MarkCalled(s, i, d);
    later_durable = false;
  }
  if (all_succeeded) Finish(s, final_status, now);
}

}  // namespace machine

TransState NewTransState(Transaction txn) {
  TransState s;
  s.durable_status = txn.status;
  s.durable_next_retry_time = txn.next_retry_time;
  s.rt.resize(txn.branches.size());
  for (size_t i = 0; i < txn.branches.size(); ++i) s.rt[i].durable_status = txn.branches[i].status;
  s.txn = std::move(txn);
  return s;
}

TransState RecoveredTransState(Transaction txn) {
  TransState s = NewTransState(std::move(txn));
  // A branch that kept failing goes on backing off from where it was (its attempts bound how
  // many errors in a row it had), not from the first wait again: a transaction that left
  // memory to wait for a long backoff would otherwise come back to short ones each time.
  for (size_t i = 0; i < s.rt.size(); ++i) {
    const Branch& b = s.txn.branches[i];
    if (b.status != BranchStatus::kSucceeded && !b.last_error.empty()) {
      s.rt[i].consecutive_errors = b.attempts;
    }
  }
  if (s.txn.trans_type == TransType::kSaga) machine::MarkSagaRecovered(s);
  return s;
}

void HoldCallsUntil(TransState& s, absl::Time at) {
  s.hold_until = std::max(s.hold_until, at);
  for (BranchRuntime& r : s.rt) r.not_before = std::max(r.not_before, at);
}

void AbortTrans(TransState& s, const std::string& reason) {
  if (s.txn.trans_type != TransType::kSaga || s.txn.status != GlobalStatus::kSubmitted) return;
  s.txn.status = GlobalStatus::kAborting;
  s.txn.rollback_reason = reason;
  s.global_dirty = true;
}

void ForceStopTrans(TransState& s, const std::string& reason, absl::Time now) {
  if (IsTerminal(s.txn.status)) return;
  s.txn.status = GlobalStatus::kFailed;
  s.txn.rollback_reason = reason.empty() ? "stopped by ForceStop" : reason;
  s.txn.finish_time = now;
  s.global_dirty = true;
}

void RetryAllNow(TransState& s) {
  for (BranchRuntime& r : s.rt) {
    r.not_before = s.hold_until;
    if (r.in_flight) r.retry_on_answer = true;
  }
}

void OnBranchResult(TransState& s, int index, const BranchResult& answer, absl::Time now,
                    double jitter) {
  // Stored as last_error and in rollback_reason: text the branch sent, cleaned.
  const BranchResult result{answer.outcome, CleanBranchMessage(answer.message)};
  BranchRuntime& rt = s.rt[index];
  Branch& b = s.txn.branches[index];
  rt.in_flight = false;
  const bool retry_now = std::exchange(rt.retry_on_answer, false);
  if (IsTerminal(s.txn.status)) return;  // e.g. force-stopped meanwhile: nothing to record
  rt.dirty = true;
  const TransOptions& o = s.txn.options;
  BackoffPolicy backoff{o.retry_interval, o.max_retry_interval};
  if (result.outcome == CallOutcome::kSuccess) {
    b.status = BranchStatus::kSucceeded;
    b.finish_time = now;
    rt.consecutive_errors = 0;
    return;
  }
  b.last_error = result.message;
  s.stalled = s.stalled || result.outcome != CallOutcome::kFailure;
  // Only a saga's action can fail the transaction; every other call must eventually succeed.
  bool is_action = s.txn.trans_type == TransType::kSaga && b.op == BranchOp::kAction;
  if (is_action && result.outcome == CallOutcome::kFailure) {
    b.status = BranchStatus::kFailed;
    b.finish_time = now;
    AbortTrans(
        s, absl::StrCat("branch ", b.branch_id, " action ", b.target, " failed: ", result.message));
    return;
  }
  if (result.outcome == CallOutcome::kOngoing) {
    rt.not_before = now + o.retry_interval;
  } else {
    // Transient error; for a branch that must eventually succeed, FAILURE too.
    rt.consecutive_errors++;
    rt.not_before = now + backoff.Jittered(rt.consecutive_errors, jitter);
  }
  if (retry_now) rt.not_before = s.hold_until;
  if (is_action && o.retry_limit > 0 && b.attempts > o.retry_limit) {
    AbortTrans(s,
               absl::StrCat("branch ", b.branch_id, " action ", b.target, " exceeded retry_limit ",
                            o.retry_limit, " after ", b.attempts, " attempts: ", result.message));
  }
}

WrittenState SummarizeWrite(const UpdateOp& op) {
  WrittenState w;
  w.status = op.new_status;
  w.next_retry_time = op.next_retry_time;
  for (const auto& [idx, b] : op.branches) w.branches.emplace_back(idx, b.status);
  return w;
}

void OnPersisted(TransState& s, const WrittenState& written, const absl::Status& status,
                 absl::Time retry_at) {
  s.persist_in_flight = false;
  if (!status.ok()) {
    // Nothing became durable: write it all again on a later decision.
    s.persist_not_before = retry_at;
    s.global_dirty = true;
    for (const auto& [idx, st] : written.branches) s.rt[idx].dirty = true;
    return;
  }
  s.durable_status = written.status;
  s.durable_next_retry_time = written.next_retry_time;
  for (const auto& [idx, st] : written.branches) s.rt[idx].durable_status = st;
}

GlobalStatus AbortedStatus(TransType type) {
  return HasRegisteredBranches(type) ? GlobalStatus::kAborting : GlobalStatus::kFailed;
}

absl::Status TypeMismatch(const Transaction& t, TransType asked) {
  return absl::AlreadyExistsError(absl::StrCat("gid '", t.gid, "' already exists as a ",
                                               TransTypeName(t.trans_type), " transaction, not a ",
                                               TransTypeName(asked)));
}

absl::Status CheckActor(const Transaction& t, const std::string& actor) {
  if (actor.empty() || t.creator == actor) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("transaction '", t.gid,
                                                  "' belongs to another client; '", actor,
                                                  "' (submit role) acts only on its own"));
}

absl::Status CheckAbortAgain(const Transaction& t, TransType asked) {
  if (t.trans_type != asked) {
    return absl::FailedPreconditionError(
        absl::StrCat("gid '", t.gid, "' is a ", TransTypeName(t.trans_type), " transaction, not a ",
                     TransTypeName(asked), "; Abort is for a PREPARED tcc, xa or msg"));
  }
  bool aborted = t.status == GlobalStatus::kFailed ||
                 (t.status == GlobalStatus::kAborting && HasRegisteredBranches(asked));
  if (aborted) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(TransTypeName(asked), " '", t.gid,
                                                    "' is already ", GlobalStatusName(t.status),
                                                    "; only a PREPARED one can be aborted"));
}

absl::Status CheckPrepareAgain(const Transaction& existing, TransType asked) {
  if (existing.trans_type != asked) return TypeMismatch(existing, asked);
  if (existing.status == GlobalStatus::kPrepared) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(TransTypeName(asked), " '", existing.gid, "' is already ",
                   GlobalStatusName(existing.status), "; Prepare needs a new gid"));
}

Decision Decide(TransState& s, absl::Time now, absl::Duration lease) {
  Decision d;
  switch (s.txn.trans_type) {
    case TransType::kSaga:
      machine::DecideSaga(s, now, d);
      break;
    case TransType::kTcc:
    case TransType::kXa:
      machine::DecideTcc(s, now, d);
      break;
    case TransType::kMsg:
      machine::DecideMsg(s, now, d);
      break;
    default:
      break;
  }

  bool dirty = s.global_dirty;
  for (const BranchRuntime& r : s.rt) dirty = dirty || r.dirty;
  if (dirty && !s.persist_in_flight && s.persist_not_before > now) {
    d.wake = d.wake ? std::min(*d.wake, s.persist_not_before) : s.persist_not_before;
  } else if (dirty && !s.persist_in_flight) {
    UpdateOp op;
    op.gid = s.txn.gid;
    op.expected_status = s.durable_status;
    op.new_status = s.txn.status;
    op.rollback_reason = s.txn.rollback_reason;
    op.update_time = now;
    op.finish_time = s.txn.finish_time;
    if (IsTerminal(s.txn.status)) {
      op.next_retry_time = absl::InfinitePast();
    } else {
      // Until its next decision, recovery leaves it alone; after a crash it is picked up then.
      op.next_retry_time = d.calls.empty() && d.wake ? std::max(*d.wake, now) : now + lease;
      op.keep_earlier_than = s.durable_next_retry_time;  // a touch since then stays
    }
    for (size_t i = 0; i < s.rt.size(); ++i) {
      if (s.rt[i].dirty) {
        // Only what a write changes (UpdateOp): not the target and payload, which would be
        // copied for nothing on every result.
        const Branch& b = s.txn.branches[i];
        Branch& w = op.branches.emplace_back(static_cast<int>(i), Branch()).second;
        w.status = b.status;
        w.attempts = b.attempts;
        w.last_error = b.last_error;
        w.finish_time = b.finish_time;
        s.rt[i].dirty = false;
      }
    }
    s.global_dirty = false;
    s.persist_in_flight = true;
    s.txn.update_time = now;
    s.txn.next_retry_time = op.next_retry_time;
    d.persist = std::move(op);
  }
  bool settled = !s.persist_in_flight && s.txn.status == s.durable_status;
  d.done = settled && IsTerminal(s.txn.status);
  d.answer_waiters = settled && (d.done || s.stalled);
  if (d.done) d.wake.reset();
  return d;
}

}  // namespace dtm
