// Two-phase message once submitted: deliver every action, in order (each after the one
// before durably succeeded) or all at once when concurrent. A message cannot fail: FAILURE is
// retried like a transient error.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/engine/backoff.h"
#include "server/engine/machine_internal.h"

namespace dtm {
namespace machine {

void DecideMsg(TransState& s, absl::Time now, Decision& d) {
  if (s.txn.status != GlobalStatus::kSubmitted) return;  // PREPARED: the engine back-checks
  bool all_succeeded = true;
  bool predecessors_done = true;
  for (size_t i = 0; i < s.txn.branches.size(); ++i) {
    bool succeeded = s.txn.branches[i].status == BranchStatus::kSucceeded;
    if (!succeeded) {
      all_succeeded = false;
      bool callable = s.durable_status == GlobalStatus::kSubmitted &&
                      (s.txn.options.concurrent || predecessors_done);
      if (callable && Due(s, static_cast<int>(i), now, d.wake)) {
        MarkCalled(s, static_cast<int>(i), d);
      }
    }
    predecessors_done = predecessors_done && s.rt[i].durable_status == BranchStatus::kSucceeded;
  }
  if (all_succeeded) Finish(s, GlobalStatus::kSucceeded, now);
}

}  // namespace machine

PreparedStep OnBackCheckResult(const Transaction& msg, const BranchResult& result,
                               int consecutive_errors, absl::Time now, double jitter) {
  PreparedStep step;
  const TransOptions& o = msg.options;
  switch (result.outcome) {
    case CallOutcome::kSuccess:
      step.to = GlobalStatus::kSubmitted;
      break;
    case CallOutcome::kFailure:
      step.to = GlobalStatus::kFailed;
      step.reason = absl::StrCat(
          "back-check ", msg.query_prepared,
          " says the local transaction rolled back: ", CleanBranchMessage(result.message));
      break;
    case CallOutcome::kOngoing:
      step.retry_at = now + o.retry_interval;
      break;
    case CallOutcome::kError:
      step.retry_at = now + BackoffPolicy{o.retry_interval, o.max_retry_interval}.Jittered(
                                std::max(1, consecutive_errors), jitter);
      break;
  }
  return step;
}

}  // namespace dtm
