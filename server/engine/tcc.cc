// Tcc once its client decided: confirms (SUBMITTED) or cancels (ABORTING) in reverse
// registration order. The coordinator cannot know whether a branch's Try ran (the client
// calls it), so an aborted tcc cancels every registered branch; branch services make a
// cancel without a Try harmless (the barrier, DTM's "null compensation").
//
// Xa is the same machine with other ops: commit (SUBMITTED) or roll back (ABORTING) every
// registered branch's prepared local transaction. A branch registers itself before it
// prepares, so a registered branch may never have prepared (it failed, or died): its
// rollback of an unknown xid is a success, like a cancel without a Try. Its local work is
// prepared, so a commit cannot be refused: it is retried until the branch says done.
#include "absl/strings/str_cat.h"
#include "server/engine/machine_internal.h"

namespace dtm {
namespace machine {

void DecideTcc(TransState& s, absl::Time now, Decision& d) {
  const bool confirming = s.txn.status == GlobalStatus::kSubmitted;
  if (!confirming && s.txn.status != GlobalStatus::kAborting) return;  // PREPARED: the client's
  const int offset = confirming ? 0 : 1;  // confirm at 2*i, cancel at 2*i+1
  std::vector<int> indexes;
  for (size_t i = offset; i < s.txn.branches.size(); i += 2) indexes.push_back(static_cast<int>(i));
  DecideLastFirst(s, indexes, confirming ? GlobalStatus::kSucceeded : GlobalStatus::kFailed, now,
                  d);
}

}  // namespace machine

PreparedStep OnPreparedTccDue(const Transaction& tcc, absl::Time now) {
  PreparedStep step;
  const absl::Time deadline = tcc.create_time + tcc.options.timeout_to_fail;
  if (now < deadline) {
    step.retry_at = deadline;
    return step;
  }
  step.to = GlobalStatus::kAborting;
  step.reason =
      absl::StrCat("timeout_to_fail of ", absl::FormatDuration(tcc.options.timeout_to_fail),
                   " passed while PREPARED: the client neither submitted nor aborted it");
  return step;
}

}  // namespace dtm
