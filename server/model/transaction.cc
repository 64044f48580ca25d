#include "server/model/transaction.h"

#include "absl/strings/str_format.h"

namespace dtm {

const char* TransTypeName(TransType t) {
  switch (t) {
    case TransType::kSaga:
      return "saga";
    case TransType::kTcc:
      return "tcc";
    case TransType::kMsg:
      return "msg";
    default:
      return "unspecified";
  }
}

const char* BranchOpName(BranchOp op) {
  switch (op) {
    case BranchOp::kAction:
      return "action";
    case BranchOp::kCompensate:
      return "compensate";
    case BranchOp::kTry:
      return "try";
    case BranchOp::kConfirm:
      return "confirm";
    case BranchOp::kCancel:
      return "cancel";
    default:
      return "unspecified";
  }
}

const char* GlobalStatusName(GlobalStatus s) {
  switch (s) {
    case GlobalStatus::kPrepared:
      return "PREPARED";
    case GlobalStatus::kSubmitted:
      return "SUBMITTED";
    case GlobalStatus::kAborting:
      return "ABORTING";
    case GlobalStatus::kSucceeded:
      return "SUCCEEDED";
    case GlobalStatus::kFailed:
      return "FAILED";
    default:
      return "UNSPECIFIED";
  }
}

bool TransOptions::operator==(const TransOptions& o) const {
  return wait_result == o.wait_result && timeout_to_fail == o.timeout_to_fail &&
         retry_interval == o.retry_interval && max_retry_interval == o.max_retry_interval &&
         request_timeout == o.request_timeout && retry_limit == o.retry_limit &&
         branch_headers == o.branch_headers && concurrent == o.concurrent && delay == o.delay;
}

bool Branch::operator==(const Branch& o) const {
  return branch_id == o.branch_id && op == o.op && target == o.target && payload == o.payload &&
         status == o.status && attempts == o.attempts && last_error == o.last_error &&
         finish_time == o.finish_time && after == o.after;
}

bool Transaction::operator==(const Transaction& o) const {
  return gid == o.gid && trans_type == o.trans_type && status == o.status && options == o.options &&
         create_time == o.create_time && update_time == o.update_time &&
         finish_time == o.finish_time && next_retry_time == o.next_retry_time &&
         rollback_reason == o.rollback_reason && query_prepared == o.query_prepared &&
         owner == o.owner && lease_expire == o.lease_expire && branches == o.branches;
}

std::string SagaBranchId(int step) { return absl::StrFormat("%02d", step + 1); }

}  // namespace dtm
