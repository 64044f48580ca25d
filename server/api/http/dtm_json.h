// DTM's JSON, as its HTTP API and its SDKs (Go's dtmcli, Python, Node, PHP, Java, C#) write
// it, to and from the model: a global transaction (DTM's TransGlobal: gid, trans_type, steps,
// payloads, custom_data, the options in seconds, query_prepared, rollback_reason), a tcc or xa
// branch registration, and the shapes of query and all. Pure functions over strings, so the
// JSON library stays inside dtm_json.cc.
//
// DTM's gRPC API (dtmgimp.Dtm) carries the same transaction with its steps and custom_data as
// JSON text in proto fields: the pieces both faces read alike (steps, custom_data, the trans
// type, the rules a prepare or submit and a registration follow) are here too, with the field
// names each face uses in its messages, so that the two faces cannot drift apart.
//
// Stricter than DTM where DTM is sloppy: malformed JSON, a field of the wrong type, a missing
// gid, an unknown trans_type, payloads that do not match the steps are INVALID_ARGUMENT with a
// message naming the field (DTM answers 500, or stores the mistake). Unknown keys are ignored
// and null stands for "not set", as DTM's SDKs rely on.
#ifndef DTM_SERVER_API_HTTP_DTM_JSON_H_
#define DTM_SERVER_API_HTTP_DTM_JSON_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/api/common/checks.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"

namespace dtm {

// What a route does with the transaction in its body.
enum class DtmRoute { kPrepare, kSubmit, kAbort, kForceStop };

// How a face names DTM's fields in its messages: the HTTP API's JSON keys ("steps",
// "payloads[0]", "confirm") or the gRPC API's proto fields ("Steps", "BinPayloads[0]",
// "Data['confirm']").
struct DtmFieldNames {
  std::string gid;
  std::string trans_type;
  std::string options;  // prefix of the options' names, for FinishOptions
  std::string steps;
  std::string query_prepared;
  StepFields step_fields;
  std::string branch_id;
  std::string payload;                                     // a registration's payload
  std::function<std::string(absl::string_view key)> data;  // a registration's targets
};
// The HTTP API's names.
const DtmFieldNames& HttpDtmNames();

// A prepare, submit, abort or forceStop body, read and checked. For kPrepare and kSubmit a
// whole Transaction (status PREPARED or SUBMITTED; a tcc or xa, or a msg without steps, is the
// phase-2 commit of a prepared one); for kAbort and kForceStop only gid, trans_type (abort)
// and rollback_reason are read.
absl::StatusOr<Transaction> ParseDtmTransaction(absl::string_view body, DtmRoute route,
                                                const ApiLimits& limits);
// A registerBranch body (every value a string): a tcc's branch_id, confirm, cancel and data;
// an xa's branch_id and url (its phase-2 target, called to commit and to roll back).
absl::StatusOr<BranchRegistration> ParseDtmRegistration(absl::string_view body,
                                                        const ApiLimits& limits);

// The pieces both faces share.
//
// The trans type DTM calls `name` (saga, tcc, msg, xa); INVALID_ARGUMENT naming `field` when
// it is empty or another.
absl::StatusOr<TransType> CheckDtmTransType(const std::string& name, const std::string& field);
// FAILED_PRECONDITION, a refused state change as DTM answers it, for a saga's prepare or abort.
absl::Status CheckDtmRoute(TransType type, DtmRoute route);
// DTM's steps as JSON text: an array of {"action": target, "compensate": target} objects (a
// step's "data" is read as its payload, DTM's legacy HTTP form). Empty or "null" (what DTM's
// Go SDK sends for a tcc) is no step. Messages name `field` ("Steps[1].action").
absl::StatusOr<std::vector<StepSpec>> ParseDtmSteps(absl::string_view text,
                                                    absl::string_view field);
// Applies DTM's custom_data, a JSON text, to a transaction of `type`: a saga's
// {"concurrent": true, "orders": {"1": [0]}} (step 1 runs after step 0) sets
// options.concurrent and the steps' `after`; a msg's {"delay": seconds} sets options.delay.
// Keys match whatever their case, as DTM's Go decoding matches them. Empty: nothing.
absl::Status ApplyDtmCustomData(absl::string_view text, absl::string_view field, TransType type,
                                std::vector<StepSpec>& steps, TransOptions& options);
// A prepare or submit once a face read it into `t` (gid, trans_type, rollback_reason, options
// over their defaults, query_prepared) and `steps`: sets its status, checks what its trans
// type needs and allows (a saga's steps, no steps for a tcc or xa, a prepared msg's steps and
// back-check), then its options and targets, and builds its branches.
absl::StatusOr<Transaction> FinishDtmTransaction(Transaction t, const std::vector<StepSpec>& steps,
                                                 DtmRoute route, const DtmFieldNames& names,
                                                 const ApiLimits& limits);
// A registration once a face read it into `r` (gid, branch_id, confirm, cancel, payload),
// with its trans type's name and, for an xa, its `url`: checks them; an xa's url becomes both
// its confirm (commit) and its cancel (rollback). A trans type whose branches do not register
// themselves is FAILED_PRECONDITION.
absl::StatusOr<BranchRegistration> FinishDtmRegistration(BranchRegistration r,
                                                         const std::string& trans_type,
                                                         const std::string& url,
                                                         const DtmFieldNames& names,
                                                         const ApiLimits& limits);

// DTM's names: "prepared", "submitted", "aborting", "succeed", "failed"; "saga", "tcc", "msg",
// "xa".
const char* DtmStatusName(GlobalStatus s);
const char* DtmBranchStatusName(BranchStatus s);
// kUnspecified if `name` is none of DtmStatusName's.
GlobalStatus ParseDtmStatus(absl::string_view name);
TransType ParseDtmTransType(absl::string_view name);

// What a submit answers in DTM's convention once the engine took it, from the status it
// reached: OK (accepted; with `wait`, succeeded); ABORTED, DTM's FAILURE (with `wait`, the
// transaction failed: its rollback reason; without, it had ended before; wait or not, it is
// ABORTING, which can only end FAILED, e.g. a tcc or xa whose timeout_to_fail passed before
// its client's submit); FAILED_PRECONDITION,
// DTM's ONGOING (with `wait`, still running when its first round stalled; DTM answers the
// same FAILURE for "failed" and "still running", here they differ).
absl::Status DtmSubmitOutcome(const std::string& gid, GlobalStatus status,
                              const std::string& rollback_reason, bool wait);

// GET query: {"branches": [...], "transaction": {...}}, or a null transaction.
std::string DtmQueryJson(const Transaction* t);
// GET all: {"next_position": "...", "transactions": [...]}.
std::string DtmListJson(const ListPage& page);
// The answers: {"dtm_result":"SUCCESS"} with `extra` (a JSON object's members, or "");
// {"dtm_result":"FAILURE","message":...}; {"dtm_result":"ONGOING","message":...}.
std::string DtmSuccessJson(const std::string& extra_key = "", const std::string& extra_value = "");
std::string DtmResultJson(const char* result, const std::string& message);

}  // namespace dtm

#endif  // DTM_SERVER_API_HTTP_DTM_JSON_H_
