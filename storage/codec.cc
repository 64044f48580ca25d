#include "storage/codec.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dtm {

std::string SqlPlaceholders(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += i ? ",?" : "?";
  return out;
}

std::string PgPlaceholders(int n, int first) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, i ? "," : "", "$", first + i);
  return out;
}

namespace {

std::string StatusIn(std::initializer_list<GlobalStatus> statuses) {
  return absl::StrCat("status IN (",
                      absl::StrJoin(statuses, ",",
                                    [](std::string* out, GlobalStatus s) {
                                      absl::StrAppend(out, static_cast<int>(s));
                                    }),
                      ")");
}

std::string StatusBetween(GlobalStatus lo, GlobalStatus hi) {
  return absl::StrCat("status BETWEEN ", SqlValue(lo), " AND ", SqlValue(hi));
}

}  // namespace

const std::string& SqlNotTerminal() {
  static const std::string* sql = new std::string(
      StatusIn({GlobalStatus::kPrepared, GlobalStatus::kSubmitted, GlobalStatus::kAborting}));
  return *sql;
}

const std::string& SqlRunning() {
  static const std::string* sql =
      new std::string(StatusIn({GlobalStatus::kSubmitted, GlobalStatus::kAborting}));
  return *sql;
}

const std::string& SqlTerminal() {
  static const std::string* sql =
      new std::string(StatusIn({GlobalStatus::kSucceeded, GlobalStatus::kFailed}));
  return *sql;
}

const std::string& SqliteNotTerminal() {
  static const std::string* sql =
      new std::string(StatusBetween(GlobalStatus::kPrepared, GlobalStatus::kAborting));
  return *sql;
}

const std::string& SqliteRunning() {
  static const std::string* sql =
      new std::string(StatusBetween(GlobalStatus::kSubmitted, GlobalStatus::kAborting));
  return *sql;
}

const std::string& SqliteTerminal() {
  static const std::string* sql =
      new std::string(StatusBetween(GlobalStatus::kSucceeded, GlobalStatus::kFailed));
  return *sql;
}

std::string SqlPrepared(TransType type) {
  return absl::StrCat("(status = ", SqlValue(GlobalStatus::kPrepared),
                      " AND trans_type = ", SqlValue(type), ")");
}

std::string SqlDelayedMsg(const std::string& now) {
  return absl::StrCat("(trans_type = ", SqlValue(TransType::kMsg),
                      " AND status = ", SqlValue(GlobalStatus::kSubmitted),
                      " AND delay_us > 0 AND coalesce(update_time, 0) + delay_us > ", now,
                      " AND NOT EXISTS (SELECT 1 FROM trans_branch b WHERE b.gid = "
                      "trans_global.gid AND b.attempts > 0))");
}

std::string EncodeHeaders(const std::map<std::string, std::string>& h) {
  return absl::StrJoin(h, "\n", absl::PairFormatter("="));
}

std::map<std::string, std::string> DecodeHeaders(const std::string& s) {
  std::map<std::string, std::string> h;
  for (absl::string_view line : absl::StrSplit(s, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    h.emplace(std::move(kv));
  }
  return h;
}

std::string EncodeAfter(const std::vector<int32_t>& a) { return absl::StrJoin(a, ","); }

std::vector<int32_t> DecodeAfter(const std::string& s) {
  std::vector<int32_t> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int32_t v;
    if (absl::SimpleAtoi(p, &v)) out.push_back(v);
  }
  return out;
}

std::string EncodePageToken(const Transaction& last) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(absl::ToUnixMicros(last.create_time), "|", last.gid));
}

size_t TransactionBytes(const Transaction& t) {
  size_t n =
      64 + t.gid.size() + t.rollback_reason.size() + t.query_prepared.size() + t.owner.size();
  for (const auto& [k, v] : t.options.branch_headers) n += k.size() + v.size() + 4;
  for (const Branch& b : t.branches) {
    n += 32 + b.branch_id.size() + b.target.size() + b.payload.size() + b.last_error.size();
  }
  return n;
}

ListPage FinishPage(std::vector<Transaction> rows, const ListQuery& q) {
  ListPage page;
  size_t bytes = 0;
  size_t keep = 0;
  while (keep < rows.size() && static_cast<int>(keep) < q.page_size) {
    if (q.max_bytes > 0 && keep > 0 && bytes + TransactionBytes(rows[keep]) > q.max_bytes) break;
    bytes += TransactionBytes(rows[keep]);
    ++keep;
  }
  const bool more = keep < rows.size();
  rows.resize(keep);
  page.transactions = std::move(rows);
  if (more && keep > 0) page.next_page_token = EncodePageToken(page.transactions.back());
  return page;
}

absl::StatusOr<PageCursor> DecodePageToken(const std::string& token) {
  std::string decoded;
  PageCursor c;
  if (absl::WebSafeBase64Unescape(token, &decoded)) {
    std::pair<std::string, std::string> parts = absl::StrSplit(decoded, absl::MaxSplits('|', 1));
    if (absl::SimpleAtoi(parts.first, &c.create_time_us)) {
      c.gid = std::move(parts.second);
      return c;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("page_token '", token, "' is not a token returned by List"));
}

absl::Status NoChangeError(const std::string& gid, GlobalStatus status,
                           const std::string& row_owner, GlobalStatus expected,
                           const std::string& owner) {
  if (expected != GlobalStatus::kUnspecified && status != expected) {
    return absl::FailedPreconditionError(absl::StrCat("transaction '", gid, "' is ",
                                                      GlobalStatusName(status), ", expected ",
                                                      GlobalStatusName(expected)));
  }
  if (!owner.empty() && row_owner != owner) {
    return absl::AbortedError(absl::StrCat("transaction '", gid, "' is now owned by coordinator '",
                                           row_owner, "', not '", owner, "' (its lease ran out)"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("transaction '", gid, "' is ", GlobalStatusName(status)));
}

absl::Status RegisterRefusal(const RegisterOp& op, TransType type, GlobalStatus status,
                             const std::string& creator) {
  const std::string& gid = op.gid;
  if (!op.actor.empty() && creator != op.actor) {
    return absl::PermissionDeniedError(absl::StrCat("transaction '", gid,
                                                    "' belongs to another client; '", op.actor,
                                                    "' (submit role) acts only on its own"));
  }
  if (type != op.trans_type) {
    return absl::AlreadyExistsError(
        absl::StrCat("gid '", gid, "' is a ", TransTypeName(type), " transaction, not the ",
                     TransTypeName(op.trans_type), " this branch registers into"));
  }
  if (status != GlobalStatus::kPrepared) {
    return absl::FailedPreconditionError(
        absl::StrCat(TransTypeName(type), " '", gid, "' is ", GlobalStatusName(status),
                     "; branches can be registered only while it is PREPARED"));
  }
  return absl::OkStatus();
}

absl::Status CompareRegistered(const RegisterOp& op,
                               const std::vector<std::pair<BranchOp, std::string>>& stored,
                               bool same_payload) {
  std::string confirm, cancel;
  for (const auto& [o, target] : stored) {
    (o == BranchOp::kConfirm || o == BranchOp::kCommit ? confirm : cancel) = target;
  }
  const char* type = TransTypeName(op.trans_type);
  if (confirm == op.confirm && cancel == op.cancel) {
    if (same_payload) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat("branch_id '", op.branch_id, "' of ", type, " '",
                                                 op.gid,
                                                 "' is already registered with another payload"));
  }
  if (op.trans_type == TransType::kXa) {
    return absl::AlreadyExistsError(absl::StrCat("branch_id '", op.branch_id, "' of xa '", op.gid,
                                                 "' is already registered with phase2_target '",
                                                 confirm, "', not '", op.confirm, "'"));
  }
  return absl::AlreadyExistsError(
      absl::StrCat("branch_id '", op.branch_id, "' of ", type, " '", op.gid,
                   "' is already registered with confirm '", confirm, "' and cancel '", cancel,
                   "', not confirm '", op.confirm, "' and cancel '", op.cancel, "'"));
}

int64_t RegisteredBytes(const RegisterOp& op) {
  return static_cast<int64_t>(2 * op.payload.size() + op.confirm.size() + op.cancel.size());
}

absl::Status RegisterLimitRefusal(const RegisterOp& op, int64_t rows, int64_t bytes) {
  if (op.max_registrations > 0 && rows / 2 >= op.max_registrations) {
    return absl::ResourceExhaustedError(
        absl::StrCat(TransTypeName(op.trans_type), " '", op.gid, "' already has ", rows / 2,
                     " branches registered, the limit (--max_steps) is ", op.max_registrations));
  }
  if (op.max_transaction_bytes > 0 && bytes + RegisteredBytes(op) > op.max_transaction_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(TransTypeName(op.trans_type), " '", op.gid, "' holds ", bytes,
                     " bytes of targets and payloads; branch_id '", op.branch_id, "' would add ",
                     RegisteredBytes(op), ", over the limit of ", op.max_transaction_bytes,
                     " (--max_transaction_bytes)"));
  }
  return absl::OkStatus();
}

std::vector<Branch> RegisteredBranches(const RegisterOp& op) {
  std::vector<Branch> out(2);
  out[0].op = CommitOp(op.trans_type);
  out[0].target = op.confirm;
  out[1].op = RollbackOp(op.trans_type);
  out[1].target = op.cancel;
  for (Branch& b : out) {
    b.branch_id = op.branch_id;
    b.payload = op.payload;
  }
  return out;
}

}  // namespace dtm
