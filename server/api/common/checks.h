// What every face of the coordinator (dtm.v1 over gRPC, DTM's HTTP API) checks in a request
// before the engine sees it, on plain values rather than on one face's messages, so that a
// transaction is held to the same rules whichever way it came in. Every refusal is
// INVALID_ARGUMENT (RESOURCE_EXHAUSTED for sizes) with a message that names the field, as the
// face calls it, and the value. Pure functions.
#ifndef DTM_SERVER_API_COMMON_CHECKS_H_
#define DTM_SERVER_API_COMMON_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api/common/allowed_targets.h"
#include "server/api/common/auth.h"
#include "server/model/transaction.h"

namespace dtm {

// What one request, and one transaction over its life, may hold. Each is a dtmd flag; the
// defaults keep every answer (Query of the biggest transaction, one List page) well inside
// what gRPC and the coordinator's memory take, and every branch call deliverable.
struct ApiLimits {
  size_t max_payload_bytes = 1 << 20;  // per step
  // Steps of a saga or msg; registered branches of a tcc.
  int max_steps = 1000;
  int max_page_size = 1000;
  // All of a transaction's payloads and targets together, registered tcc branches included.
  size_t max_transaction_bytes = 16 << 20;
  // One List page, as TransactionBytes counts (the page ends early past it).
  size_t max_list_bytes = 4 << 20;
  // branch_headers: sent as gRPC metadata or HTTP headers with every branch call, so they
  // stay far below what a branch server accepts (gRPC's default is 8 KiB of metadata).
  size_t max_header_bytes = 4096;  // keys and values together
  int max_headers = 32;
  // Floors on what a client may ask for: a tiny retry_interval turns one saga into a flood of
  // calls, a tiny request_timeout fails every call.
  absl::Duration min_retry_interval = absl::Milliseconds(100);
  absl::Duration min_request_timeout = absl::Milliseconds(100);
  // The hosts and ports targets may name (--allowed_targets); null: any.
  std::shared_ptr<const AllowedTargets> allowed_targets;
  // Transactions in progress (held in memory, running or waiting for a retry) beyond which a
  // new Submit or Prepare is refused with RESOURCE_EXHAUSTED, so that a flood of transactions
  // whose branches keep failing cannot take all of dtmd's memory (about 13 KB each).
  size_t max_active_transactions = 50000;
  // RetryNow of all waiting transactions: at most once per this interval, since each one
  // calls every waiting transaction's branches at once.
  absl::Duration retry_all_interval = absl::Seconds(10);
  // The clients' bearer tokens (--auth_tokens_file); null: clients are not authenticated.
  std::shared_ptr<AuthTokens> auth_tokens{};
  // timeout_to_fail of a tcc or msg whose options leave it unset: how long it may stay
  // PREPARED before the coordinator aborts the tcc or back-checks the msg.
  absl::Duration default_timeout_to_fail = absl::Seconds(35);
};

inline constexpr size_t kMaxGidLength = 128;
inline constexpr size_t kMaxBranchIdLength = 64;
inline constexpr size_t kMaxReasonLength = 1024;
// The longest duration option (timeout_to_fail, retry intervals, request_timeout, delay) a
// client may give, whichever face it comes through: ten years, far beyond any use, and well
// inside what google.protobuf.Duration and the stores' microseconds hold.
inline constexpr absl::Duration kMaxOptionDuration = absl::Hours(24 * 3653);

// A new gid: a time-ordered prefix (readable, sorts by creation) and 64 random bits; 29 hex
// digits, URL-safe. Both faces' NewGid.
std::string NewGid();

// A gid: 1..128 characters of [A-Za-z0-9_.:-].
absl::Status ValidateGid(const std::string& gid, const char* field = "gid");
// A tcc branch id: 1..64 characters of [A-Za-z0-9_.:-].
absl::Status ValidateBranchId(const std::string& id, const char* field = "branch_id");
// A step's target: empty (a no-op that succeeds), a gRPC method or an HTTP URL, on a host and
// port limits.allowed_targets allows (PERMISSION_DENIED otherwise).
absl::Status CheckTarget(const std::string& target, const std::string& field,
                         const ApiLimits& limits);
// A payload within limits.max_payload_bytes (RESOURCE_EXHAUSTED beyond).
absl::Status CheckPayload(const std::string& payload, const std::string& field,
                          const ApiLimits& limits);
// branch_headers: keys that are valid as gRPC metadata (lowercase letters, digits, - _ .) and
// as HTTP header names, not reserved (grpc-*, dtm-*, *-bin); printable ASCII values.
// At most limits.max_headers of them, limits.max_header_bytes in all (RESOURCE_EXHAUSTED).
absl::Status CheckBranchHeaders(const std::map<std::string, std::string>& headers,
                                const std::string& field, const ApiLimits& limits);
// OK while `active` (the transactions dtmd holds in progress) is below
// limits.max_active_transactions, or when `submitted` only commits a PREPARED transaction
// (a tcc's or an xa's, or a msg's without steps: refusing it would turn overload into rollbacks);
// RESOURCE_EXHAUSTED naming the flag otherwise. `submitted` null: a Prepare.
absl::Status CheckAdmission(const Transaction* submitted, size_t active, const ApiLimits& limits);
// A reason (rollback_reason of an Abort, of a ForceStop) of at most kMaxReasonLength.
absl::Status CheckReason(const std::string& reason, const std::string& field);
// A Duration option given by a client: not negative.
absl::Status CheckDuration(absl::Duration d, const std::string& field);

// One step of a saga or msg as a client describes it.
struct StepSpec {
  std::string action;
  std::string compensate;
  std::string payload;
  std::vector<int32_t> after;  // saga, concurrent: steps whose action must succeed first
};

// How a face names the fields of step `i` in its messages.
struct StepFields {
  std::function<std::string(int i)> step;     // "steps[i]"
  std::function<std::string(int i)> payload;  // "steps[i].payload"
};

// The branches of a saga (action and compensation per step) or a msg (one action per step)
// after checking every step: targets, payloads, the step count, and for a saga that `after`
// is a DAG over existing steps; a msg has no compensation and no `after`.
absl::StatusOr<std::vector<Branch>> BuildBranches(const std::vector<StepSpec>& steps,
                                                  TransType type, const ApiLimits& limits,
                                                  const StepFields& fields);

// The options a client did not set, for a transaction of `type`: the defaults, plus
// timeout_to_fail for a tcc or msg.
TransOptions DefaultOptions(TransType type, const ApiLimits& limits);
// Checks options once a face read them into `o` (field names under `prefix`, e.g. "options.")
// and evens them out: max_retry_interval is at least retry_interval.
absl::Status FinishOptions(TransType type, const std::string& prefix, TransOptions& o,
                           const ApiLimits& limits);
// Sets the bounds the store holds a tcc to when it appends `r`'s branches (max_steps
// registrations, max_transaction_bytes).
void ApplyRegistrationLimits(BranchRegistration& r, const ApiLimits& limits);

}  // namespace dtm

#endif  // DTM_SERVER_API_COMMON_CHECKS_H_
