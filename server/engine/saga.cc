// Saga: the forward phase (actions, in order or as the `after` DAG allows) and the backward
// phase (compensations of attempted steps, in reverse).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/engine/machine_internal.h"

namespace dtm {
namespace machine {
namespace {

int StepCount(const TransState& s) { return static_cast<int>(s.txn.branches.size() / 2); }
int ActionIndex(int step) { return 2 * step; }
int CompensateIndex(int step) { return 2 * step + 1; }

// Steps whose action must succeed before `step` may run.
std::vector<int> Predecessors(const TransState& s, int step) {
  if (s.txn.options.concurrent) {
    const auto& after = s.txn.branches[ActionIndex(step)].after;
    return std::vector<int>(after.begin(), after.end());
  }
  if (step == 0) return {};
  return {step - 1};
}

bool PredecessorsDurablySucceeded(const TransState& s, int step) {
  for (int p : Predecessors(s, step)) {
    if (s.rt[ActionIndex(p)].durable_status != BranchStatus::kSucceeded) return false;
  }
  return true;
}

// A compensation is needed once the action was attempted; it is finished when it succeeded.
bool CompensationPending(const TransState& s, int step) {
  return SagaStepAttempted(s, step) &&
         s.txn.branches[CompensateIndex(step)].status != BranchStatus::kSucceeded;
}

void DecideForward(TransState& s, absl::Time now, Decision& d) {
  const TransOptions& o = s.txn.options;
  if (o.timeout_to_fail > absl::ZeroDuration()) {
    absl::Time deadline = s.txn.create_time + o.timeout_to_fail;
    if (now >= deadline) {
      AbortTrans(s, absl::StrCat("timeout_to_fail of ", absl::FormatDuration(o.timeout_to_fail),
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
    Finish(s, GlobalStatus::kSucceeded, now);
  }
}

// Whether step j still holds back the compensations that must follow its own: its action may
// yet apply, or it was attempted and its compensation is not durably done.
bool HoldsBack(const TransState& s, int j) {
  return s.rt[ActionIndex(j)].in_flight ||
         (SagaStepAttempted(s, j) &&
          s.rt[CompensateIndex(j)].durable_status != BranchStatus::kSucceeded);
}

// For every step, whether a later step (sequential: any step after it; concurrent: a step
// whose `after` names it) still holds it back. One pass over the steps and their edges.
std::vector<bool> HeldBackByLaterSteps(const TransState& s) {
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

void DecideBackward(TransState& s, absl::Time now, Decision& d) {
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
    Finish(s, GlobalStatus::kFailed, now);
  }
}

}  // namespace

void MarkSagaRecovered(TransState& s) {
  for (int step = 0; step < StepCount(s); ++step) {
    int a = ActionIndex(step);
    if (s.txn.branches[a].status == BranchStatus::kPrepared &&
        PredecessorsDurablySucceeded(s, step)) {
      s.rt[a].maybe_attempted = true;
    }
  }
}

void DecideSaga(TransState& s, absl::Time now, Decision& d) {
  if (s.txn.status == GlobalStatus::kSubmitted) DecideForward(s, now, d);
  // Not `else`: the forward phase may just have turned into a rollback.
  if (s.txn.status == GlobalStatus::kAborting) DecideBackward(s, now, d);
}

}  // namespace machine

bool SagaStepAttempted(const TransState& s, int step) {
  const int a = machine::ActionIndex(step);
  return s.txn.branches[a].attempts > 0 || s.txn.branches[a].status != BranchStatus::kPrepared ||
         s.rt[a].maybe_attempted;
}

}  // namespace dtm
