// The barrier against the test run's real PostgreSQL (DTM_TEST_PG).
#include "client/pg/barrier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/libpq/pg_exec.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;
using Outcome = Barrier::Outcome;

using Conn = pg::Conn;

Conn Connect() {
  const char* info = std::getenv("DTM_TEST_PG");
  Conn c(PQconnectdb(info ? info : ""));
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  return c;
}

void Exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
      << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
}

int64_t Count(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? std::atoll(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  return n;
}

class BarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("DTM_TEST_PG") == nullptr) GTEST_SKIP() << "needs DTM_TEST_PG (ctest sets it)";
    conn_ = Connect();
    ASSERT_TRUE(CreateBarrierTable(conn_.get()).ok());
    // Test binaries run in parallel on one database, and concurrent CREATE TABLE IF NOT EXISTS
    // can still collide: serialized by an advisory lock (one statement string, one transaction).
    Exec(conn_.get(),
         "BEGIN; SELECT pg_advisory_xact_lock(7310452902); "
         "CREATE TABLE IF NOT EXISTS barrier_test_work (gid text, op text); COMMIT");
    gid_ = absl::StrCat(::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                        getpid(), "-", rand());
  }

  Barrier Make(const std::string& op, const std::string& branch = "01") {
    BranchContext b{gid_, "saga", branch, op, ""};
    absl::StatusOr<Barrier> barrier = Barrier::From(b);
    EXPECT_TRUE(barrier.ok()) << barrier.status();
    return *barrier;
  }

  // Calls the barrier with a business function that records one row of work.
  absl::Status Run(const std::string& op, Outcome* outcome, PGconn* conn = nullptr) {
    Barrier b = Make(op);
    return b.Call(
        conn ? conn : conn_.get(), [&](PGconn* tx) { return Work(tx, op); }, outcome);
  }

  absl::Status Work(PGconn* tx, const std::string& op) {
    ++calls_;
    const char* params[] = {gid_.c_str(), op.c_str()};
    PGresult* r = PQexecParams(tx, "INSERT INTO barrier_test_work VALUES ($1, $2)", 2, nullptr,
                               params, nullptr, nullptr, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? absl::OkStatus() : absl::UnavailableError("insert failed");
  }

  int64_t WorkRows(const std::string& op) {
    return Count(conn_.get(), absl::StrCat("SELECT count(*) FROM barrier_test_work WHERE gid = '",
                                           gid_, "' AND op = '", op, "'"));
  }

  Conn conn_;
  std::string gid_;
  std::atomic<int> calls_{0};
};

TEST_F(BarrierTest, RunsOnceAndSkipsDuplicates) {
  Outcome o;
  ASSERT_TRUE(Run("action", &o).ok());
  EXPECT_EQ(o, Outcome::kRan);
  ASSERT_TRUE(Run("action", &o).ok());
  EXPECT_EQ(o, Outcome::kDuplicate);
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(WorkRows("action"), 1);
  // The compensation of an action that ran runs, once.
  ASSERT_TRUE(Run("compensate", &o).ok());
  EXPECT_EQ(o, Outcome::kRan);
  ASSERT_TRUE(Run("compensate", &o).ok());
  EXPECT_EQ(o, Outcome::kDuplicate);
  EXPECT_EQ(WorkRows("compensate"), 1);
}

TEST_F(BarrierTest, NullCompensationBlocksTheLateAction) {
  Outcome o;
  ASSERT_TRUE(Run("compensate", &o).ok());
  EXPECT_EQ(o, Outcome::kNullCompensation);
  ASSERT_TRUE(Run("action", &o).ok());
  EXPECT_EQ(o, Outcome::kHanging);
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(WorkRows("action") + WorkRows("compensate"), 0);
  // The table holds DTM's rows: the action's row claimed by the compensation.
  EXPECT_EQ(Count(conn_.get(), absl::StrCat("SELECT count(*) FROM dtm_barrier.barrier WHERE gid='",
                                            gid_, "' AND op='action' AND reason='compensate'")),
            1);
}

TEST_F(BarrierTest, TccCancelWithoutTryIsANoOpAndBlocksTheTry) {
  Outcome o;
  ASSERT_TRUE(Run("cancel", &o).ok());
  EXPECT_EQ(o, Outcome::kNullCompensation);
  ASSERT_TRUE(Run("try", &o).ok());
  EXPECT_EQ(o, Outcome::kHanging);
  EXPECT_EQ(calls_, 0);
}

TEST_F(BarrierTest, RefusedActionRollsBackAndItsCompensationIsNull) {
  Barrier b = Make("action");
  absl::Status s = b.Call(conn_.get(), [&](PGconn* tx) {
    EXPECT_TRUE(Work(tx, "action").ok());
    return absl::AbortedError("insufficient balance");
  });
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_EQ(WorkRows("action"), 0);
  Outcome o;
  ASSERT_TRUE(Run("compensate", &o).ok());
  EXPECT_EQ(o, Outcome::kNullCompensation);
  // The refused action delivered again after its compensation is hanging: a no-op.
  ASSERT_TRUE(Run("action", &o).ok());
  EXPECT_EQ(o, Outcome::kHanging);
}

TEST_F(BarrierTest, TransientErrorLeavesNoRowSoTheRetryRuns) {
  Barrier b = Make("action");
  EXPECT_TRUE(absl::IsUnavailable(
      b.Call(conn_.get(), [](PGconn*) { return absl::UnavailableError("downstream busy"); })));
  Outcome o;
  ASSERT_TRUE(Run("action", &o).ok());
  EXPECT_EQ(o, Outcome::kRan);
  EXPECT_EQ(WorkRows("action"), 1);
}

TEST_F(BarrierTest, ConcurrentDuplicatesRunTheBusinessOnce) {
  constexpr int kThreads = 8;
  std::vector<Conn> conns;
  for (int i = 0; i < kThreads; ++i) conns.push_back(Connect());
  std::atomic<int> ran{0}, skipped{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Outcome o;
      absl::Status s = Run("action", &o, conns[i].get());
      if (!s.ok())
        ++failed;
      else if (o == Outcome::kRan)
        ++ran;
      else if (o == Outcome::kDuplicate)
        ++skipped;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(skipped, kThreads - 1);
  EXPECT_EQ(WorkRows("action"), 1);
}

TEST_F(BarrierTest, MsgQueryPreparedSeesCommittedLocalTransaction) {
  Barrier local = Barrier::ForMsg(gid_);
  ASSERT_TRUE(local.Call(conn_.get(), [&](PGconn* tx) { return Work(tx, "msg"); }).ok());
  EXPECT_TRUE(Barrier::ForMsg(gid_).QueryPrepared(conn_.get()).ok());
  // A second run of the local transaction is refused: it already committed.
  Barrier again = Barrier::ForMsg(gid_);
  absl::Status s = again.Call(conn_.get(), [&](PGconn* tx) { return Work(tx, "msg"); });
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(WorkRows("msg"), 1);
}

TEST_F(BarrierTest, MsgQueryPreparedFirstMakesTheLateLocalTransactionFail) {
  absl::Status check = Barrier::ForMsg(gid_).QueryPrepared(conn_.get());
  EXPECT_TRUE(absl::IsAborted(check)) << check;
  Barrier local = Barrier::ForMsg(gid_);
  absl::Status s = local.Call(conn_.get(), [&](PGconn* tx) { return Work(tx, "msg"); });
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(calls_, 0);
  // Asking again gives the same answer.
  EXPECT_TRUE(absl::IsAborted(Barrier::ForMsg(gid_).QueryPrepared(conn_.get())));
}

TEST_F(BarrierTest, ExceptionRollsBackAndPropagates) {
  Barrier b = Make("action");
  // The call throws before it returns a status: nothing to look at.
  EXPECT_THROW(static_cast<void>(b.Call(conn_.get(),
                                        [&](PGconn* tx) -> absl::Status {
                                          EXPECT_TRUE(Work(tx, "action").ok());
                                          throw std::runtime_error("bug");
                                        })),
               std::runtime_error);
  EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
  EXPECT_EQ(WorkRows("action"), 0);
}

TEST_F(BarrierTest, FailedStatementInsideBusinessIsNotCommitted) {
  Barrier b = Make("action");
  absl::Status s = b.Call(conn_.get(), [&](PGconn* tx) {
    PQclear(PQexec(tx, "SELECT * FROM no_such_table_here"));
    return absl::OkStatus();  // the business forgot to check
  });
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  Outcome o;
  ASSERT_TRUE(Run("action", &o).ok());
  EXPECT_EQ(o, Outcome::kRan);
}

TEST_F(BarrierTest, RefusesAConnectionInsideATransaction) {
  Exec(conn_.get(), "BEGIN");
  Outcome o;
  absl::Status s = Run("action", &o);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  Exec(conn_.get(), "ROLLBACK");
  EXPECT_EQ(calls_, 0);
}

TEST(BarrierFromTest, NamesTheMissingOrBadMetadata) {
  absl::StatusOr<Barrier> b = Barrier::From(BranchContext{"", "saga", "01", "action", ""});
  EXPECT_TRUE(absl::IsInvalidArgument(b.status()));
  EXPECT_THAT(b.status().message(), HasSubstr("dtm-gid"));
  b = Barrier::From(BranchContext{"g", "saga", "", "action", ""});
  EXPECT_THAT(b.status().message(), HasSubstr("dtm-branch_id"));
  b = Barrier::From(BranchContext{"g", "saga", "01", "undo", ""});
  EXPECT_TRUE(absl::IsInvalidArgument(b.status()));
  EXPECT_THAT(b.status().message(), HasSubstr("\"undo\""));
  b = Barrier::From(BranchContext{std::string(200, 'g'), "saga", "01", "action", ""});
  EXPECT_TRUE(absl::IsInvalidArgument(b.status()));
  EXPECT_TRUE(Barrier::From(BranchContext{"g", "tcc", "01", "confirm", ""}).ok());
}

TEST(BarrierFromTest, UnusableConnectionIsUnavailable) {
  Barrier b = Barrier::ForMsg("g");
  EXPECT_TRUE(absl::IsUnavailable(b.Call(nullptr, [](PGconn*) { return absl::OkStatus(); })));
  EXPECT_TRUE(absl::IsUnavailable(b.QueryPrepared(nullptr)));
}

}  // namespace
}  // namespace dtm
