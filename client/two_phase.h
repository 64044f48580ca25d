// The client's side of a transaction whose branches register themselves while it is PREPARED
// (tcc, xa): prepare it, run the client's body, then submit it when the body returned OK or
// abort it when the body returned an error or threw. Shared by Tcc and Xa.
#ifndef DTM_CLIENT_TWO_PHASE_H_
#define DTM_CLIENT_TWO_PHASE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/coordinator_client.h"

namespace dtm {
namespace two_phase {

// The deadline of one branch call the client makes: options.request_timeout, or the
// coordinator's default (3 s) when the options name none.
absl::Duration BranchCallTimeout(const v1::TransOptions& options);

absl::Status Prepare(CoordinatorClient* client, const std::string& gid, v1::TransType type,
                     const v1::TransOptions& options);
// Phase 2's commit, through CommitAnswer: ABORTED if the transaction was rolled back first.
absl::StatusOr<v1::SubmitResponse> Submit(CoordinatorClient* client, const std::string& gid,
                                          v1::TransType type, bool wait_result);
absl::Status Abort(CoordinatorClient* client, const std::string& gid, v1::TransType type,
                   const std::string& reason);

// Runs `body` on the prepared transaction, then submits it (OK) or aborts it (an error: the
// body's error is returned, with Abort's failure appended if that failed too; an exception:
// rethrown after the Abort).
absl::StatusOr<v1::SubmitResponse> RunThenDecide(CoordinatorClient* client, const std::string& gid,
                                                 v1::TransType type, bool wait_result,
                                                 const std::function<absl::Status()>& body);

}  // namespace two_phase
}  // namespace dtm

#endif  // DTM_CLIENT_TWO_PHASE_H_
