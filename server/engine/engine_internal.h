// Helpers the Engine's parts (engine.cc, runner.cc, prepared.cc) share. Not for other layers.
#ifndef DTM_SERVER_ENGINE_ENGINE_INTERNAL_H_
#define DTM_SERVER_ENGINE_ENGINE_INTERNAL_H_

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/branch/branch_caller.h"
#include "server/engine/engine_types.h"
#include "server/runtime/executor.h"
#include "storage/store.h"

namespace dtm::engine_internal {

inline SubmitResult ResultOf(const Transaction& t) {
  return SubmitResult{t.gid, t.status, t.rollback_reason};
}

// A uniform draw from [0, 1] for backoff jitter.
double Jitter();

// True for 1, 2, 4, 8, ...: log a repeated problem at these counts, visible without flooding.
inline bool PowerOfTwo(int n) { return n > 0 && (n & (n - 1)) == 0; }

// The outcome label of a branch's answer in metrics and logs: "success", "failure",
// "ongoing", "transient".
const char* OutcomeName(CallOutcome outcome);

// Logs a durable change of a transaction's global status (once, by the replica that wrote
// it): gid, trans type, the new status, the rollback reason if any, what caused it if the
// coordinator decided it alone (a timeout, a back-check), its trace id.
void LogStatusChange(const Transaction& t, GlobalStatus status, absl::string_view cause = "");
// Logs a durable change of a branch's status: branch id, op, attempts, last error.
void LogBranchChange(const Transaction& t, const Branch& b, BranchStatus status);

// UNAVAILABLE "<what>: the coordinator is shutting down".
absl::Status ShuttingDown(absl::string_view what);

// Queues `op` for the group commit and runs `then` with its result on `executor`. The store
// completes writes on its single completion thread, which must never block: a continuation
// for the pool hops to it; one for an idle strand runs right there (Executor::Execute), since
// a strand's work is short and never waits, and the hop would cost a wake-up per write.
inline void WriteThen(Store* store, WriteOp op, Executor* executor,
                      std::function<void(WriteResult)> then) {
  store->Write(std::move(op), [executor, then = std::move(then)](WriteResult r) mutable {
    executor->Execute([then = std::move(then), r = std::move(r)]() mutable { then(std::move(r)); });
  });
}

}  // namespace dtm::engine_internal

#endif  // DTM_SERVER_ENGINE_ENGINE_INTERNAL_H_
