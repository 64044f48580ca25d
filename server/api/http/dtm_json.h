// DTM's JSON, as its HTTP API and its SDKs (Go's dtmcli, Python, Node, PHP, Java, C#) write
// it, to and from the model: a global transaction (DTM's TransGlobal: gid, trans_type, steps,
// payloads, custom_data, the options in seconds, query_prepared, rollback_reason), a tcc
// branch registration, and the shapes of query and all. Pure functions over strings, so the
// JSON library stays inside dtm_json.cc.
//
// Stricter than DTM where DTM is sloppy: malformed JSON, a field of the wrong type, a missing
// gid, an unknown trans_type, payloads that do not match the steps are INVALID_ARGUMENT with a
// message naming the field (DTM answers 500, or stores the mistake). Unknown keys are ignored
// and null stands for "not set", as DTM's SDKs rely on.
#ifndef DTM_SERVER_API_HTTP_DTM_JSON_H_
#define DTM_SERVER_API_HTTP_DTM_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/api/common/checks.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"

namespace dtm {

// What a route does with the transaction in its body.
enum class DtmRoute { kPrepare, kSubmit, kAbort, kForceStop };

// A prepare, submit, abort or forceStop body, read and checked. For kPrepare and kSubmit a
// whole Transaction (status PREPARED or SUBMITTED; a tcc, or a msg without steps, is the
// phase-2 commit of a prepared one); for kAbort and kForceStop only gid, trans_type (abort)
// and rollback_reason are read.
absl::StatusOr<Transaction> ParseDtmTransaction(absl::string_view body, DtmRoute route,
                                                const ApiLimits& limits);
// A registerBranch body (every value a string): a tcc's branch_id, confirm, cancel and data.
absl::StatusOr<BranchRegistration> ParseDtmRegistration(absl::string_view body,
                                                        const ApiLimits& limits);

// DTM's names: "prepared", "submitted", "aborting", "succeed", "failed"; "saga", "tcc", "msg".
const char* DtmStatusName(GlobalStatus s);
const char* DtmBranchStatusName(BranchStatus s);
// kUnspecified if `name` is none of DtmStatusName's.
GlobalStatus ParseDtmStatus(absl::string_view name);
TransType ParseDtmTransType(absl::string_view name);

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
