// Two-phase message once submitted: deliver every action, in order (each after the one
// before durably succeeded) or all at once when concurrent. A message cannot fail: FAILURE is
// retried like a transient error.
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
}  // namespace dtm
