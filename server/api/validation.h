// Validation of incoming dtm.v1 requests, on the checks every face shares
// (server/api/common/checks.h). Every error is INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for
// sizes, FAILED_PRECONDITION for an operation the mode does not allow) with a message naming
// the field and the offending value. Pure functions.
#ifndef DTM_SERVER_API_VALIDATION_H_
#define DTM_SERVER_API_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dtm/v1/coordinator.pb.h"
#include "server/api/common/checks.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"

namespace dtm {

// Turns a Submit request into a domain transaction (status SUBMITTED, times unset): a whole
// saga or msg, or (no branches) the phase-2 commit of a prepared tcc or msg.
absl::StatusOr<Transaction> SubmitToTransaction(const v1::SubmitRequest& req,
                                                const ApiLimits& limits);
// Turns a Prepare request into a new PREPARED tcc (no branches) or msg.
absl::StatusOr<Transaction> PrepareToTransaction(const v1::PrepareRequest& req,
                                                 const ApiLimits& limits);
absl::Status ValidateAbort(const v1::AbortRequest& req);
absl::StatusOr<BranchRegistration> ReadRegistration(const v1::RegisterBranchRequest& req,
                                                    const ApiLimits& limits);
absl::StatusOr<ListQuery> ListToQuery(const v1::ListRequest& req, const ApiLimits& limits);

}  // namespace dtm

#endif  // DTM_SERVER_API_VALIDATION_H_
