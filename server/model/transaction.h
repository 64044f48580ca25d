// Domain types of the coordinator: a global transaction and its branches. Plain structs,
// independent of protobuf and of any database; the API layer, the engine and the stores all
// speak them.
#ifndef DTM_SERVER_MODEL_TRANSACTION_H_
#define DTM_SERVER_MODEL_TRANSACTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dtm {

// Numeric values equal the proto enums, and are what the stores persist.
enum class TransType : int { kUnspecified = 0, kSaga = 1, kTcc = 2, kMsg = 3, kXa = 4 };
enum class GlobalStatus : int {
  kUnspecified = 0,
  kPrepared = 1,
  kSubmitted = 2,
  kAborting = 3,
  kSucceeded = 4,
  kFailed = 5,
};
enum class BranchOp : int {
  kUnspecified = 0,
  kAction = 1,
  kCompensate = 2,
  kTry = 3,
  kConfirm = 4,
  kCancel = 5,
  kCommit = 6,    // xa phase 2
  kRollback = 7,  // xa phase 2
};
enum class BranchStatus : int { kUnspecified = 0, kPrepared = 1, kSucceeded = 2, kFailed = 3 };

const char* TransTypeName(TransType t);        // "saga", "tcc", "msg", "xa" (DTM's values)
const char* BranchOpName(BranchOp op);         // "action", "compensate", ...
const char* GlobalStatusName(GlobalStatus s);  // "SUBMITTED", ...
const char* BranchStatusName(BranchStatus s);  // "PREPARED", "SUCCEEDED", "FAILED"
// Tcc and xa: the client prepares the global transaction, branches register themselves while
// it is PREPARED, and the client's Submit or Abort decides phase 2 (confirm/commit or
// cancel/rollback of every registered branch).
inline bool HasRegisteredBranches(TransType t) {
  return t == TransType::kTcc || t == TransType::kXa;
}
// The ops of a registered branch's phase 2: tcc confirm/cancel, xa commit/rollback.
inline BranchOp CommitOp(TransType t) {
  return t == TransType::kXa ? BranchOp::kCommit : BranchOp::kConfirm;
}
inline BranchOp RollbackOp(TransType t) {
  return t == TransType::kXa ? BranchOp::kRollback : BranchOp::kCancel;
}
inline bool IsTerminal(GlobalStatus s) {
  return s == GlobalStatus::kSucceeded || s == GlobalStatus::kFailed;
}

struct TransOptions {
  bool wait_result = false;
  absl::Duration timeout_to_fail = absl::ZeroDuration();  // zero: no timeout
  absl::Duration retry_interval = absl::Seconds(1);
  absl::Duration max_retry_interval = absl::Minutes(5);
  absl::Duration request_timeout = absl::Seconds(3);
  int32_t retry_limit = 0;  // zero: unlimited
  std::map<std::string, std::string> branch_headers;
  bool concurrent = false;
  // Msg only: deliver no sooner than this after the message is submitted.
  absl::Duration delay = absl::ZeroDuration();

  bool operator==(const TransOptions& o) const;
};

struct Branch {
  std::string branch_id;
  BranchOp op = BranchOp::kUnspecified;
  std::string target;  // empty: no-op that succeeds
  std::string payload;
  BranchStatus status = BranchStatus::kPrepared;
  int32_t attempts = 0;
  std::string last_error;
  absl::Time finish_time = absl::InfinitePast();
  // Saga actions only: indexes of steps that must succeed first (concurrent mode).
  std::vector<int32_t> after;

  bool operator==(const Branch& o) const;
};

struct Transaction {
  std::string gid;
  TransType trans_type = TransType::kUnspecified;
  GlobalStatus status = GlobalStatus::kUnspecified;
  TransOptions options;
  absl::Time create_time = absl::InfinitePast();
  absl::Time update_time = absl::InfinitePast();
  absl::Time finish_time = absl::InfinitePast();
  absl::Time next_retry_time = absl::InfinitePast();
  std::string rollback_reason;
  std::string query_prepared;
  // The coordinator (replica) working on it and until when its lease holds; others claim it
  // only once the lease has expired.
  std::string owner;
  absl::Time lease_expire = absl::InfinitePast();
  // The name of the client identity that created it (dtmd's --auth_tokens_file); "" when
  // clients are not authenticated. Clients without the admin role act only on their own.
  std::string creator{};
  // Its W3C trace context (trace_context.h): a valid traceparent, or "" for a transaction
  // stored before the coordinator kept one; the tracestate to forward with it.
  std::string traceparent{};
  std::string tracestate{};
  // Saga: step i has its action at 2*i and its compensation at 2*i+1. Tcc: registered branch
  // i has its confirm at 2*i and its cancel at 2*i+1 (xa: its commit and its rollback). Msg:
  // step i's action at i.
  std::vector<Branch> branches;

  bool operator==(const Transaction& o) const;
};

// A tcc or xa branch as it registers itself: what to call to confirm it and to cancel it (xa:
// to commit and to roll back its prepared local transaction, usually one target), and the
// payload both calls carry.
struct BranchRegistration {
  std::string gid;
  std::string branch_id;
  std::string confirm;  // xa: called with op commit
  std::string cancel;   // xa: called with op rollback
  std::string payload;
  // Bounds the tcc stays within once this branch is appended (0: none): how many branches
  // it may have registered, how many bytes of targets and payloads its branches may hold.
  int64_t max_registrations = 0;
  int64_t max_transaction_bytes = 0;
  // Who registers it: non-empty, only into a tcc this identity created (checked where the
  // branch is written, so that no check-then-act window lets another client in); "": anyone.
  std::string actor{};
  // kTcc or kXa: the type of the global transaction, and so the ops of the two branch rows.
  TransType trans_type{TransType::kTcc};
};

// What a branch service said, made fit to store and show: valid UTF-8 (an invalid byte
// becomes U+FFFD), no NUL or other control characters but tab, at most `max_bytes` (cut at a
// character boundary, marked with "..."). Branch answers are text we do not control; a
// database may refuse to store what is not valid text, and must never be asked to again.
std::string CleanBranchMessage(absl::string_view message, size_t max_bytes = 1024);

// Formats saga step index `i` as a branch id: 0 -> "01", 9 -> "10".
std::string SagaBranchId(int step);

}  // namespace dtm

#endif  // DTM_SERVER_MODEL_TRANSACTION_H_
