// What the per-type state machines (saga.cc, tcc.cc, msg.cc) share. Not for the engine.
#ifndef DTM_SERVER_ENGINE_MACHINE_INTERNAL_H_
#define DTM_SERVER_ENGINE_MACHINE_INTERNAL_H_

#include <optional>

#include "server/engine/machine.h"

namespace dtm {
namespace machine {

// Whether branch `i` may be called now; otherwise extends `wake` with when it may.
bool Due(TransState& s, int i, absl::Time now, std::optional<absl::Time>& wake);
// Marks branch `i` in flight, counts the attempt and adds it to the decision's calls.
void MarkCalled(TransState& s, int i, Decision& d);
// Moves the transaction to the terminal `status` (written by the next persist).
void Finish(TransState& s, GlobalStatus status, absl::Time now);
// Calls, one at a time and last first, the branches at `indexes` (registration order) that
// have not succeeded: each only once every later one durably succeeded, and only while the
// global status is durable. Once all succeeded, finishes with `final_status`.
void DecideLastFirst(TransState& s, const std::vector<int>& indexes, GlobalStatus final_status,
                     absl::Time now, Decision& d);

// The forward / backward phases of each type; called by Decide.
void DecideSaga(TransState& s, absl::Time now, Decision& d);
void DecideTcc(TransState& s, absl::Time now, Decision& d);
void DecideMsg(TransState& s, absl::Time now, Decision& d);
// Marks saga actions that may have run before a restart as attempted.
void MarkSagaRecovered(TransState& s);

}  // namespace machine
}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_MACHINE_INTERNAL_H_
