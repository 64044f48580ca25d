// Helpers shared by the SQL stores: how list-valued fields are encoded in one column, the
// List page token, and the error a conditional write that changed nothing reports.
#ifndef DTM_STORAGE_CODEC_H_
#define DTM_STORAGE_CODEC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/model/transaction.h"
#include "storage/store.h"

namespace dtm {

// How many columns a comma-separated column list names.
constexpr int CountColumns(const char* list) {
  int n = 1;
  for (; *list != '\0'; ++list) n += *list == ',' ? 1 : 0;
  return n;
}

// The columns of trans_global, in the order both stores read and write them.
inline constexpr char kGlobalColumns[] =
    "gid, trans_type, status, wait_result, timeout_to_fail_us, retry_interval_us, "
    "max_retry_interval_us, request_timeout_us, retry_limit, concurrent, branch_headers, "
    "create_time, update_time, finish_time, next_retry_time, rollback_reason, query_prepared, "
    "owner, lease_expire, delay_us, creator, traceparent, tracestate";
// ReadGlobalRow reads exactly these columns (codec_test checks it).
inline constexpr int kGlobalColumnCount = CountColumns(kGlobalColumns);

// "?,?,?" (SQLite) or "$3,$4,$5" (PostgreSQL, first = 3): placeholders for `n` values.
std::string SqlPlaceholders(int n);
std::string PgPlaceholders(int n, int first = 1);

// Enum values in SQL. The stores persist these numbers, and the partial indexes of existing
// databases name them (trans_global_due, trans_global_finished): SQL is built from the enums
// so that it never disagrees with the code, and renumbering an enum is a data migration, not a
// rebuild, hence these checks.
static_assert(static_cast<int>(GlobalStatus::kPrepared) == 1 &&
                  static_cast<int>(GlobalStatus::kSubmitted) == 2 &&
                  static_cast<int>(GlobalStatus::kAborting) == 3 &&
                  static_cast<int>(GlobalStatus::kSucceeded) == 4 &&
                  static_cast<int>(GlobalStatus::kFailed) == 5,
              "GlobalStatus values are stored: renumbering them needs a data migration");
static_assert(static_cast<int>(TransType::kSaga) == 1 && static_cast<int>(TransType::kTcc) == 2 &&
                  static_cast<int>(TransType::kMsg) == 3 && static_cast<int>(TransType::kXa) == 4,
              "TransType values are stored: renumbering them needs a data migration");
static_assert(static_cast<int>(BranchOp::kAction) == 1 &&
                  static_cast<int>(BranchOp::kCompensate) == 2 &&
                  static_cast<int>(BranchOp::kTry) == 3 &&
                  static_cast<int>(BranchOp::kConfirm) == 4 &&
                  static_cast<int>(BranchOp::kCancel) == 5 &&
                  static_cast<int>(BranchOp::kCommit) == 6 &&
                  static_cast<int>(BranchOp::kRollback) == 7,
              "BranchOp values are stored: renumbering them needs a data migration");
static_assert(static_cast<int>(BranchStatus::kPrepared) == 1 &&
                  static_cast<int>(BranchStatus::kSucceeded) == 2 &&
                  static_cast<int>(BranchStatus::kFailed) == 3,
              "BranchStatus values are stored: renumbering them needs a data migration");

// The number an enum value is stored as, as SQL text: SqlValue(GlobalStatus::kPrepared) is "1".
template <typename Enum>
std::string SqlValue(Enum e) {
  return std::to_string(static_cast<int>(e));
}
// Predicates on trans_global.status, built once from GlobalStatus.
// Predicates on trans_global.status, built once from GlobalStatus. The partial indexes use
// the same text as the queries (a database uses a partial index only for a query whose
// predicate it can prove implies the index's), so changing one needs a migration that
// recreates the indexes.
const std::string& SqlNotTerminal();  // "status IN (1,2,3)": PREPARED, SUBMITTED, ABORTING
const std::string& SqlRunning();      // "status IN (2,3)": SUBMITTED, ABORTING
const std::string& SqlTerminal();     // "status IN (4,5)": SUCCEEDED, FAILED
// The same sets as ranges ("status BETWEEN 1 AND 3"), for SQLite: it evaluates an IN list
// through a temporary b-tree built for every evaluation, and a partial index's predicate is
// evaluated on every write of a row, so each UPDATE of a transaction allocated and freed two
// b-trees (and the allocator returned that memory to the kernel, an madvise and a TLB
// shootdown per statement). The stored numbering makes each set a range (static_asserts
// above).
const std::string& SqliteNotTerminal();  // "status BETWEEN 1 AND 3"
const std::string& SqliteRunning();      // "status BETWEEN 2 AND 3"
const std::string& SqliteTerminal();     // "status BETWEEN 4 AND 5"
// "(status = 1 AND trans_type = <type>)": a PREPARED transaction of `type`.
std::string SqlPrepared(TransType type);
// A trans_global row that is a msg still in its delivery delay at `now` (the SQL text of the
// parameter holding it, "?1" or "$1"): SUBMITTED with a delay, none of its branches called
// yet (so its update_time is still its submit's), and update_time + delay ahead. A bulk
// RetryNow leaves it alone: the delay is the client's schedule, not a backoff.
std::string SqlDelayedMsg(const std::string& now);

// branch_headers: "key=value" lines. gRPC metadata keys hold no '=' and ASCII values no '\n'.
std::string EncodeHeaders(const std::map<std::string, std::string>& h);
std::map<std::string, std::string> DecodeHeaders(const std::string& s);
// Saga `after` edges: "0,2".
std::string EncodeAfter(const std::vector<int32_t>& a);
std::vector<int32_t> DecodeAfter(const std::string& s);

// List's page token: the (create_time, gid) of the last row returned.
struct PageCursor {
  int64_t create_time_us = 0;
  std::string gid;
};
std::string EncodePageToken(const Transaction& last);
// Roughly what `t` costs in an answer: its strings and headers plus a fixed part.
size_t TransactionBytes(const Transaction& t);
// A page of List from the rows a store read for `q` (up to q.page_size + 1, newest first):
// cut at q.page_size and at q.max_bytes, with the token of the last row kept when cut.
ListPage FinishPage(std::vector<Transaction> rows, const ListQuery& q);
absl::StatusOr<PageCursor> DecodePageToken(const std::string& token);

// Why a write conditioned on `expected` status (kUnspecified: any non-terminal) and `owner`
// (empty: anyone) matched nothing, given the row's `status` and `row_owner`.
absl::Status NoChangeError(const std::string& gid, GlobalStatus status,
                           const std::string& row_owner, GlobalStatus expected,
                           const std::string& owner);

// Why a RegisterOp was refused, given the stored row's type and status, or OK if it may
// proceed.
absl::Status RegisterRefusal(const RegisterOp& op, TransType type, GlobalStatus status,
                             const std::string& creator);
// Whether registering `op` over the rows already stored under its branch id (op, target;
// `same_payload`: they all carry op's payload) is a harmless repeat (OK) or a conflict
// (ALREADY_EXISTS: what was sent again differs, and would otherwise be dropped unseen).
absl::Status CompareRegistered(const RegisterOp& op,
                               const std::vector<std::pair<BranchOp, std::string>>& stored,
                               bool same_payload);
// RESOURCE_EXHAUSTED if appending op's rows to a tcc that has `rows` branch rows holding
// `bytes` of targets and payloads would exceed op's bounds; OK otherwise.
absl::Status RegisterLimitRefusal(const RegisterOp& op, int64_t rows, int64_t bytes);
// What op's rows add to a transaction's bytes of targets and payloads.
int64_t RegisteredBytes(const RegisterOp& op);
// The confirm and cancel rows a RegisterOp appends.
std::vector<Branch> RegisteredBranches(const RegisterOp& op);

// Reads a trans_global row selected as kGlobalColumns. `Row` is a store's row cursor with
// Text(col), Int(col), Time(col) (NULL: InfinitePast) and Bytes(col).
template <typename Row>
Transaction ReadGlobalRow(const Row& r) {
  Transaction t;
  t.gid = r.Text(0);
  t.trans_type = static_cast<TransType>(r.Int(1));
  t.status = static_cast<GlobalStatus>(r.Int(2));
  t.options.wait_result = r.Int(3) != 0;
  t.options.timeout_to_fail = absl::Microseconds(r.Int(4));
  t.options.retry_interval = absl::Microseconds(r.Int(5));
  t.options.max_retry_interval = absl::Microseconds(r.Int(6));
  t.options.request_timeout = absl::Microseconds(r.Int(7));
  t.options.retry_limit = static_cast<int32_t>(r.Int(8));
  t.options.concurrent = r.Int(9) != 0;
  t.options.branch_headers = DecodeHeaders(r.Text(10));
  t.create_time = r.Time(11);
  t.update_time = r.Time(12);
  t.finish_time = r.Time(13);
  t.next_retry_time = r.Time(14);
  t.rollback_reason = r.Text(15);
  t.query_prepared = r.Text(16);
  t.owner = r.Text(17);
  t.lease_expire = r.Time(18);
  t.options.delay = absl::Microseconds(r.Int(19));
  t.creator = r.Text(20);
  t.traceparent = r.Text(21);
  t.tracestate = r.Text(22);
  return t;
}

// The columns of trans_branch that ReadBranchRow reads, in order (codec_test checks it).
inline constexpr char kBranchColumns[] =
    "branch_id, op, target, payload, status, attempts, last_error, finish_time, after";
inline constexpr int kBranchColumnCount = CountColumns(kBranchColumns);

// Reads kBranchColumns starting at column `c`.
template <typename Row>
Branch ReadBranchRow(const Row& r, int c) {
  Branch b;
  b.branch_id = r.Text(c);
  b.op = static_cast<BranchOp>(r.Int(c + 1));
  b.target = r.Text(c + 2);
  b.payload = r.Bytes(c + 3);
  b.status = static_cast<BranchStatus>(r.Int(c + 4));
  b.attempts = static_cast<int32_t>(r.Int(c + 5));
  b.last_error = r.Text(c + 6);
  b.finish_time = r.Time(c + 7);
  b.after = DecodeAfter(r.Text(c + 8));
  return b;
}

}  // namespace dtm

#endif  // DTM_STORAGE_CODEC_H_
