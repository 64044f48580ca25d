#include "server/model/transaction.h"

#include <algorithm>

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
    case TransType::kXa:
      return "xa";
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
    case BranchOp::kCommit:
      return "commit";
    case BranchOp::kRollback:
      return "rollback";
    default:
      return "unspecified";
  }
}

const char* BranchStatusName(BranchStatus s) {
  switch (s) {
    case BranchStatus::kPrepared:
      return "PREPARED";
    case BranchStatus::kSucceeded:
      return "SUCCEEDED";
    case BranchStatus::kFailed:
      return "FAILED";
    default:
      return "UNSPECIFIED";
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
         owner == o.owner && lease_expire == o.lease_expire && creator == o.creator &&
         traceparent == o.traceparent && tracestate == o.tracestate && branches == o.branches;
}

std::string SagaBranchId(int step) { return absl::StrFormat("%02d", step + 1); }

std::string CleanBranchMessage(absl::string_view message, size_t max_bytes) {
  constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  constexpr absl::string_view kCut = "...";
  std::string out;
  out.reserve(std::min(message.size(), max_bytes));
  size_t i = 0;
  while (i < message.size()) {
    const auto c = static_cast<unsigned char>(message[i]);
    // The length of a well-formed UTF-8 sequence starting here, or 0.
    size_t len = 0;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
    }
    bool ok = len > 0 && i + len <= message.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(message[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len >= 3) {
      const auto c1 = static_cast<unsigned char>(message[i + 1]);
      // Overlong forms, UTF-16 surrogates and code points past U+10FFFF.
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
          (c == 0xF4 && c1 > 0x8F)) {
        ok = false;
      }
    }
    absl::string_view piece;
    if (!ok) {
      piece = kReplacement;
      len = 1;
    } else if (len == 1 && (c < 0x20 || c == 0x7F) && c != '\t') {
      piece = " ";
    } else {
      piece = message.substr(i, len);
    }
    if (out.size() + piece.size() > max_bytes) {
      while (!out.empty() && out.size() + kCut.size() > max_bytes) {
        // Remove a whole character: continuation bytes, then the lead byte.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) {
          out.pop_back();
        }
        if (!out.empty()) out.pop_back();
      }
      if (out.size() + kCut.size() <= max_bytes) out.append(kCut.data(), kCut.size());
      return out;
    }
    out.append(piece.data(), piece.size());
    i += len;
  }
  return out;
}

}  // namespace dtm
