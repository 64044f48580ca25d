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

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/examples/bank/bank_http.h"
#include "client/examples/bank/bank_service.h"
#include "client/examples/bank/bank_transfer.h"
#include "client/pg/barrier.h"
#include "client/saga.h"
#include "tests/support/dtmd_process.h"

namespace {

using bank::Fault;
using dtm::test::DtmdProcess;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

constexpr int kAccountsPerBank = 4;
constexpr int64_t kInitialBalance = 5000;  // transfers of up to 3000: some are refused
constexpr std::array<const char*, 8> kFaultNames = {"none",         "refuse",        "transient",
                                                    "ongoing",      "lose-response", "duplicate",
                                                    "replay-later", "stall"};

// Picks faults at random and counts them.
class FaultPlan {
 public:
  explicit FaultPlan(uint64_t seed) : rng_(seed) {}

  Fault Pick(const dtm::BranchContext& branch, const char* op) {
    int roll;
    {
      absl::MutexLock lock(&mu_);
      roll = std::uniform_int_distribution<int>(0, 999)(rng_);
    }
    Fault f = Fault::kNone;
    if (roll < 30)
      f = Fault::kRefuse;
    else if (roll < 80)
      f = Fault::kTransient;
    else if (roll < 110)
      f = Fault::kOngoing;
    else if (roll < 160)
      f = Fault::kLoseResponse;
    else if (roll < 190)
      f = Fault::kDuplicate;
    else if (roll < 220)
      f = Fault::kReplayLater;
    const bool xa_action = branch.trans_type == "xa" && branch.op == "action";
    // A message's delivery cannot be refused (it has no rollback), nor can compensations,
    // confirms, cancels, XA's phase 2 or the back-check: the bank only refuses actions, tries
    // and XA's phase 1.
    if (f == Fault::kRefuse) {
      const std::string name = op;
      bool refusable = xa_action || (branch.trans_type != "msg" &&
                                     (name == "TransOut" || name == "TransIn" ||
                                      name == "TransOutTry" || name == "TransInTry"));
      if (!refusable) f = Fault::kNone;
    }
    // A branch that answers only after its caller gave up costs a client its whole request
    // timeout, and the prepared transaction it leaves holds its locks as long: XA's phase 1
    // only, and a few per run rather than a share of the calls.
    if (xa_action && ++xa_actions_ % 150 == 75) f = Fault::kStall;
    ++counts_[static_cast<int>(f)];
    return f;
  }
  int64_t count(Fault f) const { return counts_[static_cast<int>(f)]; }
  int64_t total() const {
    int64_t n = 0;
    for (size_t i = 1; i < counts_.size(); ++i) n += counts_[i];
    return n;
  }

 private:
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> xa_actions_{0};
  std::array<std::atomic<int64_t>, kFaultNames.size()> counts_{};
};

// One bank: its service with faults, served on an ephemeral port.
struct Bank {
  Bank(const std::string& schema, const std::string& conninfo, FaultPlan* plan,
       dtm::CoordinatorClient* coordinator = nullptr) {
    absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema(schema);
    EXPECT_TRUE(store.ok());
    bank::FaultHook hook;
    if (plan != nullptr) {
      hook = [plan](const dtm::BranchContext& b, const char* op) { return plan->Pick(b, op); };
    }
    service = std::make_unique<bank::BankService>(*store, conninfo, hook, coordinator);
    auto started = bank::BankHttp::Start(service.get(), "127.0.0.1:0");
    EXPECT_TRUE(started.ok()) << started.status();
    if (started.ok()) http = *std::move(started);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    address = absl::StrCat("127.0.0.1:", port);
  }
  ~Bank() {
    http.reset();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    service->DrainReplays();
  }
  std::unique_ptr<bank::BankService> service;
  std::unique_ptr<bank::BankHttp> http;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

enum class Mode {
  kSaga,
  kTcc,
  kMsg,
  kHttpSaga,   // both legs over HTTP
  kMixedSaga,  // TransOut over gRPC, TransIn over HTTP
  kXa,
  kMsgCrashAfterCommit,
  kMsgCrashBeforeCommit,
  kXaClientVanishes,  // both legs prepared, then neither Submit nor Abort
};
constexpr std::array<const char*, 9> kModeNames = {"saga",
                                                   "tcc",
                                                   "msg",
                                                   "http-saga",
                                                   "grpc+http-saga",
                                                   "xa",
                                                   "msg-crash-after-commit",
                                                   "msg-crash-before-commit",
                                                   "xa-client-vanishes"};
// The modes where a transfer may succeed or fail; the run must see both.
constexpr int kModesWithBothOutcomes = 6;

struct Planned {
  std::string gid;
  Mode mode;
  int from_bank;  // 0 or 1
  std::string from_user, to_user;
  int64_t amount;
};

std::string User(int bank, int i) { return absl::StrCat(bank == 0 ? "a" : "b", i); }

class BankInvariantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = dtm::test::TestPostgres();
    if (base_.empty()) GTEST_SKIP() << "needs the test run's PostgreSQL (DTM_TEST_PG)";
    // A fresh database for the banks.
    dbname_ = absl::StrCat("bank_invariant_", getpid());
    bank::Conn admin(PQconnectdb(base_.c_str()));
    ASSERT_EQ(PQstatus(admin.get()), CONNECTION_OK) << PQerrorMessage(admin.get());
    PQclear(PQexec(admin.get(), absl::StrCat("DROP DATABASE IF EXISTS ", dbname_).c_str()));
    PGresult* r = PQexec(admin.get(), absl::StrCat("CREATE DATABASE ", dbname_).c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
    PQclear(r);
    conninfo_ = absl::StrCat(base_, " dbname=", dbname_);
    bank::Conn db(PQconnectdb(conninfo_.c_str()));
    ASSERT_EQ(PQstatus(db.get()), CONNECTION_OK) << PQerrorMessage(db.get());
    for (int b = 0; b < 2; ++b) {
      absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema(Schema(b));
      ASSERT_TRUE(store.ok());
      ASSERT_TRUE(store->CreateTables(db.get()).ok());
      for (int i = 0; i < kAccountsPerBank; ++i) {
        ASSERT_TRUE(store->OpenAccount(db.get(), User(b, i), kInitialBalance).ok());
      }
    }
  }

  static std::string Schema(int bank) { return bank == 0 ? "bank_a" : "bank_b"; }

  std::string base_, dbname_, conninfo_;
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
  auto client = dtm::CoordinatorClient::Connect(dtmd.address(), absl::Seconds(10));
  client->set_wait_for_ready(true);  // calls made while dtmd restarts wait for it
  // The banks' own client, for their XA branches' registration: it fails at once while dtmd
  // restarts (the branch then rolls back and its client aborts).
  auto banks_client = dtm::CoordinatorClient::Connect(dtmd.address(), absl::Seconds(5));

  FaultPlan plan(seed);
  std::array<std::unique_ptr<Bank>, 2> banks = {
      std::make_unique<Bank>("bank_a", conninfo_, &plan, banks_client.get()),
      std::make_unique<Bank>("bank_b", conninfo_, &plan, banks_client.get())};

  // The plan of every transfer, drawn up front from the seed.
  std::vector<Planned> planned(transfers);
  {
    std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
    const std::string run = absl::StrCat("inv", seed % 100000, "-", getpid());
    for (int i = 0; i < transfers; ++i) {
      Planned& p = planned[i];
      p.gid = absl::StrCat(run, "-", i);
      // XA holds its row locks from PREPARE to phase 2, and every other transfer touching
      // those accounts waits: a small share keeps the round short.
      int m = std::uniform_int_distribution<int>(0, 999)(rng);
      p.mode = m < 220   ? Mode::kSaga
               : m < 470 ? Mode::kTcc
               : m < 670 ? Mode::kMsg
               : m < 770 ? Mode::kHttpSaga
               : m < 840 ? Mode::kMixedSaga
               : m < 930 ? Mode::kXa
               : m < 970 ? Mode::kMsgCrashAfterCommit
                         : Mode::kMsgCrashBeforeCommit;
      p.from_bank = std::uniform_int_distribution<int>(0, 1)(rng);
      p.from_user =
          User(p.from_bank, std::uniform_int_distribution<int>(0, kAccountsPerBank - 1)(rng));
      p.to_user =
          User(1 - p.from_bank, std::uniform_int_distribution<int>(0, kAccountsPerBank - 1)(rng));
      p.amount = std::uniform_int_distribution<int64_t>(1, 3000)(rng);
    }
    // A vanished XA client's locks are held until timeout_to_fail, stalling every transfer
    // that touches those accounts: a few, spread over the run, rather than a share of it.
    const int every = std::max(1, transfers / 4);
    for (int i = every / 2; i < transfers; i += every) planned[i].mode = Mode::kXaClientVanishes;
  }

  dtm::v1::TransOptions options;
  options.set_wait_result(true);
  options.mutable_retry_interval()->set_nanos(100 * 1000 * 1000);
  options.mutable_max_retry_interval()->set_seconds(1);
  options.mutable_request_timeout()->set_seconds(3);
  // tcc, xa and msg: abort / back-check after 2 s
  dtm::v1::TransOptions prepared_options = options;
  prepared_options.mutable_timeout_to_fail()->set_seconds(2);
  // An XA branch that stalls holds its locks until its client gives up; one whose client
  // vanished, until the coordinator does: both short.
  dtm::v1::TransOptions xa_options = prepared_options;
  xa_options.mutable_request_timeout()->set_seconds(2);
  dtm::v1::TransOptions xa_vanish_options = xa_options;
  xa_vanish_options.mutable_timeout_to_fail()->set_seconds(1);

  std::atomic<int> next{0}, client_errors{0};
  auto work = [&] {
    bank::Conn db(PQconnectdb(conninfo_.c_str()));
    ASSERT_EQ(PQstatus(db.get()), CONNECTION_OK);
    std::array<bank::BankStore, 2> stores = {*bank::BankStore::ForSchema("bank_a"),
                                             *bank::BankStore::ForSchema("bank_b")};
    for (int i = next++; i < transfers; i = next++) {
      const Planned& p = planned[i];
      bank::Transfer t{banks[p.from_bank]->address, p.from_user, banks[1 - p.from_bank]->address,
                       p.to_user, p.amount};
      absl::Status s;
      switch (p.mode) {
        case Mode::kSaga:
          s = bank::SagaTransfer(client.get(), p.gid, t, options).status();
          break;
        case Mode::kTcc:
          s = bank::TccTransfer(client.get(), p.gid, t, prepared_options).status();
          break;
        case Mode::kXa:
          s = bank::XaTransfer(client.get(), p.gid, t, xa_options).status();
          break;
        case Mode::kXaClientVanishes:
          s = bank::XaTransferThenVanish(client.get(), p.gid, t, xa_vanish_options);
          break;
        case Mode::kHttpSaga:
        case Mode::kMixedSaga: {
          const Bank& from = *banks[p.from_bank];
          const Bank& to = *banks[1 - p.from_bank];
          // Over HTTP a leg's payload is the TransferRequest in JSON; over gRPC, in protobuf.
          auto json = [](const std::string& user, int64_t amount) {
            return absl::StrCat("{\"user_id\":\"", user, "\",\"amount\":", amount, "}");
          };
          bank::v1::TransferRequest out;
          out.set_user_id(t.from_user);
          out.set_amount(t.amount);
          dtm::Saga saga(client.get(), p.gid);
          if (p.mode == Mode::kHttpSaga) {
            saga.Add(from.http->Target("TransOut"), from.http->Target("TransOutCompensate"),
                     json(t.from_user, t.amount));
          } else {
            saga.Add(bank::Target(t.from_bank, "TransOut"),
                     bank::Target(t.from_bank, "TransOutCompensate"), out.SerializeAsString());
          }
          saga.Add(to.http->Target("TransIn"), to.http->Target("TransInCompensate"),
                   json(t.to_user, t.amount));
          saga.options() = options;
          s = saga.Submit().status();
          break;
        }
        case Mode::kMsg:
          s = bank::MsgTransfer(client.get(), p.gid, t, prepared_options, db.get(),
                                stores[p.from_bank])
                  .status();
          break;
        case Mode::kMsgCrashAfterCommit:
        case Mode::kMsgCrashBeforeCommit: {
          // The client dies after Prepare, after or before its local transaction committed:
          // only the back-check can tell.
          dtm::Msg msg(client.get(), p.gid);
          msg.options() = prepared_options;
          msg.Add(bank::Target(t.to_bank, "TransIn"), [&] {
            bank::v1::TransferRequest r;
            r.set_user_id(t.to_user);
            r.set_amount(t.amount);
            return r.SerializeAsString();
          }());
          s = msg.Prepare(bank::Target(t.from_bank, "QueryPrepared"));
          if (s.ok() && p.mode == Mode::kMsgCrashAfterCommit) {
            dtm::Barrier local = dtm::Barrier::ForMsg(p.gid);
            const dtm::BranchContext ctx{p.gid, "msg", "00", "msg", ""};
            s = local.Call(db.get(), [&](PGconn* tx) {
              return stores[p.from_bank].Apply(tx, bank::Op::kTransOut, t.from_user, t.amount, ctx);
            });
          }
          break;
        }
      }
      if (!s.ok() && !absl::IsAborted(s) && ++client_errors <= 5) {
        std::printf("invariant: client call failed (the coordinator decides): %s %s\n",
                    p.gid.c_str(), s.ToString().c_str());
      }
    }
  };

  // kill -9 and restart dtmd as the transfers progress.
  std::atomic<bool> clients_done{false};
  int restarted = 0;
  std::thread killer([&] {
    for (int k = 1; k <= restarts; ++k) {
      const int at = static_cast<int>(static_cast<int64_t>(transfers) * k / (restarts + 1));
      while (next.load() < at && !clients_done.load()) absl::SleepFor(absl::Milliseconds(5));
      dtmd.Kill9();
      absl::Status up = dtmd.Start();
      if (!up.ok()) {
        ADD_FAILURE() << "restart " << k << ": " << up;
        return;
      }
      ++restarted;
    }
  });

  const absl::Time start = absl::Now();
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(work);
  for (std::thread& t : pool) t.join();
  clients_done = true;
  killer.join();
  const absl::Duration submit_time = absl::Now() - start;
  ASSERT_EQ(restarted, restarts);

  // Every transaction the coordinator knows must end: wait, nudging waiting ones.
  std::map<std::string, dtm::v1::Status> final_status;
  std::set<std::string> unknown;  // NOT_FOUND: never reached the coordinator
  std::vector<std::string> pending;
  for (const Planned& p : planned) pending.push_back(p.gid);
  const absl::Time settle_deadline = absl::Now() + absl::Seconds(180);
  while (!pending.empty() && absl::Now() < settle_deadline) {
    std::vector<std::string> still;
    for (const std::string& gid : pending) {
      absl::StatusOr<dtm::v1::Transaction> t = client->Query(gid);
      if (absl::IsNotFound(t.status())) {
        unknown.insert(gid);
      } else if (t.ok() && (t->status() == dtm::v1::SUCCEEDED || t->status() == dtm::v1::FAILED)) {
        final_status[gid] = t->status();
      } else {
        still.push_back(gid);
      }
    }
    pending.swap(still);
    if (!pending.empty()) {
      client->RetryAllWaiting().IgnoreError();
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  ASSERT_TRUE(pending.empty()) << pending.size() << " transactions not terminal, e.g. "
                               << pending.front() << "\n"
                               << dtmd.Log().substr(0, 4000);
  const absl::Duration settle_time = absl::Now() - start - submit_time;
  for (auto& b : banks) b->service->DrainReplays();  // late deliveries land before the audit

  // The audit, from the banks' own ledgers.
  bank::Conn db(PQconnectdb(conninfo_.c_str()));
  ASSERT_EQ(PQstatus(db.get()), CONNECTION_OK);
  // Every XA branch was committed or rolled back: a prepared transaction left over would hold
  // its row locks forever.
  {
    PGresult* r =
        PQexec(db.get(), "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()");
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
    EXPECT_EQ(PQntuples(r), 0) << "XA branches left PREPARED, e.g. "
                               << (PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
  }
  // (bank, user) -> net change; per gid as well.
  std::map<std::pair<std::string, std::string>, int64_t> ledger;
  std::map<std::string, std::map<std::string, int64_t>> by_gid;  // gid -> user -> net balance
  std::map<std::string, int64_t> frozen_by_gid;
  int64_t legs = 0;
  for (int b = 0; b < 2; ++b) {
    const std::string sql =
        absl::StrCat("SELECT gid, branch_id, op, user_id, balance_delta, frozen_delta FROM ",
                     Schema(b), ".movement");
    PGresult* r = PQexec(db.get(), sql.c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
    std::set<std::tuple<std::string, std::string, std::string>> seen;
    for (int i = 0; i < PQntuples(r); ++i) {
      std::string gid = PQgetvalue(r, i, 0), branch = PQgetvalue(r, i, 1), op = PQgetvalue(r, i, 2);
      std::string user = PQgetvalue(r, i, 3);
      int64_t delta = std::atoll(PQgetvalue(r, i, 4)), frozen = std::atoll(PQgetvalue(r, i, 5));
      EXPECT_TRUE(seen.insert({gid, branch, op}).second)
          << "leg applied twice: " << gid << " " << branch << " " << op << " in " << Schema(b);
      ledger[{Schema(b), user}] += delta;
      by_gid[gid][user] += delta;
      frozen_by_gid[gid] += frozen;
      ++legs;
    }
    PQclear(r);
  }

  std::array<std::array<int64_t, 3>, kModeNames.size()> outcome{};  // succeeded, failed, unknown
  for (const Planned& p : planned) {
    std::map<std::string, int64_t> expected;
    auto it = final_status.find(p.gid);
    int col = 2;
    if (it != final_status.end() && it->second == dtm::v1::SUCCEEDED) {
      expected[p.from_user] = -p.amount;
      expected[p.to_user] = p.amount;
      col = 0;
    } else if (it != final_status.end()) {
      col = 1;
    }
    ++outcome[static_cast<int>(p.mode)][col];
    std::map<std::string, int64_t> got;
    for (const auto& [user, delta] : by_gid[p.gid]) {
      if (delta != 0) got[user] = delta;
    }
    EXPECT_EQ(got, expected) << p.gid << " (" << kModeNames[static_cast<int>(p.mode)] << ", "
                             << (col == 0   ? "SUCCEEDED"
                                 : col == 1 ? "FAILED"
                                            : "unknown")
                             << "): net effect on the accounts";
    EXPECT_EQ(frozen_by_gid[p.gid], 0) << p.gid << ": money left frozen";
  }

  int64_t total = 0;
  std::string balances;
  for (int b = 0; b < 2; ++b) {
    absl::StatusOr<std::vector<bank::Account>> accounts =
        banks[b]->service->store().Balances(db.get());
    ASSERT_TRUE(accounts.ok()) << accounts.status();
    ASSERT_EQ(accounts->size(), static_cast<size_t>(kAccountsPerBank));
    for (const bank::Account& a : *accounts) {
      total += a.balance;
      EXPECT_GE(a.balance, 0) << a.user_id;
      EXPECT_EQ(a.frozen, 0) << a.user_id;
      EXPECT_EQ(a.balance, kInitialBalance + ledger[std::make_pair(Schema(b), a.user_id)])
          << a.user_id << ": balance disagrees with the ledger";
      absl::StrAppend(&balances, " ", a.user_id, "=", a.balance);
    }
  }
  EXPECT_EQ(total, int64_t{2} * kAccountsPerBank * kInitialBalance) << "money created or destroyed";

  // What the run went through.
  std::printf(
      "invariant: %d transfers in %s (+%s to settle), %d dtmd kill -9 + restarts, "
      "%d client calls failed\n",
      transfers, absl::FormatDuration(submit_time).c_str(),
      absl::FormatDuration(settle_time).c_str(), restarted, client_errors.load());
  for (size_t m = 0; m < kModeNames.size(); ++m) {
    std::printf("invariant:   %-24s succeeded %5lld  failed %5lld  never reached dtmd %4lld\n",
                kModeNames[m], static_cast<long long>(outcome[m][0]),
                static_cast<long long>(outcome[m][1]), static_cast<long long>(outcome[m][2]));
  }
  std::printf("invariant: faults injected %lld:", static_cast<long long>(plan.total()));
  for (size_t f = 1; f < kFaultNames.size(); ++f) {
    std::printf(" %s %lld", kFaultNames[f],
                static_cast<long long>(plan.count(static_cast<Fault>(f))));
  }
  std::printf("\n");
  bank::BankService::Stats s[2] = {banks[0]->service->stats(), banks[1]->service->stats()};
  absl::PrintF(
      "invariant: barrier: ran %d, duplicates skipped %d, null compensations %d, "
      "hanging blocked %d, refused %d; %d ledger rows\n",
      s[0].ran + s[1].ran, s[0].duplicate + s[1].duplicate,
      s[0].null_compensation + s[1].null_compensation, s[0].hanging + s[1].hanging,
      s[0].refused + s[1].refused, legs);
  absl::PrintF("invariant: xa branches: prepared %d, committed %d, rolled back %d\n",
               s[0].xa_prepared + s[1].xa_prepared, s[0].xa_committed + s[1].xa_committed,
               s[0].xa_rolled_back + s[1].xa_rolled_back);
  std::printf("invariant: balances%s; total %lld (unchanged)\n", balances.c_str(),
              static_cast<long long>(total));

  // The run exercised what it claims to.
  for (size_t f = 1; f < kFaultNames.size(); ++f) {
    EXPECT_GT(plan.count(static_cast<Fault>(f)), 0) << kFaultNames[f] << " never injected";
  }
  EXPECT_GT(s[0].duplicate + s[1].duplicate, 0);
  EXPECT_GT(s[0].null_compensation + s[1].null_compensation, 0);
  EXPECT_GT(s[0].xa_committed + s[1].xa_committed, 0);
  EXPECT_GT(s[0].xa_rolled_back + s[1].xa_rolled_back, 0);
  for (size_t m = 0; m < kModesWithBothOutcomes; ++m) {
    EXPECT_GT(outcome[m][0], 0) << kModeNames[m] << ": none succeeded";
    EXPECT_GT(outcome[m][1], 0) << kModeNames[m] << ": none failed";
  }
}

TEST_F(BankInvariantTest, BadCallsGetANamedInvalidArgumentAndChangeNothing) {
  Bank bank("bank_a", conninfo_, nullptr);
  auto stub = bank::v1::Bank::NewStub(
      grpc::CreateChannel(bank.address, grpc::InsecureChannelCredentials()));
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
  absl::StatusOr<std::vector<bank::Account>> accounts = bank.service->store().Balances(db.get());
  ASSERT_TRUE(accounts.ok());
  EXPECT_EQ((*accounts)[0].balance, kInitialBalance - 10);
}

}  // namespace
