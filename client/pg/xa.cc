#include "client/pg/xa.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/libpq/pg_exec.h"

namespace dtm {
namespace {

using pg::Result;

// DTM's values for the barrier row of an xa branch: the action's row (op "action", barrier
// "01") is inserted by phase 1 with reason "action" and, when a rollback comes first, by
// the rollback with reason "rollback".
constexpr char kTransType[] = "xa";
constexpr char kActionOp[] = "action";
constexpr char kBarrierId[] = "01";
constexpr char kRollbackReason[] = "rollback";
// PostgreSQL's undefined_object: COMMIT/ROLLBACK PREPARED of an xid that does not exist.
constexpr char kNoSuchXid[] = "42704";

std::string Millis(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

absl::StatusOr<Result> Exec(PGconn* conn, const std::string& xid, const char* what,
                            const std::string& sql, const std::vector<std::string>& params = {}) {
  return pg::Exec(conn, absl::StrCat("xa ", xid, ": ", what), sql, params);
}

void RollbackOpen(PGconn* conn) {
  if (PQtransactionStatus(conn) != PQTRANS_IDLE) Result(PQexec(conn, "ROLLBACK"));
}

// A string literal for `value` (PREPARE TRANSACTION and its kin take no parameters).
absl::StatusOr<std::string> Literal(PGconn* conn, const std::string& value) {
  std::unique_ptr<char, decltype(&PQfreemem)> quoted(
      PQescapeLiteral(conn, value.data(), value.size()), &PQfreemem);
  if (quoted == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("xa: cannot quote xid \"", value, "\": ", pg::OneLine(PQerrorMessage(conn))));
  }
  return std::string(quoted.get());
}

}  // namespace

XaBranch::XaBranch(BranchContext branch)
    : branch_(std::move(branch)), xid_(absl::StrCat(branch_.gid, "-", branch_.branch_id)) {}

absl::StatusOr<XaBranch> XaBranch::From(const BranchContext& b) {
  // The barrier's own checks (gid and branch_id present and within its columns), for the
  // row this branch writes: the action's.
  BranchContext action_row = b;
  action_row.op = kActionOp;
  if (absl::Status barrier = Barrier::From(action_row).status(); !barrier.ok()) return barrier;
  if (b.op != kActionOp && b.op != "commit" && b.op != "rollback") {
    return absl::InvalidArgumentError(
        absl::StrCat("xa: metadata dtm-op \"", b.op, "\" is not one of action, commit, rollback"));
  }
  if (b.trans_type != kTransType) {
    return absl::InvalidArgumentError(absl::StrCat(
        "xa: metadata dtm-trans_type is \"", b.trans_type, "\", not \"xa\": an xa branch method"));
  }
  if (b.op == kActionOp && b.phase2_url.empty()) {
    return absl::InvalidArgumentError(
        "xa: metadata dtm-phase2_url is missing: an xa action registers it as the target of its "
        "commit and rollback");
  }
  XaBranch xa(b);
  if (xa.xid_.size() > kMaxXidBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("xa: transaction identifier \"<dtm-gid>-<dtm-branch_id>\" is ", xa.xid_.size(),
                     " bytes; PostgreSQL takes at most ", kMaxXidBytes, ": use a shorter gid"));
  }
  if (absl::StrContains(xa.xid_, absl::string_view("\0", 1))) {
    return absl::InvalidArgumentError("xa: metadata dtm-gid/dtm-branch_id contains a NUL byte");
  }
  return xa;
}

absl::StatusOr<XaBranch> XaBranch::From(const grpc::ServerContextBase& ctx) {
  return From(BranchContext::From(ctx));
}

absl::Status XaBranch::Handle(PGconn* conn, CoordinatorClient* coordinator,
                              const Barrier::Business& business) {
  return Handle(
      conn,
      [coordinator](const v1::RegisterBranchRequest& req) {
        return coordinator->RegisterBranch(req);
      },
      business);
}

absl::Status XaBranch::Handle(PGconn* conn, const Registrar& registrar,
                              const Barrier::Business& business) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("xa: database connection is not usable: ",
                                               conn ? PQerrorMessage(conn) : "null"));
  }
  if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
    return absl::FailedPreconditionError(
        "xa: the connection already has a transaction open; an xa branch opens its own");
  }
  if (branch_.op == kActionOp) return Prepare(conn, registrar, business);
  return Finish(conn, branch_.op == "commit");
}

absl::Status XaBranch::Prepare(PGconn* conn, const Registrar& registrar,
                               const Barrier::Business& business) {
  absl::StatusOr<std::string> xid = Literal(conn, xid_);
  if (!xid.ok()) return xid.status();
  if (absl::Status s = Exec(conn, xid_, "begin", "BEGIN").status(); !s.ok()) return s;

  absl::Status result;
  try {
    result = Exec(conn, xid_, "lock_timeout",
                  absl::StrCat("SET LOCAL lock_timeout = ", Millis(lock_timeout_)))
                 .status();
    absl::StatusOr<Result> inserted;
    if (result.ok()) {
      // Waits while another local transaction of this branch holds the row, prepared or not.
      inserted = Exec(conn, xid_, "barrier",
                      "INSERT INTO dtm_barrier.barrier(trans_type, gid, branch_id, op, "
                      "barrier_id, reason) VALUES ($1, $2, $3, $4, $5, $4) "
                      "ON CONFLICT ON CONSTRAINT uniq_barrier DO NOTHING RETURNING reason",
                      {kTransType, branch_.gid, branch_.branch_id, kActionOp, kBarrierId});
      if (!inserted.ok()) result = inserted.status();
    }
    if (result.ok() && PQntuples(inserted->get()) == 0) {
      // The row is committed: a rollback came first (this action is late), or this action
      // prepared before and its transaction has since been committed (a duplicate).
      absl::StatusOr<std::string> reason = ActionRowReason(conn);
      RollbackOpen(conn);
      if (!reason.ok()) return reason.status();
      if (*reason == kActionOp) return absl::OkStatus();
      return absl::AbortedError(absl::StrCat(
          "xa ", xid_, ": this branch was rolled back before its action could prepare"));
    }
    if (result.ok()) result = business(conn);
    if (result.ok() && PQtransactionStatus(conn) == PQTRANS_INERROR) {
      result = absl::InternalError(
          "xa: the business function returned OK but one of its statements failed");
    } else if (result.ok() && PQtransactionStatus(conn) != PQTRANS_INTRANS) {
      // It ended the local transaction itself (COMMIT, ROLLBACK): PREPARE TRANSACTION would
      // then be a no-op PostgreSQL only warns about, and this branch would answer OK for
      // work that is not prepared, beyond any rollback's reach.
      result = absl::InternalError(
          "xa: the business function ended the local transaction (COMMIT or ROLLBACK inside "
          "it); an xa branch's work must stay in the transaction the branch prepares");
    }
    if (result.ok()) {
      v1::RegisterBranchRequest reg;
      reg.set_gid(branch_.gid);
      reg.set_trans_type(v1::XA);
      reg.set_branch_id(branch_.branch_id);
      reg.set_phase2_target(branch_.phase2_url);
      absl::Status registered = registrar(reg);
      if (absl::IsFailedPrecondition(registered) || absl::IsNotFound(registered) ||
          absl::IsAborted(registered)) {
        // Timed out, aborted or never prepared: nothing will ever commit this branch.
        result = absl::AbortedError(absl::StrCat(
            "xa ", xid_,
            ": the global transaction takes no more branches: ", registered.message()));
      } else if (!registered.ok()) {
        result =
            absl::Status(registered.code(),
                         absl::StrCat("xa ", xid_, ": RegisterBranch: ", registered.message()));
      }
    }
  } catch (...) {
    RollbackOpen(conn);
    throw;
  }
  if (!result.ok()) {
    RollbackOpen(conn);
    return result;
  }
  // A failed PREPARE TRANSACTION rolls the transaction back; the session is idle either way.
  absl::StatusOr<Result> prepared =
      Exec(conn, xid_, "prepare", absl::StrCat("PREPARE TRANSACTION ", *xid));
  RollbackOpen(conn);
  if (!prepared.ok()) return prepared.status();
  // PostgreSQL answers ROLLBACK, not PREPARE TRANSACTION, when it did not prepare (e.g. the
  // transaction had failed): never report work as prepared that is not.
  if (std::string(PQcmdStatus(prepared->get())) != "PREPARE TRANSACTION") {
    return absl::InternalError(absl::StrCat("xa ", xid_, ": PREPARE TRANSACTION answered ",
                                            PQcmdStatus(prepared->get()), "; nothing is prepared"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> XaBranch::ActionRowReason(PGconn* conn) const {
  absl::StatusOr<Result> row =
      Exec(conn, xid_, "barrier",
           "SELECT reason FROM dtm_barrier.barrier WHERE trans_type = $1 AND gid = $2 AND "
           "branch_id = $3 AND op = $4 AND barrier_id = $5",
           {kTransType, branch_.gid, branch_.branch_id, kActionOp, kBarrierId});
  if (!row.ok()) return row.status();
  return PQntuples(row->get()) == 1 ? std::string(PQgetvalue(row->get(), 0, 0)) : std::string();
}

absl::Status XaBranch::Finish(PGconn* conn, bool commit) {
  absl::StatusOr<std::string> xid = Literal(conn, xid_);
  if (!xid.ok()) return xid.status();
  const char* verb = commit ? "COMMIT PREPARED " : "ROLLBACK PREPARED ";
  absl::StatusOr<Result> done = Exec(conn, xid_, verb, absl::StrCat(verb, *xid));
  if (!done.ok() && pg::SqlState(done.status()) != kNoSuchXid) return done.status();
  if (commit && !done.ok()) {
    // No such xid: committed by an earlier attempt whose answer was lost (the action's
    // barrier row is visible, as only a commit makes it), or not prepared yet: the client
    // submitted although this branch's action had not answered (it ignored an error), and
    // the action is still working. Committing nothing would leave that work prepared, holding
    // its locks, with a SUCCEEDED transaction: answer ONGOING and let the coordinator ask
    // again. A branch rolled back cannot commit: it stays visible as a stuck branch.
    absl::StatusOr<std::string> reason = ActionRowReason(conn);
    if (!reason.ok()) return reason.status();
    if (*reason == kActionOp) return absl::OkStatus();
    if (*reason == kRollbackReason) {
      return absl::InternalError(
          absl::StrCat("xa ", xid_,
                       ": this branch was rolled back, it cannot commit: its client submitted "
                       "although this branch had failed"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("xa ", xid_, ": not prepared yet (its action has not finished)"));
  }
  if (commit) return absl::OkStatus();

  // The rollback marker takes the action's row. A local transaction of this branch still in
  // flight holds that row until it ends: the insert waits for it, so that it cannot prepare
  // after this rollback returned. If it is too slow, or prepares meanwhile (its xid then
  // exists and the next attempt rolls it back), this attempt fails and is asked again.
  absl::Status s = Exec(conn, xid_, "begin", "BEGIN").status();
  if (s.ok()) {
    s = Exec(conn, xid_, "statement_timeout",
             absl::StrCat("SET LOCAL statement_timeout = ", Millis(rollback_wait_)))
            .status();
  }
  if (s.ok()) {
    s = Exec(conn, xid_, "rollback marker",
             "INSERT INTO dtm_barrier.barrier(trans_type, gid, branch_id, op, barrier_id, "
             "reason) VALUES ($1, $2, $3, $4, $5, $6) "
             "ON CONFLICT ON CONSTRAINT uniq_barrier DO NOTHING",
             {kTransType, branch_.gid, branch_.branch_id, kActionOp, kBarrierId, kRollbackReason})
            .status();
  }
  if (s.ok()) s = Exec(conn, xid_, "commit", "COMMIT").status();
  if (!s.ok()) {
    RollbackOpen(conn);
    return absl::UnavailableError(absl::StrCat(
        s.message(),
        " (a local transaction of this branch may still be in flight; ask the rollback again)"));
  }
  return absl::OkStatus();
}

}  // namespace dtm
