// DTM's gRPC requests (dtmgimp.DtmRequest, dtmgimp.DtmBranchRequest) to the model, and the
// model's answers to the status codes DTM's SDKs read. Pure functions.
//
// A DtmRequest carries what DTM's HTTP API carries, in proto fields: options in whole seconds
// (0 keeps the default), steps and custom_data as JSON text, one payload per step in
// BinPayloads. Both faces read that JSON and apply the same rules through one parser
// (server/api/http/dtm_json.h); refusals name DTM's proto fields ("Steps[1].action",
// "BinPayloads", "TransOptions.TimeoutToFail"). Stricter than DTM, which answers INTERNAL or
// stores the mistake: bad input is INVALID_ARGUMENT, DTM's workflow UNIMPLEMENTED.
#ifndef DTM_SERVER_API_DTMGIMP_DTMGIMP_CONVERT_H_
#define DTM_SERVER_API_DTMGIMP_DTMGIMP_CONVERT_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dtmgimp.pb.h"
#include "server/api/common/checks.h"
#include "server/api/http/dtm_json.h"
#include "server/model/transaction.h"

namespace dtm {

// The names of DTM's proto fields, as refusals quote them.
const DtmFieldNames& DtmgimpNames();

// A Prepare or Submit: the whole transaction, with status PREPARED or SUBMITTED (a tcc or xa,
// or a msg without steps, commits the prepared one). An Abort: gid, trans type and
// RollbackReason only (DTM's SDKs send the rest again; it is not read).
absl::StatusOr<Transaction> DtmRequestToTransaction(const dtmgimp::DtmRequest& req, DtmRoute route,
                                                    const ApiLimits& limits);
// A RegisterBranch: a tcc's Data confirm and cancel, or an xa's Data url (its commit and
// rollback target); BusiPayload is the payload of its phase-2 calls. Op is not read (no
// coordinator reads it).
absl::StatusOr<BranchRegistration> DtmBranchRequestToRegistration(
    const dtmgimp::DtmBranchRequest& req, const ApiLimits& limits);

// The status this face answers for what the engine or the checks said, in DTM's convention
// (DTM's SDKs take ABORTED for FAILURE, FAILED_PRECONDITION for ONGOING): a state change the
// transaction refuses (FAILED_PRECONDITION, NOT_FOUND, ALREADY_EXISTS) is ABORTED with the
// same message; everything else is unchanged.
absl::Status ToDtmgimpStatus(const absl::Status& s);

}  // namespace dtm

#endif  // DTM_SERVER_API_DTMGIMP_DTMGIMP_CONVERT_H_
