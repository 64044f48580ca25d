// XaBranch against the test run's real PostgreSQL (DTM_TEST_PG, started with
// max_prepared_transactions > 0). The coordinator is a stand-in registrar: the races between
// an action and its rollback are played out step by step on two connections.
#include "client/pg/xa.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/libpq/pg_exec.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;
using Conn = pg::Conn;

// Runs `sql` with text parameters; EXPECTs success and returns the first value, or "".
std::string Query(PGconn* c, const std::string& sql, const std::vector<std::string>& params = {}) {
  absl::StatusOr<pg::Result> r = pg::Exec(c, "test", sql, params);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status();
  if (!r.ok() || PQntuples(r->get()) == 0) return "";
  return PQgetvalue(r->get(), 0, 0);
}

class XaBranchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("DTM_TEST_PG") == nullptr) GTEST_SKIP() << "needs DTM_TEST_PG (ctest sets it)";
    for (Conn* c : {&conn_, &other_}) {
      c->reset(PQconnectdb(std::getenv("DTM_TEST_PG")));
      ASSERT_EQ(PQstatus(c->get()), CONNECTION_OK) << PQerrorMessage(c->get());
    }
    ASSERT_TRUE(CreateBarrierTable(conn_.get()).ok());
    // Test binaries run in parallel on one database, and concurrent CREATE TABLE IF NOT EXISTS
    // can still collide: serialized by an advisory lock (one statement string, one transaction).
    const pg::Result created(
        PQexec(conn_.get(),
               "BEGIN; SELECT pg_advisory_xact_lock(7310452903); CREATE TABLE "
               "IF NOT EXISTS xa_test_work (gid text, branch_id text); COMMIT"));
    ASSERT_EQ(PQresultStatus(created.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn_.get());
    gid_ = absl::StrCat(::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                        getpid(), "-", rand());
  }
  void TearDown() override {
    if (!conn_) return;
    // Leave no prepared transaction behind, whatever a failed test did.
    absl::StatusOr<pg::Result> r =
        pg::Exec(conn_.get(), "test",
                 "SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, $1)", {gid_});
    if (!r.ok()) return;
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      char* q = PQescapeLiteral(conn_.get(), PQgetvalue(r->get(), i, 0),
                                std::strlen(PQgetvalue(r->get(), i, 0)));
      const pg::Result rolled_back(
          PQexec(conn_.get(), absl::StrCat("ROLLBACK PREPARED ", q).c_str()));
      PQfreemem(q);
    }
  }

  BranchContext Ctx(const std::string& op, const std::string& branch = "01") {
    return BranchContext{gid_, "xa",         branch,
                         op,   "dtmd:36790", "bank:50061/bank.v1.Bank/TransOutXa"};
  }
  XaBranch Make(const std::string& op, const std::string& branch = "01") {
    absl::StatusOr<XaBranch> xa = XaBranch::From(Ctx(op, branch));
    EXPECT_TRUE(xa.ok()) << xa.status();
    return *xa;
  }

  // A registrar that records what it was asked and answers `answer`.
  XaBranch::Registrar Registrar(const absl::Status& answer = absl::OkStatus()) {
    return [this, answer](const v1::RegisterBranchRequest& req) {
      registered_.push_back(req);
      return answer;
    };
  }
  // The business: one row of work, visible once the branch commits.
  absl::Status Work(PGconn* tx, const std::string& branch = "01") {
    ++calls_;
    return pg::Exec(tx, "work", "INSERT INTO xa_test_work VALUES ($1, $2)", {gid_, branch})
        .status();
  }
  absl::Status Action(PGconn* conn, const XaBranch::Registrar& registrar,
                      const std::string& branch = "01") {
    return Make("action", branch).Handle(conn, registrar, [&](PGconn* tx) {
      return Work(tx, branch);
    });
  }
  absl::Status Phase2(const std::string& op, PGconn* conn = nullptr,
                      absl::Duration wait = absl::Seconds(1)) {
    XaBranch xa = Make(op);
    xa.set_rollback_wait(wait);
    return xa.Handle(conn ? conn : conn_.get(), Registrar(), nullptr);
  }

  // An action during whose registration the coordinator, already aborting, sends the
  // rollback (on the other connection, with a short wait); the registration answers
  // `registration`. Returns the action's status; `*rollback` is the rollback's.
  absl::Status ActionRacingItsRollback(absl::Status registration, absl::Status* rollback) {
    return Action(conn_.get(), [&](const v1::RegisterBranchRequest&) {
      *rollback = Phase2("rollback", other_.get(), absl::Milliseconds(200));
      return registration;
    });
  }

  int Prepared(const std::string& xid) {
    return std::atoi(
        Query(conn_.get(), "SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", {xid}).c_str());
  }
  int WorkRows() {
    return std::atoi(
        Query(conn_.get(), "SELECT count(*) FROM xa_test_work WHERE gid = $1", {gid_}).c_str());
  }
  std::string BarrierReason(const std::string& branch = "01") {
    return Query(conn_.get(),
                 "SELECT reason FROM dtm_barrier.barrier WHERE gid = $1 AND branch_id = $2 AND "
                 "op = 'action' AND barrier_id = '01' AND trans_type = 'xa'",
                 {gid_, branch});
  }
  std::string Xid(const std::string& branch = "01") { return absl::StrCat(gid_, "-", branch); }

  Conn conn_, other_;
  std::string gid_;
  std::vector<v1::RegisterBranchRequest> registered_;
  int calls_ = 0;
};

TEST_F(XaBranchTest, ActionRegistersAndLeavesAPreparedTransaction) {
  ASSERT_TRUE(Action(conn_.get(), Registrar()).ok());
  EXPECT_EQ(Prepared(Xid()), 1);
  EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);  // the connection can be reused
  EXPECT_EQ(WorkRows(), 0);                                   // not committed yet
  ASSERT_EQ(registered_.size(), 1u);
  EXPECT_EQ(registered_[0].gid(), gid_);
  EXPECT_EQ(registered_[0].trans_type(), v1::XA);
  EXPECT_EQ(registered_[0].branch_id(), "01");
  EXPECT_EQ(registered_[0].phase2_target(), "bank:50061/bank.v1.Bank/TransOutXa");
  EXPECT_EQ(Make("action").XaId(), Xid());
}

TEST_F(XaBranchTest, CommitAppliesAndIsIdempotent) {
  ASSERT_TRUE(Action(conn_.get(), Registrar()).ok());
  // Phase 2 runs from any session.
  ASSERT_TRUE(Phase2("commit", other_.get()).ok());
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 1);
  EXPECT_EQ(BarrierReason(), "action");
  EXPECT_TRUE(Phase2("commit").ok());  // a duplicate commit
  // The action delivered again after its commit does nothing.
  EXPECT_TRUE(Action(conn_.get(), Registrar()).ok());
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(WorkRows(), 1);
  EXPECT_EQ(Prepared(Xid()), 0);
}

TEST_F(XaBranchTest, RollbackUndoesAndBlocksARedeliveredAction) {
  ASSERT_TRUE(Action(conn_.get(), Registrar()).ok());
  ASSERT_TRUE(Phase2("rollback", other_.get()).ok());
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 0);
  EXPECT_EQ(BarrierReason(), "rollback");
  EXPECT_TRUE(Phase2("rollback").ok());  // a duplicate rollback
  absl::Status late = Action(conn_.get(), Registrar());
  EXPECT_TRUE(absl::IsAborted(late)) << late;
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(registered_.size(), 1u);
  EXPECT_EQ(Prepared(Xid()), 0);
}

TEST_F(XaBranchTest, ACommitBeforeItsActionPreparedIsOngoingNotASuccess) {
  // The client submitted without waiting for this action (it ignored the call's error): a
  // commit that found nothing to commit must not answer success, or the action would
  // prepare afterwards and hold its locks forever under a SUCCEEDED transaction.
  absl::Status early = Phase2("commit");
  EXPECT_TRUE(absl::IsFailedPrecondition(early)) << early;
  EXPECT_THAT(early.message(), HasSubstr("not prepared yet"));
  // The commit arriving while the action is registering: still ONGOING.
  absl::Status during;
  ASSERT_TRUE(Action(conn_.get(), [&](const v1::RegisterBranchRequest&) {
                during = Phase2("commit", other_.get());
                return absl::OkStatus();
              }).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(during)) << during;
  ASSERT_TRUE(Phase2("commit").ok());  // asked again once prepared: committed
  EXPECT_EQ(WorkRows(), 1);
  EXPECT_EQ(Prepared(Xid()), 0);
}

TEST_F(XaBranchTest, ABranchRolledBackNeverAnswersACommitWithSuccess) {
  ASSERT_TRUE(Phase2("rollback").ok());
  absl::Status commit = Phase2("commit");
  EXPECT_EQ(commit.code(), absl::StatusCode::kInternal) << commit;
  EXPECT_THAT(commit.message(), HasSubstr("was rolled back"));
}

TEST_F(XaBranchTest, RollbackOfAnUnknownXidSucceeds) {
  EXPECT_TRUE(Phase2("rollback").ok());
  // The rollback of an action that never ran leaves its marker: the late action cannot
  // prepare, and never runs its business.
  EXPECT_EQ(BarrierReason(), "rollback");
  absl::Status late = Action(conn_.get(), Registrar());
  EXPECT_TRUE(absl::IsAborted(late)) << late;
  EXPECT_THAT(late.message(), HasSubstr("rolled back"));
  EXPECT_EQ(calls_, 0);
  EXPECT_TRUE(registered_.empty());
  EXPECT_EQ(Prepared(Xid()), 0);
}

TEST_F(XaBranchTest, RollbackWaitsForTheActionInFlightThatIsThenRefused) {
  // While the action's local transaction is open (it is registering), the coordinator has
  // already aborted and sends the rollback: the rollback cannot record its marker yet.
  absl::Status rollback_during_action;
  absl::Status action = ActionRacingItsRollback(
      absl::FailedPreconditionError("xa is ABORTING, not PREPARED"), &rollback_during_action);
  EXPECT_TRUE(absl::IsUnavailable(rollback_during_action)) << rollback_during_action;
  EXPECT_TRUE(absl::IsAborted(action)) << action;
  EXPECT_THAT(action.message(), HasSubstr("no more branches"));
  EXPECT_EQ(Prepared(Xid()), 0);
  // The coordinator asks again: now the marker goes in, and a late copy of the action is
  // refused without running.
  ASSERT_TRUE(Phase2("rollback", other_.get()).ok());
  EXPECT_EQ(BarrierReason(), "rollback");
  EXPECT_TRUE(absl::IsAborted(Action(conn_.get(), Registrar())));
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(WorkRows(), 0);
  EXPECT_EQ(Prepared(Xid()), 0);
}

TEST_F(XaBranchTest, RollbackBetweenRegistrationAndPrepareIsAskedAgain) {
  // Registered, so the coordinator's rollback comes for it, before PREPARE: ROLLBACK
  // PREPARED finds nothing, and the marker must wait: the rollback fails and is retried.
  absl::Status rollback_during_action;
  ASSERT_TRUE(ActionRacingItsRollback(absl::OkStatus(), &rollback_during_action).ok());
  EXPECT_TRUE(absl::IsUnavailable(rollback_during_action)) << rollback_during_action;
  EXPECT_EQ(Prepared(Xid()), 1);
  ASSERT_TRUE(Phase2("rollback", other_.get()).ok());
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 0);
  EXPECT_EQ(BarrierReason(), "rollback");
}

TEST_F(XaBranchTest, RefusedBusinessRollsBackWithoutRegistering) {
  absl::Status s = Make("action").Handle(conn_.get(), Registrar(), [&](PGconn* tx) {
    EXPECT_TRUE(Work(tx).ok());
    return absl::AbortedError("short of amount");
  });
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_TRUE(registered_.empty());
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 0);
  EXPECT_EQ(BarrierReason(), "");  // no row: the client aborts, the rollback just marks
  EXPECT_TRUE(Phase2("rollback").ok());
}

TEST_F(XaBranchTest, RefusedOrFailedRegistrationRollsBack) {
  absl::Status s = Action(conn_.get(), Registrar(absl::NotFoundError("no such gid")));
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  s = Action(conn_.get(), Registrar(absl::UnavailableError("dtmd restarting")));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("dtmd restarting"));
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 0);
  // Nothing was recorded: the action can still run once the coordinator is back.
  ASSERT_TRUE(Action(conn_.get(), Registrar()).ok());
  EXPECT_EQ(Prepared(Xid()), 1);
}

TEST_F(XaBranchTest, ExceptionRollsBackAndPropagates) {
  XaBranch xa = Make("action");
  EXPECT_THROW(static_cast<void>(xa.Handle(conn_.get(), Registrar(),
                                           [&](PGconn* tx) -> absl::Status {
                                             EXPECT_TRUE(Work(tx).ok());
                                             throw std::runtime_error("bug");
                                           })),
               std::runtime_error);
  EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 0);
}

TEST_F(XaBranchTest, FailedStatementInsideBusinessIsNotPrepared) {
  absl::Status s = Make("action").Handle(conn_.get(), Registrar(), [](PGconn* tx) {
    const pg::Result failed(PQexec(tx, "SELECT * FROM no_such_table_here"));
    return absl::OkStatus();  // the business forgot to check
  });
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_TRUE(registered_.empty());
  EXPECT_EQ(Prepared(Xid()), 0);
}

TEST_F(XaBranchTest, ABusinessThatEndsTheTransactionItselfIsNotReportedPrepared) {
  absl::Status s = Make("action").Handle(conn_.get(), Registrar(), [&](PGconn* tx) {
    return pg::Exec(tx, "commit", "COMMIT").status();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(s.message(), HasSubstr("ended the local transaction"));
  EXPECT_TRUE(registered_.empty());  // never registered, so never reported as a branch
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
}

TEST_F(XaBranchTest, RefusesAConnectionInsideATransaction) {
  Query(conn_.get(), "BEGIN");
  EXPECT_TRUE(absl::IsFailedPrecondition(Action(conn_.get(), Registrar())));
  EXPECT_TRUE(absl::IsFailedPrecondition(Phase2("commit")));
  Query(conn_.get(), "ROLLBACK");
  EXPECT_EQ(calls_, 0);
  EXPECT_TRUE(absl::IsUnavailable(Make("commit").Handle(nullptr, Registrar(), nullptr)));
}

TEST_F(XaBranchTest, QuotesInTheXidAreEscaped) {
  gid_ = absl::StrCat(gid_, "-it's-'; DROP TABLE xa_test_work; --\\");
  ASSERT_TRUE(Action(conn_.get(), Registrar()).ok());
  EXPECT_EQ(Prepared(Xid()), 1);
  ASSERT_TRUE(Phase2("commit").ok());
  EXPECT_EQ(Prepared(Xid()), 0);
  EXPECT_EQ(WorkRows(), 1);
}

TEST_F(XaBranchTest, LongestXidPostgresTakes) {
  // PostgreSQL's identifiers hold 199 bytes: "<128-byte gid>-<70-byte branch id>".
  gid_ = std::string(128, 'g');
  Query(conn_.get(), "DELETE FROM dtm_barrier.barrier WHERE gid = $1", {gid_});
  Query(conn_.get(), "DELETE FROM xa_test_work WHERE gid = $1", {gid_});
  const std::string branch(70, 'b');
  ASSERT_EQ(Xid(branch).size(), 199u);
  ASSERT_TRUE(Action(conn_.get(), Registrar(), branch).ok());
  EXPECT_EQ(Prepared(Xid(branch)), 1);
  ASSERT_TRUE(Make("rollback", branch).Handle(conn_.get(), Registrar(), nullptr).ok());
  EXPECT_EQ(Prepared(Xid(branch)), 0);

  absl::StatusOr<XaBranch> too_long = XaBranch::From(Ctx("action", branch + "b"));
  EXPECT_TRUE(absl::IsInvalidArgument(too_long.status())) << too_long.status();
  EXPECT_THAT(too_long.status().message(), HasSubstr("200 bytes"));
}

TEST(XaBranchFromTest, NamesTheMissingOrBadMetadata) {
  const std::string url = "bank:1/bank.v1.Bank/TransInXa";
  auto from = [&](const BranchContext& b) { return XaBranch::From(b).status(); };
  EXPECT_THAT(from({"", "xa", "01", "action", "", url}).message(), HasSubstr("dtm-gid"));
  EXPECT_THAT(from({"g", "xa", "", "action", "", url}).message(), HasSubstr("dtm-branch_id"));
  EXPECT_THAT(from({"g", "xa", "01", "", "", url}).message(), HasSubstr("dtm-op"));
  EXPECT_THAT(from({"g", "tcc", "01", "action", "", url}).message(), HasSubstr("dtm-trans_type"));
  EXPECT_THAT(from({"g", "xa", "01", "cancel", "", url}).message(), HasSubstr("\"cancel\""));
  EXPECT_THAT(from({"g", "xa", "01", "action", "", ""}).message(), HasSubstr("dtm-phase2_url"));
  EXPECT_THAT(from({std::string(129, 'g'), "xa", "01", "action", "", url}).message(),
              HasSubstr("128 bytes"));
  EXPECT_THAT(from({std::string("g\0h", 3), "xa", "01", "commit", "", ""}).message(),
              HasSubstr("NUL"));
  for (const char* op : {"action", "commit", "rollback"}) {
    absl::StatusOr<XaBranch> ok = XaBranch::From(BranchContext{"g", "xa", "01", op, "", url});
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ok->XaId(), "g-01");
  }
  // Phase 2 needs no phase2_url: the coordinator does not send one.
  EXPECT_TRUE(XaBranch::From(BranchContext{"g", "xa", "01", "commit", "", ""}).ok());
}

}  // namespace
}  // namespace dtm
