// PostgreSQL end-to-end tests: several dtmd replicas sharing one database with one killed
// mid-run, a database restart under load, and misconfiguration at start. Real dtmd processes,
// real PostgreSQL servers started by the test run, real gRPC branch services.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/branch.h"
#include "client/coordinator_client.h"
#include "client/saga.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"

namespace dtm {
namespace {

using test::BranchCallRecord;
using test::BranchReply;
using test::DtmdProcess;
using test::TestBranchServer;
using test::WaitUntil;
using ::testing::HasSubstr;

std::string Conninfo() {
  std::string pg = test::TestPostgres();
  EXPECT_FALSE(pg.empty()) << "DTM_TEST_PG is not set: run through ctest, which starts PostgreSQL";
  return pg;
}

// Runs SQL on the test's PostgreSQL as its superuser; fails the test on error.
void Sql(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
}

std::string Schema(const std::string& prefix) { return absl::StrCat(prefix, "_", getpid()); }

// How far a branch call may seem to come after its transaction's end (see CheckCalls).
constexpr int64_t kClockSlackUs = 20000;

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

// What the semantics require of the calls one saga of `steps` steps received, when its
// action `fail_step` (0: none) answers FAILURE: actions 1..f in order, each only after the
// previous one's last call; compensations exactly for the attempted steps, in reverse; no
// call after the transaction's finish time. Returns "" or what is wrong.
std::string CheckCalls(const std::vector<BranchCallRecord>& calls, int steps, int fail_step,
                       int64_t finish_us) {
  absl::flat_hash_map<std::string, std::pair<int64_t, int64_t>> seq;  // name -> first, last arrival
  for (const BranchCallRecord& c : calls) {
    auto [it, fresh] = seq.try_emplace(c.name(), c.seq, c.seq);
    if (!fresh) it->second.second = c.seq;
    // The branch server's clock and the database's are the same machine's, but dtmd reads the
    // database's as its own plus an offset measured over one round trip, which may be off by
    // half of one: milliseconds on a loaded machine or under a sanitizer. A call made after the
    // end (a retry, whose interval is 100 ms here) comes later than that.
    if (absl::ToUnixMicros(c.time) > finish_us + kClockSlackUs) {
      return absl::StrCat(c.name(), " called ", absl::ToUnixMicros(c.time) - finish_us,
                          " us after the transaction ended");
    }
  }
  int last_action = fail_step ? fail_step : steps;
  for (int k = 1; k <= steps; ++k) {
    std::string a = absl::StrCat("A", k), c = absl::StrCat("C", k);
    bool attempted = k <= last_action;
    if (attempted != seq.contains(a)) return absl::StrCat(a, attempted ? " missing" : " called");
    bool compensated = fail_step > 0 && k <= fail_step;
    if (compensated != seq.contains(c)) {
      return absl::StrCat(c, compensated ? " missing" : " called");
    }
    if (k > 1 && attempted && seq[absl::StrCat("A", k - 1)].second > seq[a].first) {
      return absl::StrCat(a, " called before A", k - 1, " was done");
    }
    if (k < steps && compensated && seq.contains(absl::StrCat("C", k + 1)) &&
        seq[absl::StrCat("C", k + 1)].second > seq[c].first) {
      return absl::StrCat(c, " called before C", k + 1, " was done (not reverse order)");
    }
    if (compensated && seq[c].first < seq[absl::StrCat("A", last_action)].second) {
      return absl::StrCat(c, " called before the failed action answered");
    }
  }
  return "";
}

// 3 replicas, one database, 1,000 sagas spread over them, some failing at a step; replica 1 is
// killed with kill -9 half-way. Clients retry a failed Submit on the next replica (as a load
// balancer would). Every saga must end as its script says, with exactly the calls the
// semantics require, none after its end.
TEST(ReplicasTest, KillOneOfThreeReplicasMidRunAndEverySagaEndsCorrectly) {
  constexpr int kSagas = 1000, kSteps = 3;
  std::string store = Conninfo();
  ASSERT_FALSE(store.empty());
  std::vector<std::string> flags = {absl::StrCat("--schema=", Schema("replicas")), "--lease=2s",
                                    "--recovery_interval=200ms"};
  auto fail_step = [](int i) { return i % 5 == 0 ? (i / 5) % kSteps + 1 : 0; };
  TestBranchServer branches;
  branches.SetBehavior([&](const BranchCallRecord& c) -> BranchReply {
    int i = std::atoi(c.gid().c_str() + 2);
    if (c.name() == absl::StrCat("A", fail_step(i))) return {BranchFailure("refused")};
    return {};
  });
  std::vector<std::unique_ptr<DtmdProcess>> replicas;
  std::vector<std::unique_ptr<CoordinatorClient>> clients;
  for (int r = 0; r < 3; ++r) {
    replicas.push_back(std::make_unique<DtmdProcess>(store, flags));
    absl::Status st = replicas.back()->Start();
    ASSERT_TRUE(st.ok()) << st;
    clients.push_back(CoordinatorClient::Connect(replicas.back()->address()));
  }

  std::atomic<int> next{0}, accepted_by_victim{0};
  std::atomic<bool> killed{false};
  absl::Mutex mu;
  std::vector<std::string> failures;
  auto submitter = [&] {
    for (int i = next++; i < kSagas; i = next++) {
      if (i == kSagas / 2 && !killed.exchange(true)) replicas[1]->Kill9();
      std::string gid = absl::StrCat("s-", i);
      bool ok = false;
      for (int attempt = 0; attempt < 6 && !ok; ++attempt) {
        int r = (i + attempt) % 3;
        Saga saga(clients[r].get(), gid);
        for (int k = 1; k <= kSteps; ++k) {
          saga.Add(branches.Target(absl::StrCat("A", k)), branches.Target(absl::StrCat("C", k)));
        }
        saga.RetryInterval(absl::Milliseconds(100));
        ok = saga.Submit().ok();
        if (ok && r == 1 && !killed.load()) accepted_by_victim++;
      }
      if (!ok) {
        absl::MutexLock lock(&mu);
        failures.push_back(gid);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back(submitter);
  for (auto& t : threads) t.join();
  ASSERT_TRUE(failures.empty()) << failures.size() << " sagas could not be submitted anywhere";
  EXPECT_GT(accepted_by_victim.load(), 0);

  // Every saga ends, on the surviving replicas.
  CoordinatorClient* survivor = clients[0].get();
  std::set<int> open;
  for (int i = 0; i < kSagas; ++i) open.insert(i);
  std::map<int, v1::Transaction> ended;
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (auto it = open.begin(); it != open.end();) {
          auto t = survivor->Query(absl::StrCat("s-", *it));
          if (t.ok() && (t->status() == v1::SUCCEEDED || t->status() == v1::FAILED)) {
            ended[*it] = *t;
            it = open.erase(it);
          } else {
            ++it;
          }
        }
        return open.empty();
      },
      absl::Seconds(120)))
      << open.size() << " sagas still open, e.g. s-" << *open.begin() << "\n"
      << replicas[0]->Log();

  int failed = 0;
  for (int i = 0; i < kSagas; ++i) {
    const v1::Transaction& t = ended[i];
    std::string gid = absl::StrCat("s-", i);
    EXPECT_EQ(t.status(), fail_step(i) ? v1::FAILED : v1::SUCCEEDED) << gid;
    failed += t.status() == v1::FAILED;
    std::string wrong =
        CheckCalls(branches.CallsFor(gid), kSteps, fail_step(i), Micros(t.finish_time()));
    EXPECT_EQ(wrong, "") << gid << ": " << ::testing::PrintToString(branches.NamesFor(gid));
  }
  EXPECT_EQ(failed, kSagas / 5);
  // The survivors took over the victim's work.
  EXPECT_TRUE(WaitUntil([&] {
    return (replicas[0]->Log() + replicas[2]->Log()).find("recovery resumed") != std::string::npos;
  }));
  EXPECT_EQ(replicas[0]->Terminate(), 0);
  EXPECT_EQ(replicas[2]->Terminate(), 0);
}

// A private PostgreSQL (this test stops and starts it).
class PrivatePostgres {
 public:
  PrivatePostgres() : dir_(absl::StrCat("/tmp/dtm-pgr-", getpid())) {}
  ~PrivatePostgres() { Run("destroy"); }
  bool Fresh() { return Run("fresh"); }
  bool Start() { return Run("start"); }
  bool Stop() { return Run("stop"); }
  std::string conninfo() const {
    return absl::StrCat("host=", dir_, " port=5433 user=postgres dbname=postgres");
  }

 private:
  bool Run(const std::string& cmd) {
    std::string line = absl::StrCat(test::BuildPath("source", "scripts/pg-throwaway.sh"), " ", cmd,
                                    " ", dir_, " 5433 >/dev/null");
    return std::system(line.c_str()) == 0;
  }
  std::string dir_;
};

// Sagas keep arriving while PostgreSQL is stopped and started again: dtmd stays up, answers
// UNAVAILABLE meanwhile, reconnects by itself, and every acknowledged saga finishes.
//
// Background submitters keep sagas coming across the outage, but they cannot be relied on to
// show UNAVAILABLE: group commit answers all of them from one commit, so they come back
// together and their next writes share a batch again. When the stopping database cuts off a
// batch's COMMIT, the outcome of its writes is unknown, and the store (rightly: a write it
// reported failed must not have happened) keeps them waiting until the database is back to
// read whether it committed. Then all four submitters wait for the restart and
// none sees UNAVAILABLE: that made this test flaky. So the test itself submits once the
// database is down: those writes start after the stop, cannot get as far as a COMMIT, and
// must be refused at once with UNAVAILABLE from the store, leaving nothing stored.
TEST(PostgresRestartTest, UnavailableWhileTheDatabaseIsDownThenCarriesOnLosingNothing) {
  PrivatePostgres pg;
  ASSERT_TRUE(pg.Fresh());
  TestBranchServer branches;
  DtmdProcess dtmd(pg.conninfo(), {"--lease=2s", "--recovery_interval=200ms"});
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  auto client = CoordinatorClient::Connect(dtmd.address());
  auto saga = [&](CoordinatorClient* c, const std::string& gid) {
    Saga s(c, gid);
    s.Add(branches.Target("A1"), branches.Target("C1"))
        .Add(branches.Target("A2"), branches.Target("C2"))
        .RetryInterval(absl::Milliseconds(100));
    return s;
  };

  absl::Mutex mu;
  std::vector<std::string> acked;
  std::map<absl::StatusCode, int> errors;
  std::atomic<bool> stop{false};
  std::atomic<int> seq{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&] {
      while (!stop.load()) {
        std::string gid = absl::StrCat("r-", seq++);
        auto r = saga(client.get(), gid).Submit();
        absl::MutexLock lock(&mu);
        if (r.ok()) {
          acked.push_back(gid);
        } else {
          errors[r.status().code()]++;
        }
      }
    });
  }
  // Joins the submitters however the test ends (a failed ASSERT returns early).
  struct Joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads) t.join();
    }
  } joiner{stop, submitters};
  auto acked_count = [&] {
    absl::MutexLock lock(&mu);
    return acked.size();
  };
  ASSERT_TRUE(WaitUntil([&] { return acked_count() >= 50; }));
  ASSERT_TRUE(pg.Stop());  // returns once the server is down

  // Down: each Submit is answered at once, UNAVAILABLE, by dtmd's store (not by a transport
  // failure: dtmd is up). The short deadline turns a Submit that hangs into a failure here.
  auto prober = CoordinatorClient::Connect(dtmd.address(), absl::Seconds(5));
  std::vector<std::string> refused;
  for (int i = 0; i < 5; ++i) {
    std::string gid = absl::StrCat("down-", i);
    auto r = saga(prober.get(), gid).Submit();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << gid << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("database unavailable")) << gid;
    refused.push_back(gid);
  }
  ASSERT_TRUE(dtmd.running());

  ASSERT_TRUE(pg.Start());
  size_t before = acked_count();
  EXPECT_TRUE(WaitUntil([&] { return acked_count() >= before + 50; }, absl::Seconds(60)))
      << dtmd.Log();
  stop = true;
  for (auto& t : submitters) t.join();
  submitters.clear();
  {
    // A background Submit either succeeded or failed UNAVAILABLE (down, or its commit was
    // rolled back); none timed out waiting.
    absl::MutexLock lock(&mu);
    for (const auto& [code, n] : errors) {
      EXPECT_EQ(code, absl::StatusCode::kUnavailable) << n << " errors with another code";
    }
  }
  // UNAVAILABLE while down meant "not written".
  for (const std::string& gid : refused) {
    EXPECT_EQ(client->Query(gid).status().code(), absl::StatusCode::kNotFound) << gid;
  }
  // Nothing acknowledged is lost: every acked saga succeeds, both actions ran, no compensation.
  std::vector<std::string> all;
  {
    absl::MutexLock lock(&mu);
    all = acked;
  }
  for (const std::string& gid : all) {
    ASSERT_TRUE(WaitUntil([&] {
      auto t = client->Query(gid);
      return t.ok() && t->status() == v1::SUCCEEDED;
    })) << gid
        << "\n"
        << dtmd.Log();
    auto names = branches.NamesFor(gid);
    EXPECT_EQ(
        std::count(names.begin(), names.end(), "C1") + std::count(names.begin(), names.end(), "C2"),
        0)
        << gid;
    EXPECT_EQ(names.back(), "A2") << gid;
  }
  EXPECT_TRUE(dtmd.LogShows("PostgreSQL connection restored")) << dtmd.Log();
  EXPECT_EQ(dtmd.Terminate(), 0);
}

TEST(PostgresConfigTest, UnreachableDatabaseNamesTheHostAndExits) {
  DtmdProcess dtmd("postgresql://dtm@127.0.0.1:1/dtm?connect_timeout=2");
  absl::Status st = dtmd.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(dtmd.Log(), HasSubstr("cannot connect to PostgreSQL at 127.0.0.1 port 1"));
  EXPECT_THAT(dtmd.Log(), HasSubstr("Connection refused"));
}

TEST(PostgresConfigTest, SchemaFromANewerDtmdIsRefused) {
  std::string pg = Conninfo();
  std::string schema = Schema("future");
  Sql(pg, absl::StrCat("CREATE SCHEMA ", schema, "; CREATE TABLE ", schema,
                       ".dtm_schema_version (version INT NOT NULL); INSERT INTO ", schema,
                       ".dtm_schema_version VALUES (99)"));
  DtmdProcess dtmd(pg, {absl::StrCat("--schema=", schema)});
  ASSERT_FALSE(dtmd.Start().ok());
  EXPECT_THAT(dtmd.Log(), HasSubstr("schema version 99, newer than this dtmd supports"));
}

TEST(PostgresConfigTest, UserWithoutRightsGetsAClearMessage) {
  std::string pg = Conninfo();
  std::string schema = Schema("locked"), user = Schema("weak");
  Sql(pg, absl::StrCat("CREATE ROLE ", user, " LOGIN; CREATE SCHEMA ", schema));
  DtmdProcess dtmd(absl::StrCat(pg, " user=", user), {absl::StrCat("--schema=", schema)});
  ASSERT_FALSE(dtmd.Start().ok());
  EXPECT_THAT(dtmd.Log(), HasSubstr(absl::StrCat("PostgreSQL user '", user, "'")));
  EXPECT_THAT(dtmd.Log(), HasSubstr("lacks the rights"));
}

TEST(PostgresConfigTest, TwoReplicasStartingTogetherMigrateOnce) {
  std::string pg = Conninfo();
  std::vector<std::string> flags = {absl::StrCat("--schema=", Schema("race"))};
  std::vector<std::unique_ptr<DtmdProcess>> d;
  for (int i = 0; i < 3; ++i) d.push_back(std::make_unique<DtmdProcess>(pg, flags));
  std::vector<absl::Status> started(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([&, i] { started[i] = d[i]->Start(); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(started[i].ok()) << started[i];
  for (auto& p : d) EXPECT_EQ(p->Terminate(), 0);
}

}  // namespace
}  // namespace dtm
