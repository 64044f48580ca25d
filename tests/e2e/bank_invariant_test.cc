// The invariant test: thousands of random transfers between the example banks' accounts,
// mixing saga, TCC, two-phase messages and XA, while the banks misbehave on purpose
// (refusals, transient errors, ONGOING, answers lost after the work committed, duplicate and
// late deliveries, an XA branch that prepares and then answers only after its client gave
// up), clients "crash" in the middle of messages and between XA's two phases, and dtmd is
// killed with kill -9 and restarted several times. At the end: every transaction terminal,
// money neither created nor destroyed, no balance negative, every succeeded transfer applied
// exactly once and every failed one not at all, and no XA branch left PREPARED in the banks'
// database.
//
// Real components: dtmd as a child process on the test run's PostgreSQL, the banks' gRPC and
// HTTP services (in this process, so faults can be injected) on a fresh PostgreSQL database.
// Some sagas call both legs over HTTP (DTM's HTTP branch protocol), some mix an HTTP leg with
// a gRPC one: the faults hit HTTP branches too.
//
// CI runs a short round; for a long local run:
//   DTM_INVARIANT_TRANSFERS=20000 DTM_INVARIANT_RESTARTS=20 ctest -R bank_invariant
// DTM_INVARIANT_THREADS (8) sets the number of concurrent clients, DTM_INVARIANT_SEED the seed.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/examples/bank/bank_service.h"
#include "client/examples/bank/bank_store.h"
#include "tests/faults/bank_workload.h"
#include "tests/support/dtmd_process.h"

namespace {

using dtm::faults::BankWorkload;
using dtm::faults::kInitialBalance;
using dtm::faults::Mode;
using dtm::faults::WorkloadReport;
using dtm::test::DtmdProcess;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// A bank's gRPC service served on an ephemeral port of 127.0.0.1, and a stub for it.
struct Served {
  std::unique_ptr<grpc::Server> server;  // null if it could not listen
  std::unique_ptr<bank::v1::Bank::Stub> stub;
};
// `service` must outlive the result (declare the result after it).
Served Serve(bank::BankService* service) {
  Served served;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  served.server = builder.BuildAndStart();
  if (port == 0) served.server = nullptr;
  served.stub = bank::v1::Bank::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  return served;
}

class BankInvariantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = dtm::test::TestPostgres();
    if (base_.empty()) GTEST_SKIP() << "needs the test run's PostgreSQL (DTM_TEST_PG)";
    // A fresh database for the banks.
    absl::StatusOr<std::string> conninfo =
        dtm::faults::CreateBankDatabase(base_, absl::StrCat("bank_invariant_", getpid()));
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    conninfo_ = *conninfo;
  }

  std::string base_, conninfo_;
};

TEST_F(BankInvariantTest, MoneyIsConservedThroughFaultsAndCoordinatorCrashes) {
  const int transfers = EnvInt("DTM_INVARIANT_TRANSFERS", 3000);
  const int restarts = EnvInt("DTM_INVARIANT_RESTARTS", 4);
  const int threads = EnvInt("DTM_INVARIANT_THREADS", 8);
  const uint64_t seed =
      EnvInt("DTM_INVARIANT_SEED", static_cast<int>(absl::ToUnixMicros(absl::Now()) % 1000000007));
  std::printf("invariant: seed %llu (DTM_INVARIANT_SEED), %d transfers, %d restarts, %d clients\n",
              static_cast<unsigned long long>(seed), transfers, restarts, threads);

  const std::string dir = dtm::test::MakeTempDir();
  DtmdProcess dtmd(dtm::test::TestStore(dir),
                   {"--lease=2s", "--recovery_interval=200ms", "--timeout_to_fail=2s"});
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();

  dtm::faults::WorkloadOptions options;
  options.coordinators = {dtmd.address()};
  options.bank_conninfo = conninfo_;
  options.transfers = transfers;
  options.threads = threads;
  options.seed = seed;
  absl::StatusOr<std::unique_ptr<BankWorkload>> workload = BankWorkload::Create(options);
  ASSERT_TRUE(workload.ok()) << workload.status();

  // kill -9 and restart dtmd as the transfers progress.
  int restarted = 0;
  std::thread killer([&] {
    for (int k = 1; k <= restarts; ++k) {
      const int at = static_cast<int>(static_cast<int64_t>(transfers) * k / (restarts + 1));
      while ((*workload)->started() < at && !(*workload)->submitting_done()) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      dtmd.Kill9();
      absl::Status up = dtmd.Start();
      if (!up.ok()) {
        ADD_FAILURE() << "restart " << k << ": " << up;
        return;
      }
      ++restarted;
    }
  });
  const WorkloadReport report = (*workload)->Run();
  killer.join();
  ASSERT_EQ(restarted, restarts);

  std::printf("%s", report.Summary("invariant: ").c_str());
  EXPECT_EQ(report.transfers, transfers);
  EXPECT_THAT(report.violations, ::testing::IsEmpty()) << dtmd.Log().substr(0, 4000);
  EXPECT_EQ(report.total_balance, report.expected_total) << "money created or destroyed";

  // The run exercised what it claims to.
  for (int f = 1; f < dtm::faults::kFaultCount; ++f) {
    EXPECT_GT(report.faults[f], 0)
        << dtm::faults::FaultName(static_cast<bank::Fault>(f)) << " never injected";
  }
  EXPECT_GT(report.barrier.duplicate, 0);
  EXPECT_GT(report.barrier.null_compensation, 0);
  EXPECT_GT(report.barrier.xa_committed, 0);
  EXPECT_GT(report.barrier.xa_rolled_back, 0);
  for (int m = 0; m < dtm::faults::kModesWithBothOutcomes; ++m) {
    EXPECT_GT(report.outcome[m][0], 0)
        << dtm::faults::ModeName(static_cast<Mode>(m)) << ": none succeeded";
    EXPECT_GT(report.outcome[m][1], 0)
        << dtm::faults::ModeName(static_cast<Mode>(m)) << ": none failed";
  }
}

TEST_F(BankInvariantTest, BadCallsGetANamedInvalidArgumentAndChangeNothing) {
  absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema("bank_a");
  ASSERT_TRUE(store.ok());
  bank::BankService service(*store, conninfo_);
  Served served = Serve(&service);
  ASSERT_NE(served.server, nullptr);
  bank::v1::Bank::Stub* stub = served.stub.get();
  auto call = [&](const std::string& user, int64_t amount,
                  const std::vector<std::pair<std::string, std::string>>& md) {
    grpc::ClientContext ctx;
    for (const auto& [k, v] : md) ctx.AddMetadata(k, v);
    bank::v1::TransferRequest req;
    req.set_user_id(user);
    req.set_amount(amount);
    bank::v1::TransferReply reply;
    return stub->TransOut(&ctx, req, &reply);
  };
  const std::vector<std::pair<std::string, std::string>> md = {{"dtm-gid", "bad-input"},
                                                               {"dtm-trans_type", "saga"},
                                                               {"dtm-branch_id", "01"},
                                                               {"dtm-op", "action"}};
  grpc::Status s = call("a0", 0, md);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("amount 0"));
  s = call("", 10, md);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("user_id"));
  s = call("a0", 10, {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("dtm-gid"));
  auto bad_op = md;
  bad_op[3].second = "refund";
  s = call("a0", 10, bad_op);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("\"refund\""));
  // An XA leg names what its metadata lacks.
  auto xa_call = [&](const std::vector<std::pair<std::string, std::string>>& md) {
    grpc::ClientContext ctx;
    for (const auto& [k, v] : md) ctx.AddMetadata(k, v);
    bank::v1::TransferRequest req;
    req.set_user_id("a0");
    req.set_amount(10);
    bank::v1::TransferReply reply;
    return stub->TransOutXa(&ctx, req, &reply);
  };
  s = xa_call(md);  // a saga's metadata
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("dtm-trans_type"));
  auto xa_md = md;
  xa_md[1].second = "xa";
  s = xa_call(xa_md);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("dtm-phase2_url"));
  // A refusal is ABORTED with the reason, and nothing moved.
  s = call("a0", kInitialBalance + 1, md);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("short of amount"));
  EXPECT_TRUE(call("a0", 10, md).ok());
  bank::Conn db(PQconnectdb(conninfo_.c_str()));
  absl::StatusOr<std::vector<bank::Account>> accounts = service.store().Balances(db.get());
  ASSERT_TRUE(accounts.ok());
  EXPECT_EQ((*accounts)[0].balance, kInitialBalance - 10);
}

// A bank that refuses only work it has not done: an attempt whose work committed but whose
// answer was lost, retried and met by the refusal fault, is answered as done (the barrier
// finds it), not refused. Refused, the saga would compensate a credit that happened, after the
// money may have been spent (a negative balance the soak once found).
TEST_F(BankInvariantTest, ARetryOfWorkAlreadyDoneIsNotRefused) {
  absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema("bank_b");
  ASSERT_TRUE(store.ok());
  std::atomic<int> calls{0};
  // The first call's answer is lost after its work committed; every later call is refused.
  bank::FaultHook hook = [&calls](const dtm::BranchContext&, const char*) {
    return calls.fetch_add(1) == 0 ? bank::Fault::kLoseResponse : bank::Fault::kRefuse;
  };
  bank::BankService service(*store, conninfo_, hook);
  Served served = Serve(&service);
  ASSERT_NE(served.server, nullptr);
  bank::v1::Bank::Stub* stub = served.stub.get();
  auto trans_in = [&](const std::string& gid) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("dtm-gid", gid);
    ctx.AddMetadata("dtm-trans_type", "saga");
    ctx.AddMetadata("dtm-branch_id", "02");
    ctx.AddMetadata("dtm-op", "action");
    bank::v1::TransferRequest req;
    req.set_user_id("b0");
    req.set_amount(700);
    bank::v1::TransferReply reply;
    return stub->TransIn(&ctx, req, &reply);
  };
  auto balance = [&]() -> int64_t {
    bank::Conn db(PQconnectdb(conninfo_.c_str()));
    absl::StatusOr<std::vector<bank::Account>> accounts = service.store().Balances(db.get());
    EXPECT_TRUE(accounts.ok()) << accounts.status();
    for (const bank::Account& a : accounts.value_or(std::vector<bank::Account>{})) {
      if (a.user_id == "b0") return a.balance;
    }
    ADD_FAILURE() << "no account b0";
    return 0;
  };
  EXPECT_EQ(trans_in("retried").error_code(), grpc::StatusCode::UNAVAILABLE);  // done, unheard
  EXPECT_EQ(balance(), kInitialBalance + 700);
  grpc::Status retry = trans_in("retried");  // the refusal fault: but the work is done
  EXPECT_TRUE(retry.ok()) << retry.error_message();
  EXPECT_EQ(balance(), kInitialBalance + 700);
  // Work not done yet is refused, and nothing moves.
  grpc::Status fresh = trans_in("fresh");
  EXPECT_EQ(fresh.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(fresh.error_message(), ::testing::HasSubstr("injected: the business refuses"));
  EXPECT_EQ(balance(), kInitialBalance + 700);
  EXPECT_EQ(calls.load(), 3);
  // The retry was the barrier's duplicate, and the one refusal was counted once.
  EXPECT_EQ(service.stats().duplicate, 1);
  EXPECT_EQ(service.stats().refused, 1);
}

}  // namespace
