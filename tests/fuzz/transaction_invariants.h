// What every transaction and registration a face of the coordinator accepts must satisfy,
// whichever face read it (dtm.v1 over gRPC, DTM's JSON): the rules of
// server/api/common/checks.h, checked again on the result rather than on the request. Used by
// fuzz_validation and fuzz_dtm_json; every broken rule aborts (FUZZ_CHECK).
#ifndef DTM_TESTS_FUZZ_TRANSACTION_INVARIANTS_H_
#define DTM_TESTS_FUZZ_TRANSACTION_INVARIANTS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/common/target.h"
#include "server/api/common/checks.h"
#include "server/model/transaction.h"
#include "tests/fuzz/fuzz_check.h"

namespace dtm {
namespace fuzz {

// The limits the fuzz targets check with: dtmd's defaults.
inline const ApiLimits& Limits() {
  static const ApiLimits* limits = new ApiLimits();
  return *limits;
}

inline void CheckTargetField(const std::string& target, const std::string& field) {
  if (target.empty()) return;
  absl::Status st = ValidateTarget(target, field);
  FUZZ_CHECK(st.ok(), field, " ", Q(target),
             " was accepted but does not validate: ", st.ToString());
}

inline void CheckDuration(absl::Duration d, const char* field) {
  FUZZ_CHECK(d >= absl::ZeroDuration(), field, " is negative: ", absl::FormatDuration(d));
  FUZZ_CHECK(d != absl::InfiniteDuration(), field, " is infinite");
}

// Whether the saga's `after` edges (step i waits for steps[i].after) form no cycle: Kahn's
// algorithm, independent of the depth-first search in checks.cc.
inline bool Acyclic(const std::vector<std::vector<int32_t>>& after) {
  const size_t n = after.size();
  std::vector<int> waiting(n, 0);
  std::vector<std::vector<size_t>> unblocks(n);
  for (size_t i = 0; i < n; ++i) {
    for (int32_t a : after[i]) {
      ++waiting[i];
      unblocks[static_cast<size_t>(a)].push_back(i);
    }
  }
  std::vector<size_t> ready;
  for (size_t i = 0; i < n; ++i) {
    if (waiting[i] == 0) ready.push_back(i);
  }
  size_t done = 0;
  while (!ready.empty()) {
    size_t i = ready.back();
    ready.pop_back();
    ++done;
    for (size_t j : unblocks[i]) {
      if (--waiting[j] == 0) ready.push_back(j);
    }
  }
  return done == n;
}

// A new transaction as Submit (prepare false) or Prepare (prepare true) accepted it.
inline void CheckAcceptedTransaction(const Transaction& t, bool prepare, const ApiLimits& limits) {
  FUZZ_CHECK(ValidateGid(t.gid).ok(), "accepted gid ", Q(t.gid));
  const TransType type = t.trans_type;
  FUZZ_CHECK(type == TransType::kSaga || type == TransType::kTcc || type == TransType::kMsg ||
                 type == TransType::kXa,
             "trans_type ", static_cast<int>(type));
  FUZZ_CHECK(t.status == (prepare ? GlobalStatus::kPrepared : GlobalStatus::kSubmitted), "status ",
             GlobalStatusName(t.status), " after ", prepare ? "Prepare" : "Submit");
  FUZZ_CHECK(!(prepare && type == TransType::kSaga), "a saga was accepted by Prepare");
  FUZZ_CHECK(t.rollback_reason.size() <= kMaxReasonLength, "rollback_reason of ",
             t.rollback_reason.size(), " bytes");
  FUZZ_CHECK(t.owner.empty() && t.create_time == absl::InfinitePast() &&
                 t.update_time == absl::InfinitePast() && t.finish_time == absl::InfinitePast() &&
                 t.next_retry_time == absl::InfinitePast() &&
                 t.lease_expire == absl::InfinitePast(),
             "a new transaction has an owner or times set");

  // query_prepared: only a msg's, and a prepared msg must have one.
  FUZZ_CHECK(type == TransType::kMsg || t.query_prepared.empty(), TransTypeName(type),
             " with query_prepared ", Q(t.query_prepared));
  FUZZ_CHECK(!(type == TransType::kMsg && prepare && t.query_prepared.empty()),
             "a prepared msg without query_prepared");
  CheckTargetField(t.query_prepared, "query_prepared");

  // Options: the floors, the evened-out maximum, headers fit for gRPC metadata.
  const TransOptions& o = t.options;
  CheckDuration(o.timeout_to_fail, "timeout_to_fail");
  CheckDuration(o.retry_interval, "retry_interval");
  CheckDuration(o.max_retry_interval, "max_retry_interval");
  CheckDuration(o.request_timeout, "request_timeout");
  CheckDuration(o.delay, "delay");
  FUZZ_CHECK(o.retry_interval >= limits.min_retry_interval, "retry_interval ",
             absl::FormatDuration(o.retry_interval), " below the minimum");
  FUZZ_CHECK(o.request_timeout >= limits.min_request_timeout, "request_timeout ",
             absl::FormatDuration(o.request_timeout), " below the minimum");
  FUZZ_CHECK(o.max_retry_interval >= o.retry_interval, "max_retry_interval ",
             absl::FormatDuration(o.max_retry_interval), " < retry_interval ",
             absl::FormatDuration(o.retry_interval));
  FUZZ_CHECK(o.delay == absl::ZeroDuration() || type == TransType::kMsg, "delay on a ",
             TransTypeName(type));
  FUZZ_CHECK(type == TransType::kSaga || o.timeout_to_fail > absl::ZeroDuration(), "a ",
             TransTypeName(type), " without timeout_to_fail");
  FUZZ_CHECK(o.retry_limit >= 0, "retry_limit ", o.retry_limit);
  absl::Status headers = CheckBranchHeaders(o.branch_headers, "branch_headers", limits);
  FUZZ_CHECK(headers.ok(), "accepted branch_headers: ", headers.ToString());

  // Branches: a saga has an action and a compensation per step, a msg an action, a tcc or xa none
  // (registered later); within every limit.
  const size_t per_step = type == TransType::kSaga ? 2 : 1;
  FUZZ_CHECK(t.branches.size() % per_step == 0, "a saga with ", t.branches.size(), " branches");
  const size_t steps = t.branches.size() / per_step;
  FUZZ_CHECK(steps <= static_cast<size_t>(limits.max_steps), steps, " steps accepted, limit ",
             limits.max_steps);
  FUZZ_CHECK(!HasRegisteredBranches(type) || steps == 0, "a ", TransTypeName(type), " with ", steps,
             " steps");
  FUZZ_CHECK(type != TransType::kSaga || steps >= 1, "a saga without steps");
  FUZZ_CHECK(!(type == TransType::kMsg && prepare) || steps >= 1, "a prepared msg without steps");
  size_t bytes = 0;
  std::vector<std::vector<int32_t>> after(steps);
  for (size_t i = 0; i < t.branches.size(); ++i) {
    const Branch& b = t.branches[i];
    const size_t step = i / per_step;
    const bool compensation = type == TransType::kSaga && i % 2 == 1;
    const std::string field = absl::StrCat("branches[", i, "]");
    FUZZ_CHECK(b.branch_id == SagaBranchId(static_cast<int>(step)), field, ".branch_id ",
               Q(b.branch_id));
    FUZZ_CHECK(b.op == (compensation ? BranchOp::kCompensate : BranchOp::kAction), field, ".op ",
               BranchOpName(b.op));
    FUZZ_CHECK(b.status == BranchStatus::kPrepared && b.attempts == 0 && b.last_error.empty() &&
                   b.finish_time == absl::InfinitePast(),
               field, " is not a new branch");
    CheckTargetField(b.target, field + ".target");
    FUZZ_CHECK(b.payload.size() <= limits.max_payload_bytes, field, ".payload of ",
               b.payload.size(), " bytes");
    FUZZ_CHECK(type != TransType::kMsg || b.after.empty(), field, " of a msg has after");
    if (compensation) {
      FUZZ_CHECK(b.payload == t.branches[i - 1].payload, field,
                 ": compensation payload differs from its action's");
      FUZZ_CHECK(b.after.empty(), field, ": a compensation with after");
    } else {
      for (int32_t a : b.after) {
        FUZZ_CHECK(a >= 0 && static_cast<size_t>(a) < steps && static_cast<size_t>(a) != step,
                   field, ".after names step ", a, " of ", steps);
      }
      after[step] = b.after;
    }
    bytes += b.target.size() + b.payload.size();
  }
  FUZZ_CHECK(bytes <= limits.max_transaction_bytes, "targets and payloads of ", bytes,
             " bytes accepted, limit ", limits.max_transaction_bytes);
  FUZZ_CHECK(Acyclic(after), "a saga whose after edges form a cycle was accepted");
}

// A tcc or xa branch registration as RegisterBranch accepted it.
inline void CheckAcceptedRegistration(const BranchRegistration& r, const ApiLimits& limits) {
  FUZZ_CHECK(ValidateGid(r.gid).ok(), "accepted gid ", Q(r.gid));
  FUZZ_CHECK(ValidateBranchId(r.branch_id).ok(), "accepted branch_id ", Q(r.branch_id));
  CheckTargetField(r.confirm, "confirm");
  CheckTargetField(r.cancel, "cancel");
  FUZZ_CHECK(HasRegisteredBranches(r.trans_type), "a registration into a ",
             TransTypeName(r.trans_type));
  FUZZ_CHECK(r.trans_type != TransType::kXa || r.confirm == r.cancel,
             "an xa branch with two phase-2 targets");
  FUZZ_CHECK(r.payload.size() <= limits.max_payload_bytes, "payload of ", r.payload.size(),
             " bytes");
  FUZZ_CHECK(r.max_registrations == limits.max_steps, "max_registrations ", r.max_registrations);
  FUZZ_CHECK(r.max_transaction_bytes == static_cast<int64_t>(limits.max_transaction_bytes),
             "max_transaction_bytes ", r.max_transaction_bytes);
}

}  // namespace fuzz
}  // namespace dtm

#endif  // DTM_TESTS_FUZZ_TRANSACTION_INVARIANTS_H_
