#include "client/pg/barrier.h"

#include <iomanip>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/libpq/pg_exec.h"

namespace dtm {
namespace {

// Ops DTM sends, and the op whose row a compensating op must claim first.
constexpr const char* kOps[] = {"action", "compensate", "try", "confirm", "cancel", "msg"};
const char* OriginOp(const std::string& op) {
  if (op == "compensate") return "action";
  if (op == "cancel") return "try";
  return nullptr;
}

// DTM's constants for the barrier of a message's local transaction.
constexpr char kMsgBranch[] = "00";
constexpr char kMsgOp[] = "msg";
constexpr char kMsgBarrierId[] = "01";
constexpr char kRollbackReason[] = "rollback";

using pg::Result;

absl::StatusOr<Result> Exec(PGconn* conn, const char* what, const char* sql,
                            const std::vector<std::string>& params = {}) {
  return pg::Exec(conn, absl::StrCat("barrier: ", what), sql, params);
}

// Inserts a barrier row; true when it was new.
absl::StatusOr<bool> Insert(PGconn* conn, const std::string& trans_type, const std::string& gid,
                            const std::string& branch_id, const std::string& op,
                            const std::string& barrier_id, const std::string& reason) {
  absl::StatusOr<Result> r =
      Exec(conn, "insert",
           "INSERT INTO dtm_barrier.barrier(trans_type, gid, branch_id, op, barrier_id, reason) "
           "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ON CONSTRAINT uniq_barrier DO NOTHING",
           {trans_type, gid, branch_id, op, barrier_id, reason});
  if (!r.ok()) return r.status();
  return std::string(PQcmdTuples(r->get())) == "1";
}

// The reason column of one barrier row; UNAVAILABLE if it cannot be read or is missing.
absl::StatusOr<std::string> ReadReason(PGconn* conn, const std::string& gid,
                                       const std::string& branch_id, const std::string& op,
                                       const std::string& barrier_id) {
  absl::StatusOr<Result> r = Exec(conn, "read",
                                  "SELECT reason FROM dtm_barrier.barrier WHERE gid = $1 AND "
                                  "branch_id = $2 AND op = $3 AND barrier_id = $4",
                                  {gid, branch_id, op, barrier_id});
  if (!r.ok()) return r.status();
  if (PQntuples(r->get()) != 1) {
    return absl::UnavailableError(
        absl::StrCat("barrier: no row (", gid, ", ", branch_id, ", ", op, ", ", barrier_id, ")"));
  }
  return std::string(PQgetvalue(r->get(), 0, 0));
}

void Rollback(PGconn* conn) {
  if (PQtransactionStatus(conn) != PQTRANS_IDLE) Result(PQexec(conn, "ROLLBACK"));
}

absl::Status CheckIdle(PGconn* conn) {
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("barrier: database connection is not usable: ",
                                               conn ? PQerrorMessage(conn) : "null"));
  }
  if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
    return absl::FailedPreconditionError(
        "barrier: the connection already has a transaction open; the barrier opens its own");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateBarrierTable(PGconn* conn) {
  absl::Status idle = CheckIdle(conn);
  if (!idle.ok()) return idle;
  // Serialized by an advisory lock: concurrent CREATE ... IF NOT EXISTS can still collide.
  static constexpr const char* kDdl[] = {
      "BEGIN",
      "SET LOCAL client_min_messages = warning",
      "SELECT pg_advisory_xact_lock(7310452901)",
      "CREATE SCHEMA IF NOT EXISTS dtm_barrier",
      "CREATE SEQUENCE IF NOT EXISTS dtm_barrier.barrier_seq",
      "CREATE TABLE IF NOT EXISTS dtm_barrier.barrier ("
      " id bigint NOT NULL DEFAULT nextval('dtm_barrier.barrier_seq'::regclass),"
      " trans_type varchar(45) DEFAULT '',"
      " gid varchar(128) DEFAULT '',"
      " branch_id varchar(128) DEFAULT '',"
      " op varchar(45) DEFAULT '',"
      " barrier_id varchar(45) DEFAULT '',"
      " reason varchar(45) DEFAULT '',"
      " create_time timestamp(0) with time zone DEFAULT NULL,"
      " update_time timestamp(0) with time zone DEFAULT NULL,"
      " PRIMARY KEY (id),"
      " CONSTRAINT uniq_barrier UNIQUE (gid, branch_id, op, barrier_id))",
      "COMMIT",
  };
  for (const char* sql : kDdl) {
    absl::StatusOr<Result> r = Exec(conn, "create table", sql);
    if (!r.ok()) {
      Rollback(conn);
      return r.status();
    }
  }
  return absl::OkStatus();
}

Barrier::Barrier(std::string trans_type, std::string gid, std::string branch_id, std::string op)
    : trans_type_(std::move(trans_type)),
      gid_(std::move(gid)),
      branch_id_(std::move(branch_id)),
      op_(std::move(op)) {}

absl::StatusOr<Barrier> Barrier::From(const BranchContext& b) {
  const std::pair<const char*, const std::string*> required[] = {
      {"dtm-gid", &b.gid}, {"dtm-branch_id", &b.branch_id}, {"dtm-op", &b.op}};
  for (const auto& [key, value] : required) {
    if (value->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("barrier: metadata ", key, " is missing; is this a call from dtmd?"));
    }
  }
  bool known = false;
  for (const char* op : kOps) known = known || b.op == op;
  if (!known) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "barrier: metadata dtm-op %s is not one of action, compensate, try, confirm, "
        "cancel, msg",
        absl::FormatStreamed(std::quoted(b.op))));
  }
  // varchar sizes of the table.
  if (b.gid.size() > 128 || b.branch_id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrFormat("barrier: metadata dtm-gid/dtm-branch_id longer than 128 bytes "
                        "(gid %d bytes, branch_id %d bytes)",
                        b.gid.size(), b.branch_id.size()));
  }
  return Barrier(b.trans_type, b.gid, b.branch_id, b.op);
}

absl::StatusOr<Barrier> Barrier::From(const grpc::ServerContextBase& ctx) {
  return From(BranchContext::From(ctx));
}

Barrier Barrier::ForMsg(const std::string& gid) { return Barrier("msg", gid, kMsgBranch, kMsgOp); }

absl::Status Barrier::Call(PGconn* conn, const Business& business, Outcome* outcome) {
  absl::Status idle = CheckIdle(conn);
  if (!idle.ok()) return idle;
  const std::string barrier_id = absl::StrFormat("%02d", ++calls_);
  absl::StatusOr<Result> begin = Exec(conn, "begin", "BEGIN");
  if (!begin.ok()) return begin.status();

  Outcome done = Outcome::kRan;
  absl::Status result;
  try {
    bool origin_new = false;
    const char* origin = OriginOp(op_);
    absl::StatusOr<bool> inserted = true;
    if (origin != nullptr) {
      inserted = Insert(conn, trans_type_, gid_, branch_id_, origin, barrier_id, op_);
      origin_new = inserted.ok() && *inserted;
    }
    if (inserted.ok()) inserted = Insert(conn, trans_type_, gid_, branch_id_, op_, barrier_id, op_);
    if (!inserted.ok()) {
      result = inserted.status();
    } else if (!*inserted && op_ == kMsgOp) {
      result = absl::AlreadyExistsError(
          absl::StrCat("barrier: the local transaction of message ", gid_, " already ran"));
    } else if (!*inserted) {
      // A compensate/cancel claims its action's row, so an action finding its row taken is
      // hanging when that happened, a duplicate otherwise; both are no-ops.
      done = Outcome::kDuplicate;
      if (origin == nullptr) {
        absl::StatusOr<std::string> reason = ReadReason(conn, gid_, branch_id_, op_, barrier_id);
        if (reason.ok() && *reason != op_) done = Outcome::kHanging;
      }
    } else if (origin_new) {
      done = Outcome::kNullCompensation;
    } else {
      result = business(conn);
      if (result.ok() && PQtransactionStatus(conn) == PQTRANS_INERROR) {
        result = absl::InternalError(
            "barrier: the business function returned OK but one of its statements failed");
      }
    }
  } catch (...) {
    Rollback(conn);
    throw;
  }
  if (!result.ok()) {
    Rollback(conn);
    return result;
  }
  absl::StatusOr<Result> commit = Exec(conn, "commit", "COMMIT");
  if (!commit.ok()) {
    Rollback(conn);
    return commit.status();
  }
  if (outcome != nullptr) *outcome = done;
  return absl::OkStatus();
}

absl::Status Barrier::QueryPrepared(PGconn* conn) {
  absl::Status idle = CheckIdle(conn);
  if (!idle.ok()) return idle;
  // Autocommit: once the marker is in, a local transaction still in flight conflicts with it
  // and rolls back (its Call sees ALREADY_EXISTS).
  absl::StatusOr<bool> inserted =
      Insert(conn, "msg", gid_, kMsgBranch, kMsgOp, kMsgBarrierId, kRollbackReason);
  if (!inserted.ok()) return inserted.status();
  absl::StatusOr<std::string> reason = ReadReason(conn, gid_, kMsgBranch, kMsgOp, kMsgBarrierId);
  if (!reason.ok()) return reason.status();
  if (*reason == kRollbackReason) {
    return absl::AbortedError(
        absl::StrCat("message ", gid_, ": its local transaction did not commit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SubmitResponse> DoAndSubmitDb(Msg& msg, const std::string& query_prepared,
                                                 PGconn* conn, const Barrier::Business& business) {
  absl::Status prepared = msg.Prepare(query_prepared);
  if (!prepared.ok()) return prepared;
  Barrier barrier = Barrier::ForMsg(msg.gid());
  absl::Status local = barrier.Call(conn, business);
  if (!local.ok() && !absl::IsAborted(local)) {
    // Did the local transaction commit (a duplicate of a committed one, a lost COMMIT
    // answer)? The barrier knows; its "rollback" marker makes a "no" final.
    absl::Status check = barrier.QueryPrepared(conn);
    if (check.ok()) return msg.Submit();
    if (!absl::IsAborted(check)) return local;  // unknown: the coordinator's back-check decides
  }
  if (!local.ok()) {
    absl::Status aborted = msg.Abort(std::string(local.message()));
    if (!aborted.ok()) {
      return absl::Status(
          local.code(),
          absl::StrCat(local.message(), " (and Abort failed: ", aborted.ToString(), ")"));
    }
    return local;
  }
  return msg.Submit();
}

}  // namespace dtm
