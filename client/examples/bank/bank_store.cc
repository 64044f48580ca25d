#include "client/examples/bank/bank_store.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/pg/barrier.h"

namespace bank {
namespace {

using dtm::pg::Result;

absl::StatusOr<Result> Exec(PGconn* conn, const std::string& sql,
                            const std::vector<std::string>& params = {}) {
  return dtm::pg::Exec(conn, "bank database", sql, params);
}

// What an op does to the account: the UPDATE's SET and WHERE clauses ($1 user, $2 amount),
// and the ledger's deltas per unit of amount.
struct Effect {
  const char* set;    // nullptr: the op changes nothing
  const char* guard;  // extra WHERE condition, or ""
  int balance_sign;
  int frozen_sign;
};

Effect EffectOf(Op op) {
  switch (op) {
    case Op::kTransOut:
    case Op::kTransOutXa:
      return {"balance = balance - $2", "AND balance - frozen >= $2", -1, 0};
    case Op::kTransOutCompensate:  // gives back what kTransOut took
    case Op::kTransIn:
    case Op::kTransInXa:
      return {"balance = balance + $2", "", 1, 0};
    case Op::kTransInCompensate:
      return {"balance = balance - $2", "", -1, 0};
    case Op::kTransOutTry:
      return {"frozen = frozen + $2", "AND balance - frozen >= $2", 0, 1};
    case Op::kTransOutConfirm:
      return {"balance = balance - $2, frozen = frozen - $2", "", -1, -1};
    case Op::kTransOutCancel:
      return {"frozen = frozen - $2", "", 0, -1};
    case Op::kTransInTry:
      return {"balance = balance", "AND $2 > 0", 0, 0};  // only checks the account exists
    case Op::kTransInConfirm:
      return {"balance = balance + $2", "", 1, 0};
    case Op::kTransInCancel:
      return {nullptr, "", 0, 0};
  }
  return {nullptr, "", 0, 0};
}

}  // namespace

const char* OpName(Op op) {
  switch (op) {
    case Op::kTransOut:
      return "TransOut";
    case Op::kTransOutCompensate:
      return "TransOutCompensate";
    case Op::kTransIn:
      return "TransIn";
    case Op::kTransInCompensate:
      return "TransInCompensate";
    case Op::kTransOutTry:
      return "TransOutTry";
    case Op::kTransOutConfirm:
      return "TransOutConfirm";
    case Op::kTransOutCancel:
      return "TransOutCancel";
    case Op::kTransInTry:
      return "TransInTry";
    case Op::kTransInConfirm:
      return "TransInConfirm";
    case Op::kTransInCancel:
      return "TransInCancel";
    case Op::kTransOutXa:
      return "TransOutXa";
    case Op::kTransInXa:
      return "TransInXa";
  }
  return "?";
}

bool MayRefuse(Op op) {
  return op == Op::kTransOut || op == Op::kTransIn || op == Op::kTransOutTry ||
         op == Op::kTransInTry || op == Op::kTransOutXa || op == Op::kTransInXa;
}

ConnPool::Lease::~Lease() {
  if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK ||
      PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
    return;  // broken or left mid-transaction: dropped
  }
  absl::MutexLock lock(&pool_->mu_);
  pool_->idle_.push_back(std::move(conn_));
}

absl::StatusOr<ConnPool::Lease> ConnPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Conn c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(c));
    }
  }
  Conn c(PQconnectdb(conninfo_.c_str()));
  if (PQstatus(c.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("bank database unreachable: ", PQerrorMessage(c.get())));
  }
  return Lease(this, std::move(c));
}

absl::StatusOr<BankStore> BankStore::ForSchema(const std::string& schema) {
  bool ok = !schema.empty() && schema.size() <= 63 && !absl::ascii_isdigit(schema[0]);
  for (char c : schema) ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_');
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schema \"", schema, "\" is not a lower-case SQL identifier ([a-z_][a-z0-9_]*)"));
  }
  return BankStore(schema);
}

absl::Status BankStore::CreateTables(PGconn* conn) const {
  absl::Status barrier = dtm::CreateBarrierTable(conn);
  if (!barrier.ok()) return barrier;
  const std::string ddl = absl::StrReplaceAll(
      "BEGIN;"
      "SET LOCAL client_min_messages = warning;"
      "SELECT pg_advisory_xact_lock(7310452902);"
      "CREATE SCHEMA IF NOT EXISTS $S;"
      "CREATE TABLE IF NOT EXISTS $S.account ("
      " user_id text PRIMARY KEY, balance bigint NOT NULL, frozen bigint NOT NULL DEFAULT 0);"
      "CREATE TABLE IF NOT EXISTS $S.movement ("
      " id bigserial PRIMARY KEY, gid text NOT NULL, branch_id text NOT NULL, op text NOT NULL,"
      " user_id text NOT NULL, balance_delta bigint NOT NULL, frozen_delta bigint NOT NULL,"
      " at timestamptz NOT NULL DEFAULT now());"
      "CREATE INDEX IF NOT EXISTS movement_gid ON $S.movement (gid);"
      "COMMIT;",
      {{"$S", schema_}});
  Result r(PQexec(conn, ddl.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    std::string why = PQresultErrorMessage(r.get());
    PQclear(PQexec(conn, "ROLLBACK"));  // best effort: the error to report is the DDL's
    return absl::UnavailableError(absl::StrCat("creating bank tables: ", why));
  }
  return absl::OkStatus();
}

absl::Status BankStore::OpenAccount(PGconn* conn, const std::string& user_id,
                                    int64_t balance) const {
  return Exec(conn,
              absl::StrCat("INSERT INTO ", schema_,
                           ".account(user_id, balance) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
              {user_id, absl::StrCat(balance)})
      .status();
}

absl::StatusOr<std::vector<Account>> BankStore::Balances(PGconn* conn) const {
  absl::StatusOr<Result> r = Exec(conn, absl::StrCat("SELECT user_id, balance, frozen FROM ",
                                                     schema_, ".account ORDER BY user_id"));
  if (!r.ok()) return r.status();
  std::vector<Account> out;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    out.push_back({PQgetvalue(r->get(), i, 0), std::atoll(PQgetvalue(r->get(), i, 1)),
                   std::atoll(PQgetvalue(r->get(), i, 2))});
  }
  return out;
}

absl::Status BankStore::Apply(PGconn* tx, Op op, const std::string& user_id, int64_t amount,
                              const dtm::BranchContext& branch) const {
  Effect e = EffectOf(op);
  if (e.set == nullptr) return absl::OkStatus();
  const std::string amount_str = absl::StrCat(amount);
  absl::StatusOr<Result> r = Exec(
      tx, absl::StrCat("UPDATE ", schema_, ".account SET ", e.set, " WHERE user_id = $1 ", e.guard),
      {user_id, amount_str});
  if (!r.ok()) return r.status();
  if (std::string(PQcmdTuples(r->get())) != "1") {
    absl::StatusOr<Result> exists = Exec(
        tx, absl::StrCat("SELECT balance - frozen FROM ", schema_, ".account WHERE user_id = $1"),
        {user_id});
    if (!exists.ok()) return exists.status();
    if (PQntuples(exists->get()) == 0) {
      return absl::AbortedError(absl::StrCat("no account \"", user_id, "\" in ", schema_));
    }
    return absl::AbortedError(absl::StrCat("account \"", user_id, "\" has ",
                                           PQgetvalue(exists->get(), 0, 0),
                                           " available, short of amount ", amount));
  }
  if (e.balance_sign == 0 && e.frozen_sign == 0) return absl::OkStatus();
  return Exec(tx,
              absl::StrCat("INSERT INTO ", schema_,
                           ".movement(gid, branch_id, op, user_id, balance_delta, frozen_delta) "
                           "VALUES ($1, $2, $3, $4, $5, $6)"),
              {branch.gid, branch.branch_id, OpName(op), user_id,
               absl::StrCat(e.balance_sign * amount), absl::StrCat(e.frozen_sign * amount)})
      .status();
}

}  // namespace bank
