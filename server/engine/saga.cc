#include "server/engine/saga.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dtm {
namespace {

int StepCount(const SagaState& s) { return static_cast<int>(s.txn.branches.size() / 2); }
int ActionIndex(int step) { return 2 * step; }
int CompensateIndex(int step) { return 2 * step + 1; }

// Steps whose action must succeed before `step` may run.
std::vector<int> Predecessors(const SagaState& s, int step) {
  if (s.txn.options.concurrent) {
    const auto& after = s.txn.branches[ActionIndex(step)].after;
    return std::vector<int>(after.begin(), after.end());
  }
  if (step == 0) return {};
  return {step - 1};
}

bool PredecessorsDurablySucceeded(const SagaState& s, int step) {
  for (int p : Predecessors(s, step)) {
    if (s.rt[ActionIndex(p)].durable_status != BranchStatus::kSucceeded) return false;
  }
  return true;
}

// A compensation is needed once the action was attempted; it is finished when it succeeded.
bool CompensationPending(const SagaState& s, int step) {
  return SagaStepAttempted(s, step) &&
         s.txn.branches[CompensateIndex(step)].status != BranchStatus::kSucceeded;
}

// Whether branch `i` may be called now; otherwise extends `wake` with when it may.
bool Due(SagaState& s, int i, absl::Time now, std::optional<absl::Time>& wake) {
  if (s.rt[i].in_flight) return false;
  if (s.rt[i].not_before > now) {
    wake = wake ? std::min(*wake, s.rt[i].not_before) : s.rt[i].not_before;
    return false;
  }
  return true;
}

void MarkCalled(SagaState& s, int i, Decision& d) {
  s.rt[i].in_flight = true;
  s.txn.branches[i].attempts++;
  d.calls.push_back(i);
}

void DecideForward(SagaState& s, absl::Time now, Decision& d) {
  const TransOptions& o = s.txn.options;
  if (o.timeout_to_fail > absl::ZeroDuration()) {
    absl::Time deadline = s.txn.create_time + o.timeout_to_fail;
    if (now >= deadline) {
      SagaAbort(s, absl::StrCat("timeout_to_fail of ", absl::FormatDuration(o.timeout_to_fail),
                                " passed before all actions succeeded"));
      return;
    }
    d.wake = deadline;
  }
  bool all_succeeded = true;
  for (int step = 0; step < StepCount(s); ++step) {
    int a = ActionIndex(step);
    if (s.txn.branches[a].status == BranchStatus::kSucceeded) continue;
    all_succeeded = false;
    if (s.durable_status != GlobalStatus::kSubmitted) continue;
    if (!PredecessorsDurablySucceeded(s, step)) continue;
    if (Due(s, a, now, d.wake)) MarkCalled(s, a, d);
  }
  if (all_succeeded) {
    s.txn.status = GlobalStatus::kSucceeded;
    s.txn.finish_time = now;
    s.global_dirty = true;
  }
}

// Whether step j still holds back the compensations that must follow its own: its action may
// yet apply, or it was attempted and its compensation is not durably done.
bool HoldsBack(const SagaState& s, int j) {
  return s.rt[ActionIndex(j)].in_flight ||
         (SagaStepAttempted(s, j) &&
          s.rt[CompensateIndex(j)].durable_status != BranchStatus::kSucceeded);
}

// For every step, whether a later step (sequential: any step after it; concurrent: a step
// whose `after` names it) still holds it back. One pass over the steps and their edges.
std::vector<bool> HeldBackByLaterSteps(const SagaState& s) {
  const int n = StepCount(s);
  std::vector<bool> held(n, false);
  if (s.txn.options.concurrent) {
    for (int j = 0; j < n; ++j) {
      if (!HoldsBack(s, j)) continue;
      for (int a : s.txn.branches[ActionIndex(j)].after) held[a] = true;
    }
  } else {
    bool later = false;
    for (int step = n - 1; step >= 0; --step) {
      held[step] = later;
      later = later || HoldsBack(s, step);
    }
  }
  return held;
}

void DecideBackward(SagaState& s, absl::Time now, Decision& d) {
  bool finished = true;
  const bool callable = s.durable_status == GlobalStatus::kAborting;
  const std::vector<bool> held = callable ? HeldBackByLaterSteps(s) : std::vector<bool>();
  for (int step = StepCount(s) - 1; step >= 0; --step) {
    // An action still in flight may yet apply: wait for its answer before compensating.
    if (s.rt[ActionIndex(step)].in_flight) {
      finished = false;
      continue;
    }
    if (!CompensationPending(s, step)) continue;
    finished = false;
    if (!callable || held[step]) continue;
    int c = CompensateIndex(step);
    if (Due(s, c, now, d.wake)) MarkCalled(s, c, d);
  }
  if (finished) {
    s.txn.status = GlobalStatus::kFailed;
    s.txn.finish_time = now;
    s.global_dirty = true;
  }
}

}  // namespace

bool SagaStepAttempted(const SagaState& s, int step) {
  const Branch& a = s.txn.branches[ActionIndex(step)];
  return a.attempts > 0 || a.status != BranchStatus::kPrepared ||
         s.rt[ActionIndex(step)].maybe_attempted;
}

SagaState NewSagaState(Transaction txn) {
  SagaState s;
  s.durable_status = txn.status;
  s.rt.resize(txn.branches.size());
  for (size_t i = 0; i < txn.branches.size(); ++i) s.rt[i].durable_status = txn.branches[i].status;
  s.txn = std::move(txn);
  return s;
}

SagaState RecoveredSagaState(Transaction txn) {
  SagaState s = NewSagaState(std::move(txn));
  for (int step = 0; step < StepCount(s); ++step) {
    int a = ActionIndex(step);
    if (s.txn.branches[a].status == BranchStatus::kPrepared &&
        PredecessorsDurablySucceeded(s, step)) {
      s.rt[a].maybe_attempted = true;
    }
  }
  return s;
}

void SagaAbort(SagaState& s, const std::string& reason) {
  if (s.txn.status != GlobalStatus::kSubmitted) return;
  s.txn.status = GlobalStatus::kAborting;
  s.txn.rollback_reason = reason;
  s.global_dirty = true;
}

void SagaForceStop(SagaState& s, const std::string& reason, absl::Time now) {
  if (IsTerminal(s.txn.status)) return;
  s.txn.status = GlobalStatus::kFailed;
  s.txn.rollback_reason = reason.empty() ? "stopped by ForceStop" : reason;
  s.txn.finish_time = now;
  s.global_dirty = true;
}

void SagaRetryNow(SagaState& s) {
  for (BranchRuntime& r : s.rt) r.not_before = absl::InfinitePast();
}

void SagaOnResult(SagaState& s, int index, const BranchResult& result, absl::Time now,
                  double jitter) {
  BranchRuntime& rt = s.rt[index];
  Branch& b = s.txn.branches[index];
  rt.in_flight = false;
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
  bool is_action = b.op == BranchOp::kAction;
  if (is_action && result.outcome == CallOutcome::kFailure) {
    b.status = BranchStatus::kFailed;
    b.finish_time = now;
    SagaAbort(
        s, absl::StrCat("branch ", b.branch_id, " action ", b.target, " failed: ", result.message));
    return;
  }
  if (result.outcome == CallOutcome::kOngoing) {
    rt.not_before = now + o.retry_interval;
  } else {
    // Transient error; for a compensation, FAILURE too: it must eventually succeed.
    rt.consecutive_errors++;
    rt.not_before = now + backoff.Jittered(rt.consecutive_errors, jitter);
  }
  if (is_action && o.retry_limit > 0 && b.attempts > o.retry_limit) {
    SagaAbort(s,
              absl::StrCat("branch ", b.branch_id, " action ", b.target, " exceeded retry_limit ",
                           o.retry_limit, " after ", b.attempts, " attempts: ", result.message));
  }
}

WrittenState SummarizeWrite(const UpdateOp& op) {
  WrittenState w;
  w.status = op.new_status;
  for (const auto& [idx, b] : op.branches) w.branches.emplace_back(idx, b.status);
  return w;
}

void SagaOnPersisted(SagaState& s, const WrittenState& written, const absl::Status& status,
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
  for (const auto& [idx, st] : written.branches) s.rt[idx].durable_status = st;
}

Decision SagaDecide(SagaState& s, absl::Time now, absl::Duration lease) {
  Decision d;
  if (s.txn.status == GlobalStatus::kSubmitted) DecideForward(s, now, d);
  // Not `else`: the forward phase may just have turned into a rollback.
  if (s.txn.status == GlobalStatus::kAborting) DecideBackward(s, now, d);

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
    }
    for (size_t i = 0; i < s.rt.size(); ++i) {
      if (s.rt[i].dirty) {
        op.branches.emplace_back(static_cast<int>(i), s.txn.branches[i]);
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
