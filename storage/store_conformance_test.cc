// Store conformance suite: every Store implementation must pass these. Parameterised by a
// factory so that PostgreSQL joins by adding one entry to kStores.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "storage/libpq/pg_exec.h"
#include "storage/postgres/pg_store.h"
#include "storage/sqlite/sqlite_store.h"
#include "storage/store.h"
#include "tests/util/temp_dir.h"

namespace dtm {
namespace {

using ::testing::ElementsAre;

struct StoreFactory {
  std::string name;
  // Opens a fresh store; `where` names its database (SQLite: the file; PostgreSQL: the schema).
  std::function<std::unique_ptr<Store>(std::string* where)> make;
  // Behind the store's back, as a DBA might: makes the database refuse to store a transaction
  // whose gid starts with "bad-" and a branch whose target starts with "bad:" (a trigger in
  // SQLite, CHECK constraints in PostgreSQL, both named refuse_bad_gid / refuse_bad_target).
  std::function<void(const std::string& where)> refuse_bad_rows;
  // How many transactions wrote the rows of `gids` (PostgreSQL: distinct xmin), or -1 if the
  // store cannot tell.
  std::function<int(const std::string& where, const std::vector<std::string>& gids)>
      transactions_of;
};
void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

std::unique_ptr<Store> MakeSQLite(std::string* where) {
  std::string dir = test::MakeTempDir("dtm-store");
  *where = dir + "/c.db";
  auto s = SQLiteStore::Open(*where);
  return s.ok() ? std::unique_ptr<Store>(std::move(*s)) : nullptr;
}

void SQLiteRefuseBadRows(const std::string& path) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  char* err = nullptr;
  int rc = sqlite3_exec(db, R"sql(
      CREATE TRIGGER refuse_bad_gid BEFORE INSERT ON trans_global WHEN NEW.gid LIKE 'bad-%'
        BEGIN SELECT RAISE(ABORT, 'refuse_bad_gid'); END;
      CREATE TRIGGER refuse_bad_target BEFORE INSERT ON trans_branch WHEN NEW.target LIKE 'bad:%'
        BEGIN SELECT RAISE(ABORT, 'refuse_bad_target'); END;)sql",
                        nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// PostgreSQL: the server the test run started (DTM_TEST_PG, set by ctest's "pg" fixture), a
// fresh schema per test so tests never see each other's rows.
std::unique_ptr<Store> MakePostgres(std::string* where) {
  const char* conninfo = std::getenv("DTM_TEST_PG");
  if (conninfo == nullptr) {
    ADD_FAILURE() << "DTM_TEST_PG is not set: run through ctest, which starts PostgreSQL";
    return nullptr;
  }
  static std::atomic<int> seq{0};
  PgStoreOptions o;
  o.schema = absl::StrCat("conf_", getpid(), "_", seq++);
  *where = o.schema;
  auto s = PgStore::Open(conninfo, o);
  if (!s.ok()) ADD_FAILURE() << s.status();
  return s.ok() ? std::unique_ptr<Store>(std::move(*s)) : nullptr;
}

// Runs `sql` (one or more statements) on the test run's PostgreSQL; returns the first value
// of the last statement's first row.
std::string PgSql(const std::string& sql) {
  pg::Conn c(PQconnectdb(std::getenv("DTM_TEST_PG")));
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  pg::Result r(PQexec(c.get(), sql.c_str()));
  ExecStatusType st = PQresultStatus(r.get());
  EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << PQresultErrorMessage(r.get());
  if (st != PGRES_TUPLES_OK || PQntuples(r.get()) == 0) return "";
  return PQgetvalue(r.get(), 0, 0);
}

void PgRefuseBadRows(const std::string& schema) {
  PgSql(absl::StrCat("ALTER TABLE ", schema,
                     ".trans_global ADD CONSTRAINT refuse_bad_gid CHECK (gid NOT LIKE 'bad-%'); "
                     "ALTER TABLE ",
                     schema,
                     ".trans_branch ADD CONSTRAINT refuse_bad_target CHECK "
                     "(target NOT LIKE 'bad:%')"));
}

int PgTransactionsOf(const std::string& schema, const std::vector<std::string>& gids) {
  std::string n =
      PgSql(absl::StrCat("SELECT count(DISTINCT xmin::text) FROM ", schema,
                         ".trans_global WHERE gid IN ('", absl::StrJoin(gids, "','"), "')"));
  int v = -1;
  return absl::SimpleAtoi(n, &v) ? v : -1;
}

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

Transaction MakeTxn(const std::string& gid, absl::Time created,
                    GlobalStatus status = GlobalStatus::kSubmitted) {
  Transaction t;
  t.gid = gid;
  t.trans_type = TransType::kSaga;
  t.status = status;
  t.options.timeout_to_fail = absl::Milliseconds(1500);
  t.options.retry_interval = absl::Milliseconds(250);
  t.options.retry_limit = 3;
  t.options.branch_headers = {{"x-a", "1"}, {"x-b", "two=2"}};
  t.options.concurrent = true;
  t.options.delay = absl::Milliseconds(700);
  t.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  t.tracestate = "vendor=a,other=b";
  t.create_time = created;
  t.update_time = created;
  t.next_retry_time = created + absl::Seconds(10);
  t.rollback_reason = "";
  for (int i = 0; i < 2; ++i) {
    Branch a;
    a.branch_id = SagaBranchId(i);
    a.op = BranchOp::kAction;
    a.target = absl::StrCat("h:1/s.S/A", i);
    a.payload = std::string("\0bin\xff", 5);
    if (i == 1) a.after = {0};
    Branch c = a;
    c.op = BranchOp::kCompensate;
    c.after.clear();
    t.branches.push_back(a);
    t.branches.push_back(c);
  }
  return t;
}

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam().make(&where_);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    if (store_) store_->Close();
  }

  // Queues `ops` so that they all go into one batch: the writer is held in the done callback
  // of a write queued first until every op is queued. That write is a claim (of nothing: no
  // transaction is due at the epoch), the one write whose callback runs on the writer itself.
  // Returns each op's result.
  std::vector<WriteResult> WriteOneBatch(std::vector<WriteOp> ops) {
    absl::Notification holding, release;
    ClaimOp hold;
    hold.owner = "holder";
    hold.now = absl::UnixEpoch();
    store_->Write(hold, [&](const WriteResult&) {
      holding.Notify();
      release.WaitForNotification();
    });
    holding.WaitForNotification();
    std::vector<WriteResult> results(ops.size());
    absl::BlockingCounter done(static_cast<int>(ops.size()));
    for (size_t i = 0; i < ops.size(); ++i) {
      store_->Write(std::move(ops[i]), [&, i](WriteResult r) {
        results[i] = std::move(r);
        done.DecrementCount();
      });
    }
    release.Notify();
    done.Wait();
    return results;
  }

  std::unique_ptr<Store> store_;
  std::string where_;
};

TEST_P(StoreConformanceTest, CreateThenGetRoundTripsEveryField) {
  Transaction t = MakeTxn("rt", kT0);
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  auto got = store_->Get("rt");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, t);
  EXPECT_EQ(store_->Get("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, CountUnfinishedCountsByStatus) {
  auto none = store_->CountUnfinished();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("c1", kT0)}).status.ok());
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("c2", kT0)}).status.ok());
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("c3", kT0, GlobalStatus::kPrepared)}).status.ok());
  ASSERT_TRUE(
      store_->WriteSync(CreateOp{MakeTxn("c4", kT0, GlobalStatus::kSucceeded)}).status.ok());
  auto counts = store_->CountUnfinished();
  ASSERT_TRUE(counts.ok()) << counts.status();
  std::map<GlobalStatus, int64_t> want = {{GlobalStatus::kPrepared, 1},
                                          {GlobalStatus::kSubmitted, 2}};
  EXPECT_EQ(*counts, want);
}

TEST_P(StoreConformanceTest, CommitObserverSeesEveryBatch) {
  std::atomic<int> batches{0};
  std::atomic<size_t> writes{0};
  store_->set_commit_observer([&](absl::Duration took, size_t n) {
    EXPECT_GE(took, absl::ZeroDuration());
    batches++;
    writes += n;
  });
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("o1", kT0)}).status.ok());
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("o2", kT0)}).status.ok());
  // The observer runs once the batch's writers were answered: wait for it.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (batches.load() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(batches.load(), 2);
  EXPECT_EQ(writes.load(), 2u);
}

// WriteSync from a write's callback, on either of the store's threads, would wait for the
// thread it runs on: it fails at once, writes nothing, and the store goes on.
TEST_P(StoreConformanceTest, WriteSyncFromAWritesCallbackFailsInsteadOfWaitingForItself) {
  absl::Notification created_done, claimed_done;
  WriteResult from_completion, from_writer;
  store_->Write(CreateOp{MakeTxn("cb-1", kT0)}, [&](const WriteResult& r) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(store_->OnStoreThread());
    from_completion = store_->WriteSync(CreateOp{MakeTxn("cb-2", kT0)});
    created_done.Notify();
  });
  ClaimOp claim;  // completes on the writer itself
  claim.owner = "claimer";
  claim.now = absl::UnixEpoch();
  store_->Write(claim, [&](const WriteResult&) {
    from_writer = store_->WriteSync(CreateOp{MakeTxn("cb-3", kT0)});
    claimed_done.Notify();
  });
  ASSERT_TRUE(created_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(claimed_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(from_completion.status.code(), absl::StatusCode::kInternal) << from_completion.status;
  EXPECT_THAT(std::string(from_completion.status.message()), ::testing::HasSubstr("WriteSync"));
  EXPECT_EQ(from_writer.status.code(), absl::StatusCode::kInternal) << from_writer.status;
  EXPECT_FALSE(store_->OnStoreThread());
  EXPECT_EQ(store_->Get("cb-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Get("cb-3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->WriteSync(CreateOp{MakeTxn("cb-4", kT0)}).status.ok());
  EXPECT_TRUE(store_->Get("cb-1").ok());
}

TEST_P(StoreConformanceTest, TraceContextIsOptional) {
  Transaction t = MakeTxn("no-trace", kT0);
  t.traceparent.clear();
  t.tracestate.clear();
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  auto got = store_->Get("no-trace");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, t);
  auto listed = store_->List(ListQuery{});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_FALSE(listed->transactions.empty());
  EXPECT_EQ(listed->transactions[0].options.branch_headers, t.options.branch_headers);
}

TEST_P(StoreConformanceTest, DuplicateCreateReturnsTheExistingTransaction) {
  Transaction t = MakeTxn("dup", kT0);
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  Transaction other = MakeTxn("dup", kT0 + absl::Seconds(5));
  other.branches.pop_back();
  WriteResult r = store_->WriteSync(CreateOp{other});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(r.existing.has_value());
  EXPECT_EQ(*r.existing, t);
  EXPECT_EQ(*store_->Get("dup"), t);  // nothing overwritten
}

TEST_P(StoreConformanceTest, UpdateIsACompareAndSet) {
  Transaction t = MakeTxn("cas", kT0);
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  UpdateOp op;
  op.gid = "cas";
  op.expected_status = GlobalStatus::kSubmitted;
  op.new_status = GlobalStatus::kAborting;
  op.rollback_reason = "step 02 failed";
  op.update_time = kT0 + absl::Seconds(1);
  op.next_retry_time = kT0 + absl::Seconds(2);
  Branch b = t.branches[2];
  b.status = BranchStatus::kFailed;
  b.attempts = 2;
  b.last_error = "ABORTED: no";
  b.finish_time = kT0 + absl::Seconds(1);
  op.branches.emplace_back(2, b);
  ASSERT_TRUE(store_->WriteSync(op).status.ok());
  auto got = store_->Get("cas");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, GlobalStatus::kAborting);
  EXPECT_EQ(got->rollback_reason, "step 02 failed");
  EXPECT_EQ(got->next_retry_time, kT0 + absl::Seconds(2));
  EXPECT_EQ(got->branches[2], b);
  EXPECT_EQ(got->branches[0], t.branches[0]);
  // The same write again expects SUBMITTED: refused, nothing changes.
  op.new_status = GlobalStatus::kSucceeded;
  WriteResult again = store_->WriteSync(op);
  EXPECT_EQ(again.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Get("cas")->status, GlobalStatus::kAborting);
  op.gid = "missing";
  EXPECT_EQ(store_->WriteSync(op).status.code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, ClaimTakesOnlyDueNonTerminalWorkAndLeasesIt) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("due", kT0)}).status.ok());
  Transaction later = MakeTxn("later", kT0);
  later.next_retry_time = kT0 + absl::Hours(1);
  ASSERT_TRUE(store_->WriteSync(CreateOp{later}).status.ok());
  Transaction done = MakeTxn("done", kT0, GlobalStatus::kSucceeded);
  done.next_retry_time = kT0;
  ASSERT_TRUE(store_->WriteSync(CreateOp{done}).status.ok());
  Transaction leased = MakeTxn("leased", kT0);
  leased.owner = "replica-b";
  leased.lease_expire = kT0 + absl::Seconds(40);
  ASSERT_TRUE(store_->WriteSync(CreateOp{leased}).status.ok());

  ClaimOp claim;
  claim.owner = "replica-a";
  claim.now = kT0 + absl::Seconds(20);
  claim.lease = absl::Seconds(30);
  WriteResult r = store_->WriteSync(claim);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.claimed.size(), 1u);
  EXPECT_EQ(r.claimed[0].gid, "due");
  EXPECT_EQ(r.claimed[0].branches.size(), 4u);
  EXPECT_EQ(r.claimed[0].owner, "replica-a");
  EXPECT_EQ(r.claimed[0].lease_expire, claim.now + claim.lease);
  EXPECT_EQ(store_->Get("due")->owner, "replica-a");
  // Leased to replica-a: nobody claims it again until the lease passes; then replica-c may.
  claim.owner = "replica-c";
  EXPECT_TRUE(store_->WriteSync(claim).claimed.empty());
  claim.now += absl::Seconds(31);
  WriteResult again = store_->WriteSync(claim);
  std::vector<std::string> gids;
  for (const auto& t : again.claimed) gids.push_back(t.gid);
  EXPECT_THAT(gids, ::testing::UnorderedElementsAre("due", "leased"));
  EXPECT_EQ(store_->Get("leased")->owner, "replica-c");
}

TEST_P(StoreConformanceTest, RenewExtendsOnlyTheOwnersLiveLeases) {
  Transaction mine = MakeTxn("mine", kT0);
  mine.owner = "a";
  mine.lease_expire = kT0 + absl::Seconds(10);
  Transaction theirs = MakeTxn("theirs", kT0);
  theirs.owner = "b";
  theirs.lease_expire = kT0 + absl::Seconds(10);
  Transaction ended = MakeTxn("ended", kT0, GlobalStatus::kFailed);
  ended.owner = "a";
  for (const auto& t : {mine, theirs, ended}) {
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  RenewOp renew{
      "a", {"mine", "theirs", "ended", "missing"}, kT0 + absl::Seconds(5), absl::Seconds(10)};
  WriteResult r = store_->WriteSync(renew);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.renewed.size(), 1u);
  EXPECT_EQ(r.renewed[0].first, "mine");
  EXPECT_EQ(r.renewed[0].second, mine.next_retry_time);
  EXPECT_EQ(store_->Get("mine")->lease_expire, kT0 + absl::Seconds(15));
  EXPECT_EQ(store_->Get("theirs")->lease_expire, kT0 + absl::Seconds(10));
}

TEST_P(StoreConformanceTest, UpdateIsFencedByOwner) {
  Transaction t = MakeTxn("fence", kT0);
  t.owner = "a";
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  // Replica b claimed it after a's lease ran out: a's late write must not land.
  ClaimOp claim;
  claim.owner = "b";
  claim.now = kT0 + absl::Minutes(1);
  ASSERT_EQ(store_->WriteSync(claim).claimed.size(), 1u);
  UpdateOp op;
  op.gid = "fence";
  op.owner = "a";
  op.expected_status = GlobalStatus::kSubmitted;
  op.new_status = GlobalStatus::kSucceeded;
  WriteResult r = store_->WriteSync(op);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(r.status.message()), ::testing::HasSubstr("'b'"));
  EXPECT_EQ(store_->Get("fence")->status, GlobalStatus::kSubmitted);
  op.owner = "b";
  EXPECT_TRUE(store_->WriteSync(op).status.ok());
  // An unfenced write (ForceStop from any replica) needs only the status to match.
  Transaction u = MakeTxn("unfenced", kT0);
  u.owner = "b";
  ASSERT_TRUE(store_->WriteSync(CreateOp{u}).status.ok());
  op.gid = "unfenced";
  op.owner = "";
  op.new_status = GlobalStatus::kFailed;
  EXPECT_TRUE(store_->WriteSync(op).status.ok());
  EXPECT_EQ(store_->Get("unfenced")->status, GlobalStatus::kFailed);
}

TEST_P(StoreConformanceTest, ConcurrentClaimersNeverShareATransaction) {
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn(absl::StrCat("cc-", i), kT0)}).status.ok());
  }
  std::vector<std::vector<std::string>> got(3);
  std::vector<std::thread> threads;
  for (int c = 0; c < 3; ++c) {
    threads.emplace_back([&, c] {
      for (;;) {
        ClaimOp claim;
        claim.owner = absl::StrCat("r", c);
        claim.now = kT0 + absl::Seconds(20);
        claim.limit = 7;
        WriteResult r = store_->WriteSync(claim);
        if (!r.status.ok() || r.claimed.empty()) return;
        for (const auto& t : r.claimed) got[c].push_back(t.gid);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  size_t total = 0;
  for (const auto& g : got) {
    total += g.size();
    all.insert(g.begin(), g.end());
  }
  EXPECT_EQ(total, 60u);  // each transaction claimed exactly once
  EXPECT_EQ(all.size(), 60u);
}

TEST_P(StoreConformanceTest, TouchMakesWorkDueAndRefusesTerminal) {
  Transaction later = MakeTxn("touch", kT0);
  later.next_retry_time = kT0 + absl::Hours(1);
  ASSERT_TRUE(store_->WriteSync(CreateOp{later}).status.ok());
  ASSERT_TRUE(store_->WriteSync(TouchOp{"touch", kT0}).status.ok());
  EXPECT_EQ(store_->Get("touch")->next_retry_time, kT0);
  // Already due (a call is being made): a touch still moves it back, by a microsecond.
  ASSERT_TRUE(store_->WriteSync(TouchOp{"touch", kT0 + absl::Seconds(5)}).status.ok());
  EXPECT_EQ(store_->Get("touch")->next_retry_time, kT0 - absl::Microseconds(1));
  ClaimOp claim;
  claim.owner = "a";
  claim.now = kT0;
  EXPECT_EQ(store_->WriteSync(claim).claimed.size(), 1u);
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("fin", kT0, GlobalStatus::kFailed)}).status.ok());
  EXPECT_EQ(store_->WriteSync(TouchOp{"fin", kT0}).status.code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->WriteSync(TouchOp{"none", kT0}).status.code(), absl::StatusCode::kNotFound);
}

// An owner's write that began before a touch (RetryNow through another replica) committed
// keeps the touched next_retry_time; a write after the owner saw it replaces it.
TEST_P(StoreConformanceTest, AnUpdateKeepsANextRetryTimeATouchMovedBack) {
  Transaction t = MakeTxn("kept", kT0);
  t.next_retry_time = kT0 + absl::Seconds(10);
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  ASSERT_TRUE(store_->WriteSync(TouchOp{"kept", kT0 + absl::Seconds(1)}).status.ok());
  UpdateOp op;
  op.gid = "kept";
  op.expected_status = op.new_status = GlobalStatus::kSubmitted;
  op.update_time = kT0 + absl::Seconds(2);
  op.next_retry_time = kT0 + absl::Minutes(1);
  op.keep_earlier_than = kT0 + absl::Seconds(10);  // what the owner last wrote
  WriteResult r = store_->WriteSync(op);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(store_->Get("kept")->next_retry_time, kT0 + absl::Seconds(1));
  EXPECT_EQ(r.next_retry_time, kT0 + absl::Seconds(1));  // the writer learns it was kept
  op.keep_earlier_than = kT0 + absl::Seconds(1);         // the owner took the touch in
  r = store_->WriteSync(op);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(store_->Get("kept")->next_retry_time, kT0 + absl::Minutes(1));
  EXPECT_EQ(r.next_retry_time, kT0 + absl::Minutes(1));
  op.keep_earlier_than = absl::InfinitePast();  // unset: always written
  op.next_retry_time = kT0 + absl::Seconds(30);
  r = store_->WriteSync(op);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(store_->Get("kept")->next_retry_time, kT0 + absl::Seconds(30));
  EXPECT_EQ(r.next_retry_time, kT0 + absl::Seconds(30));
  op.expected_status = GlobalStatus::kAborting;  // refused: nothing stored, nothing to report
  r = store_->WriteSync(op);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.next_retry_time, absl::InfinitePast());
}

TEST_P(StoreConformanceTest, TouchAllMakesEveryWaitingTransactionDue) {
  Transaction waiting = MakeTxn("w1", kT0);
  waiting.next_retry_time = kT0 + absl::Hours(1);
  Transaction aborting = MakeTxn("w2", kT0, GlobalStatus::kAborting);
  aborting.next_retry_time = kT0 + absl::Minutes(5);
  Transaction due = MakeTxn("due", kT0);
  due.next_retry_time = kT0 - absl::Seconds(1);
  // Being called by its owner: already due, and leased.
  Transaction calling = MakeTxn("calling", kT0);
  calling.next_retry_time = kT0 - absl::Seconds(2);
  calling.owner = "b";
  calling.lease_expire = kT0 + absl::Seconds(10);
  Transaction excepted = MakeTxn("here", kT0);  // the asking coordinator's own
  excepted.next_retry_time = kT0 + absl::Hours(1);
  excepted.owner = "a";
  excepted.lease_expire = kT0 + absl::Seconds(10);
  Transaction prepared = MakeTxn("prep", kT0, GlobalStatus::kPrepared);
  prepared.trans_type = TransType::kTcc;
  prepared.next_retry_time = kT0 + absl::Hours(1);
  for (const Transaction& t : {waiting, aborting, due, calling, excepted, prepared}) {
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  WriteResult r = store_->WriteSync(TouchAllOp{kT0, {"here", "gone"}});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.touched, 3);
  EXPECT_EQ(store_->Get("w1")->next_retry_time, kT0);
  EXPECT_EQ(store_->Get("w2")->next_retry_time, kT0);
  EXPECT_EQ(store_->Get("due")->next_retry_time, kT0 - absl::Seconds(1));
  // Moved back, as a touch of its gid would: its owner tells it from its own writes.
  EXPECT_EQ(store_->Get("calling")->next_retry_time,
            kT0 - absl::Seconds(2) - absl::Microseconds(1));
  EXPECT_EQ(store_->Get("here")->next_retry_time, kT0 + absl::Hours(1));
  // The list of gids left alone is the op's own, not left over from the one before.
  r = store_->WriteSync(TouchAllOp{kT0, {}});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.touched, 2);  // the two leased ones; the others are due now
  EXPECT_EQ(store_->Get("here")->next_retry_time, kT0);
  // A PREPARED tcc waits for its client (or its timeout): neither form makes it due.
  EXPECT_EQ(store_->Get("prep")->next_retry_time, kT0 + absl::Hours(1));
  EXPECT_EQ(store_->WriteSync(TouchOp{"prep", kT0}).status.code(),
            absl::StatusCode::kFailedPrecondition);
}

// A msg still in its delivery delay is the client's schedule, not a backoff: a bulk touch
// leaves it alone until the delay is over, or once a branch of it was called (then it is
// waiting for a retry like any other).
TEST_P(StoreConformanceTest, TouchAllLeavesAMsgInItsDelayAlone) {
  auto msg = [](const std::string& gid, absl::Duration delay) {
    Transaction t = MakeTxn(gid, kT0 - absl::Minutes(1));
    t.trans_type = TransType::kMsg;
    t.options.delay = delay;
    t.next_retry_time = kT0 - absl::Minutes(1) + delay;
    return t;
  };
  Transaction held = msg("held", absl::Hours(1));
  Transaction over = msg("over", absl::Seconds(30));  // its delay ended 30 s before kT0
  over.next_retry_time = kT0 + absl::Minutes(5);      // and it waits for a retry
  Transaction called = msg("called", absl::Hours(1));
  called.branches[0].attempts = 1;  // delivered once already (a clock step let it go early)
  for (const Transaction& t : {held, over, called}) {
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  WriteResult r = store_->WriteSync(TouchAllOp{kT0, {}});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.touched, 2);
  EXPECT_EQ(store_->Get("held")->next_retry_time, held.next_retry_time);
  EXPECT_EQ(store_->Get("over")->next_retry_time, kT0);
  EXPECT_EQ(store_->Get("called")->next_retry_time, kT0);
}

Transaction PreparedTcc(const std::string& gid) {
  Transaction t = MakeTxn(gid, kT0, GlobalStatus::kPrepared);
  t.trans_type = TransType::kTcc;
  t.branches.clear();
  return t;
}

RegisterOp Reg(const std::string& gid, const std::string& id, const std::string& confirm,
               const std::string& cancel) {
  RegisterOp op;
  op.gid = gid;
  op.branch_id = id;
  op.confirm = confirm;
  op.cancel = cancel;
  op.payload = std::string("p\0", 2) + id;
  op.update_time = kT0 + absl::Seconds(1);
  return op;
}

TEST_P(StoreConformanceTest, RegisterAppendsConfirmAndCancelInOrderAndIsIdempotent) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{PreparedTcc("tcc")}).status.ok());
  // Two in one batch and one after: indexes follow registration order.
  std::atomic<int> done{0};
  absl::Status s1, s2;
  store_->Write(Reg("tcc", "01", "h:1/s.S/C1", "h:1/s.S/X1"), [&](const WriteResult& r) {
    s1 = r.status;
    done++;
  });
  store_->Write(Reg("tcc", "02", "h:1/s.S/C2", ""), [&](const WriteResult& r) {
    s2 = r.status;
    done++;
  });
  while (done < 2) std::this_thread::yield();
  ASSERT_TRUE(s1.ok()) << s1;
  ASSERT_TRUE(s2.ok()) << s2;
  ASSERT_TRUE(store_->WriteSync(Reg("tcc", "0201", "h:1/s.S/C3", "h:1/s.S/X3")).status.ok());
  // The same id with the same targets again: accepted, nothing added.
  ASSERT_TRUE(store_->WriteSync(Reg("tcc", "01", "h:1/s.S/C1", "h:1/s.S/X1")).status.ok());
  WriteResult other = store_->WriteSync(Reg("tcc", "01", "h:1/s.S/C1", "h:1/s.S/Other"));
  EXPECT_EQ(other.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(other.status.message()), ::testing::HasSubstr("h:1/s.S/Other"));
  // The same targets with another payload is no repeat: accepting it would drop the payload.
  RegisterOp repayload = Reg("tcc", "01", "h:1/s.S/C1", "h:1/s.S/X1");
  repayload.payload = "another";
  WriteResult payload = store_->WriteSync(repayload);
  EXPECT_EQ(payload.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(payload.status.message()), ::testing::HasSubstr("another payload"));

  auto got = store_->Get("tcc");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->branches.size(), 6u);
  const char* ids[] = {"01", "01", "02", "02", "0201", "0201"};
  const char* targets[] = {"h:1/s.S/C1", "h:1/s.S/X1", "h:1/s.S/C2",
                           "",           "h:1/s.S/C3", "h:1/s.S/X3"};
  for (int i = 0; i < 6; ++i) {
    const Branch& b = got->branches[i];
    EXPECT_EQ(b.branch_id, ids[i]) << i;
    EXPECT_EQ(b.op, i % 2 == 0 ? BranchOp::kConfirm : BranchOp::kCancel) << i;
    EXPECT_EQ(b.target, targets[i]) << i;
    EXPECT_EQ(b.payload, std::string("p\0", 2) + ids[i]) << i;
    EXPECT_EQ(b.status, BranchStatus::kPrepared) << i;
  }
  EXPECT_EQ(got->update_time, kT0 + absl::Seconds(1));
}

TEST_P(StoreConformanceTest, AnXaBranchRegistersItsCommitAndRollbackOnlyInAnXa) {
  Transaction xa = PreparedTcc("xa");
  xa.trans_type = TransType::kXa;
  ASSERT_TRUE(store_->WriteSync(CreateOp{xa}).status.ok());
  ASSERT_TRUE(store_->WriteSync(CreateOp{PreparedTcc("tcc")}).status.ok());
  RegisterOp op = Reg("xa", "01", "h:1/s.S/Xa", "h:1/s.S/Xa");
  op.trans_type = TransType::kXa;
  ASSERT_TRUE(store_->WriteSync(op).status.ok());
  ASSERT_TRUE(store_->WriteSync(op).status.ok());  // a repeat: nothing added
  auto got = store_->Get("xa");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->branches.size(), 2u);
  EXPECT_EQ(got->branches[0].op, BranchOp::kCommit);
  EXPECT_EQ(got->branches[1].op, BranchOp::kRollback);
  EXPECT_EQ(got->branches[1].target, "h:1/s.S/Xa");

  // Each type's branches go only into a transaction of that type.
  op.gid = "tcc";
  WriteResult into_tcc = store_->WriteSync(op);
  EXPECT_EQ(into_tcc.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(into_tcc.status.message()), ::testing::HasSubstr("is a tcc"));
  EXPECT_EQ(store_->WriteSync(Reg("xa", "02", "h:1/s.S/C", "h:1/s.S/X")).status.code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(store_->Get("tcc")->branches.empty());
  EXPECT_EQ(store_->Get("xa")->branches.size(), 2u);
}

TEST_P(StoreConformanceTest, RegisterIsRefusedOutsideAPreparedTcc) {
  EXPECT_EQ(store_->WriteSync(Reg("none", "01", "", "")).status.code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("saga", kT0)}).status.ok());
  EXPECT_EQ(store_->WriteSync(Reg("saga", "01", "", "")).status.code(),
            absl::StatusCode::kAlreadyExists);
  Transaction msg = MakeTxn("msg", kT0, GlobalStatus::kPrepared);
  msg.trans_type = TransType::kMsg;
  ASSERT_TRUE(store_->WriteSync(CreateOp{msg}).status.ok());
  EXPECT_EQ(store_->WriteSync(Reg("msg", "01", "", "")).status.code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->WriteSync(CreateOp{PreparedTcc("tcc")}).status.ok());
  UpdateOp submit;
  submit.gid = "tcc";
  submit.expected_status = GlobalStatus::kPrepared;
  submit.new_status = GlobalStatus::kSubmitted;
  ASSERT_TRUE(store_->WriteSync(submit).status.ok());
  WriteResult late = store_->WriteSync(Reg("tcc", "01", "", ""));
  EXPECT_EQ(late.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.status.message()), ::testing::HasSubstr("SUBMITTED"));
  EXPECT_TRUE(store_->Get("tcc")->branches.empty());
}

TEST_P(StoreConformanceTest, RegistrationsStopAtTheTransactionsBounds) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{PreparedTcc("tcc")}).status.ok());
  auto bounded = [](const std::string& id, int64_t max_regs, int64_t max_bytes) {
    RegisterOp op = Reg("tcc", id, "h:1/s.S/C", "h:1/s.S/X");  // 9 + 9 + 2 * (2 + 2) bytes
    op.max_registrations = max_regs;
    op.max_transaction_bytes = max_bytes;
    return op;
  };
  ASSERT_TRUE(store_->WriteSync(bounded("01", 2, 0)).status.ok());
  ASSERT_TRUE(store_->WriteSync(bounded("02", 2, 0)).status.ok());
  WriteResult third = store_->WriteSync(bounded("03", 2, 0));
  EXPECT_EQ(third.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status.message()),
              ::testing::HasSubstr("already has 2 branches registered, the limit (--max_steps) "
                                   "is 2"));
  // A repeat of a registered id is still the idempotent answer, even at the bound.
  EXPECT_TRUE(store_->WriteSync(bounded("02", 2, 0)).status.ok());
  // Two registrations hold 2 * 26 = 52 bytes; one more needs 78.
  WriteResult big = store_->WriteSync(bounded("04", 0, 77));
  EXPECT_EQ(big.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(big.status.message()),
              ::testing::HasSubstr("holds 52 bytes of targets and payloads; branch_id '04' would "
                                   "add 26, over the limit of 77 (--max_transaction_bytes)"));
  EXPECT_TRUE(store_->WriteSync(bounded("04", 0, 78)).status.ok());
  EXPECT_EQ(store_->Get("tcc")->branches.size(), 6u);
}

TEST_P(StoreConformanceTest, RegistrationsRacingACommitEitherLandBeforeItOrAreRefused) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{PreparedTcc("race")}).status.ok());
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        WriteResult r = store_->WriteSync(
            Reg("race", absl::StrCat(i, "-", j), absl::StrCat("h:1/s.S/C", i), ""));
        if (r.status.ok()) {
          accepted++;
        } else {
          EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition) << r.status;
        }
      }
    });
  }
  UpdateOp submit;
  submit.gid = "race";
  submit.expected_status = GlobalStatus::kPrepared;
  submit.new_status = GlobalStatus::kSubmitted;
  ASSERT_TRUE(store_->WriteSync(submit).status.ok());
  // What the committer reads right after its commit is what it will confirm or cancel.
  auto at_commit = store_->Get("race");
  ASSERT_TRUE(at_commit.ok());
  for (auto& t : threads) t.join();
  auto got = store_->Get("race");
  ASSERT_TRUE(got.ok());
  // Every accepted registration is stored, with two rows each, and none landed after the
  // commit (where the committer would never see it).
  EXPECT_EQ(got->branches.size(), static_cast<size_t>(2 * accepted.load()));
  EXPECT_EQ(got->branches.size(), at_commit->branches.size());
}

TEST_P(StoreConformanceTest, UpdateCanHandTheTransactionToANewOwner) {
  Transaction t = PreparedTcc("hand");
  t.owner = "old";
  t.lease_expire = kT0 + absl::Seconds(5);
  ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  UpdateOp op;
  op.gid = "hand";
  op.expected_status = GlobalStatus::kPrepared;
  op.new_status = GlobalStatus::kSubmitted;
  op.reassign = true;
  op.new_owner = "new";
  op.new_lease_expire = kT0 + absl::Seconds(9);
  ASSERT_TRUE(store_->WriteSync(op).status.ok());
  auto got = store_->Get("hand");
  EXPECT_EQ(got->owner, "new");
  EXPECT_EQ(got->lease_expire, kT0 + absl::Seconds(9));
  // Without `reassign` the owner stays.
  UpdateOp keep;
  keep.gid = "hand";
  keep.expected_status = GlobalStatus::kSubmitted;
  keep.new_status = GlobalStatus::kSubmitted;
  keep.owner = "new";
  ASSERT_TRUE(store_->WriteSync(keep).status.ok());
  EXPECT_EQ(store_->Get("hand")->owner, "new");
}

TEST_P(StoreConformanceTest, PurgeDeletesOnlyOldFinishedTransactions) {
  Transaction old_done = MakeTxn("old", kT0, GlobalStatus::kSucceeded);
  old_done.finish_time = kT0;
  Transaction new_done = MakeTxn("new", kT0, GlobalStatus::kFailed);
  new_done.finish_time = kT0 + absl::Hours(2);
  Transaction running = MakeTxn("run", kT0);
  for (const auto& t : {old_done, new_done, running}) {
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  PurgeOp purge;
  purge.finished_before = kT0 + absl::Hours(1);
  WriteResult r = store_->WriteSync(purge);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.purged, 1);
  EXPECT_EQ(store_->Get("old").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Get("new").ok());
  EXPECT_TRUE(store_->Get("run").ok());
  // The gid is free again after a purge.
  EXPECT_TRUE(store_->WriteSync(CreateOp{old_done}).status.ok());
}

TEST_P(StoreConformanceTest, ListFiltersAndPagesNewestFirst) {
  for (int i = 0; i < 7; ++i) {
    Transaction t = MakeTxn(absl::StrCat("l-", i), kT0 + absl::Seconds(i),
                            i % 2 ? GlobalStatus::kFailed : GlobalStatus::kSucceeded);
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("other", kT0)}).status.ok());
  // Same create_time: the gid breaks the tie, still without duplicates across pages.
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("l-3b", kT0 + absl::Seconds(3))}).status.ok());
  ListQuery q;
  q.gid_prefix = "l-";
  q.page_size = 3;
  std::vector<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    auto page = store_->List(q);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& t : page->transactions) seen.push_back(t.gid);
    if (page->next_page_token.empty()) break;
    q.page_token = page->next_page_token;
  }
  EXPECT_THAT(seen, ElementsAre("l-6", "l-5", "l-4", "l-3b", "l-3", "l-2", "l-1", "l-0"));
  ListQuery f;
  f.status = GlobalStatus::kFailed;
  f.created_after = kT0 + absl::Seconds(1);
  f.created_before = kT0 + absl::Seconds(6);
  auto page = store_->List(f);
  ASSERT_TRUE(page.ok());
  std::vector<std::string> failed;
  for (const auto& t : page->transactions) failed.push_back(t.gid);
  EXPECT_THAT(failed, ElementsAre("l-5", "l-3"));
  ListQuery bad;
  bad.page_token = "!!";
  EXPECT_EQ(store_->List(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, KeepsTheCreatorAndListsOneCreatorsTransactions) {
  const char* creators[] = {"alice", "bob", "alice", ""};
  for (int i = 0; i < 4; ++i) {
    Transaction t = MakeTxn(absl::StrCat("c-", i), kT0 + absl::Seconds(i));
    t.creator = creators[i];
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  auto got = store_->Get("c-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->creator, "bob");
  ListQuery q;
  q.gid_prefix = "c-";
  q.creator = "alice";
  auto page = store_->List(q);
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> seen;
  for (const auto& t : page->transactions) {
    seen.push_back(t.gid);
    EXPECT_EQ(t.creator, "alice");
  }
  EXPECT_THAT(seen, ElementsAre("c-2", "c-0"));
}

TEST_P(StoreConformanceTest, ListPagesEndEarlyPastTheirByteBound) {
  // Five transactions of roughly 64 + 6 + 1000 bytes each (headers), pages of at most 2500.
  for (int i = 0; i < 5; ++i) {
    Transaction t = MakeTxn(absl::StrCat("b-", i), kT0 + absl::Seconds(i));
    t.options.branch_headers["h"] = std::string(1000, 'x');
    ASSERT_TRUE(store_->WriteSync(CreateOp{t}).status.ok());
  }
  ListQuery q;
  q.gid_prefix = "b-";
  q.page_size = 100;
  q.max_bytes = 2500;
  std::vector<size_t> sizes;
  std::vector<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    auto page = store_->List(q);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->transactions.size());
    for (const auto& t : page->transactions) seen.push_back(t.gid);
    if (page->next_page_token.empty()) break;
    q.page_token = page->next_page_token;
  }
  EXPECT_THAT(sizes, ElementsAre(2, 2, 1));
  EXPECT_THAT(seen, ElementsAre("b-4", "b-3", "b-2", "b-1", "b-0"));
  // A bound below one transaction still returns one per page: paging always progresses.
  q.page_token.clear();
  q.max_bytes = 10;
  auto one = store_->List(q);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->transactions.size(), 1u);
  EXPECT_FALSE(one->next_page_token.empty());
}

TEST_P(StoreConformanceTest, ConcurrentWritersAreGroupCommittedWithoutLoss) {
  constexpr int kThreads = 8, kPerThread = 100;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = store_->WriteSync(CreateOp{MakeTxn(absl::StrCat("c-", th, "-", i), kT0)});
        if (r.status.ok()) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  for (int th = 0; th < kThreads; ++th) {
    EXPECT_TRUE(store_->Get(absl::StrCat("c-", th, "-", kPerThread - 1)).ok());
  }
}

TEST_P(StoreConformanceTest, CloseFlushesQueuedWrites) {
  std::atomic<int> done{0};
  for (int i = 0; i < 50; ++i) {
    store_->Write(CreateOp{MakeTxn(absl::StrCat("f-", i), kT0)}, [&](const WriteResult& r) {
      if (r.status.ok()) done++;
    });
  }
  store_->Close();
  EXPECT_EQ(done.load(), 50);
  EXPECT_EQ(store_->WriteSync(CreateOp{MakeTxn("late", kT0)}).status.code(),
            absl::StatusCode::kUnavailable);
}

// The engine retries a write that failed. If an op the database refuses failed the whole
// batch it was committed with, it would fail its neighbours again at every retry, forever:
// only that op may fail, and the others still commit together, in one transaction.
TEST_P(StoreConformanceTest, ABranchWrittenTwiceInOneBatchKeepsItsLastValues) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("twice", kT0)}).status.ok());
  auto result = [](int attempts, const std::string& error) {
    Branch b;
    b.status = BranchStatus::kPrepared;
    b.attempts = attempts;
    b.last_error = error;
    return b;
  };
  UpdateOp first;
  first.gid = "twice";
  first.expected_status = first.new_status = GlobalStatus::kSubmitted;
  first.branches = {{0, result(1, "one")}, {1, result(1, "other")}};
  UpdateOp second = first;
  second.new_status = GlobalStatus::kAborting;
  second.branches = {{0, result(2, "two")}};
  std::vector<WriteResult> r = WriteOneBatch({first, second});
  EXPECT_TRUE(r[0].status.ok()) << r[0].status;
  EXPECT_TRUE(r[1].status.ok()) << r[1].status;
  Transaction t = *store_->Get("twice");
  EXPECT_EQ(t.status, GlobalStatus::kAborting);
  EXPECT_EQ(t.branches[0].attempts, 2);
  EXPECT_EQ(t.branches[0].last_error, "two");
  EXPECT_EQ(t.branches[1].last_error, "other");
  EXPECT_EQ(t.branches[1].target, "h:1/s.S/A0");  // a result leaves the rest of the row alone
}

TEST_P(StoreConformanceTest, AnOpTheDatabaseRefusesFailsAloneNotItsBatch) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("old", kT0)}).status.ok());
  GetParam().refuse_bad_rows(where_);
  Transaction bad_branch = MakeTxn("bad-branch-target", kT0);  // refused with its branch rows
  bad_branch.gid = "good-but-bad-target";
  bad_branch.branches[2].target = "bad:1/s.S/A";
  UpdateOp abort_old;
  abort_old.gid = "old";
  abort_old.expected_status = GlobalStatus::kSubmitted;
  abort_old.new_status = GlobalStatus::kAborting;
  abort_old.rollback_reason = "why not";
  Transaction dup = MakeTxn("old", kT0);

  std::vector<WriteResult> r = WriteOneBatch({
      CreateOp{MakeTxn("good-1", kT0)},
      CreateOp{MakeTxn("bad-gid", kT0)},
      abort_old,
      CreateOp{bad_branch},
      TouchOp{"old", kT0},
      CreateOp{MakeTxn("good-2", kT0)},
      CreateOp{dup},
  });
  EXPECT_TRUE(r[0].status.ok()) << r[0].status;
  EXPECT_EQ(r[1].status.code(), absl::StatusCode::kInternal) << r[1].status;
  EXPECT_THAT(std::string(r[1].status.message()), ::testing::HasSubstr("refuse_bad_gid"));
  EXPECT_TRUE(r[2].status.ok()) << r[2].status;
  EXPECT_EQ(r[3].status.code(), absl::StatusCode::kInternal) << r[3].status;
  EXPECT_THAT(std::string(r[3].status.message()), ::testing::HasSubstr("refuse_bad_target"));
  EXPECT_TRUE(r[4].status.ok()) << r[4].status;
  EXPECT_TRUE(r[5].status.ok()) << r[5].status;
  // A per-op outcome is not an error: it is still reported, and sees the batch's earlier ops.
  EXPECT_EQ(r[6].status.code(), absl::StatusCode::kAlreadyExists) << r[6].status;
  ASSERT_TRUE(r[6].existing.has_value());
  EXPECT_EQ(r[6].existing->status, GlobalStatus::kAborting);

  EXPECT_TRUE(store_->Get("good-1").ok());
  EXPECT_TRUE(store_->Get("good-2").ok());
  EXPECT_EQ(store_->Get("bad-gid").status().code(), absl::StatusCode::kNotFound);
  // Nothing of a refused op stays, not even the rows it wrote before the refusal.
  EXPECT_EQ(store_->Get("good-but-bad-target").status().code(), absl::StatusCode::kNotFound);
  auto old = store_->Get("old");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->status, GlobalStatus::kAborting);
  EXPECT_EQ(old->next_retry_time, kT0);
  // Group commit still: the batch's good ops are one transaction.
  int transactions = GetParam().transactions_of(where_, {"good-1", "good-2", "old"});
  if (transactions >= 0) {
    EXPECT_EQ(transactions, 1);
  }

  // The store carries on, and the bad op alone keeps failing when it comes back.
  EXPECT_EQ(store_->WriteSync(CreateOp{MakeTxn("bad-gid", kT0)}).status.code(),
            absl::StatusCode::kInternal);
  EXPECT_TRUE(store_->WriteSync(CreateOp{MakeTxn("good-3", kT0)}).status.ok());
}

// A batch of new transactions and branch results only, whose answers no outcome waits for
// (the PostgreSQL store sends the branch rows with the COMMIT): one refused branch row still
// fails its own create alone, and the others commit together. The refused transaction has a
// single branch row, so that blaming the statement before or after it names another op.
TEST_P(StoreConformanceTest, ABranchRowRefusedInABatchOfOnlyNewWritesFailsOnlyItsCreate) {
  ASSERT_TRUE(store_->WriteSync(CreateOp{MakeTxn("old", kT0)}).status.ok());
  GetParam().refuse_bad_rows(where_);
  Transaction bad = MakeTxn("bad-target", kT0);
  bad.gid = "good-but-bad-target";
  bad.branches.resize(1);
  bad.branches[0].target = "bad:1/s.S/A";
  UpdateOp result;  // the first branch's result, as a saga writes it
  result.gid = "old";
  result.expected_status = GlobalStatus::kSubmitted;
  result.new_status = GlobalStatus::kSubmitted;
  Branch b = MakeTxn("old", kT0).branches[0];
  b.status = BranchStatus::kSucceeded;
  b.attempts = 1;
  result.branches.emplace_back(0, b);

  std::vector<WriteResult> r = WriteOneBatch({
      CreateOp{MakeTxn("new-1", kT0)},
      CreateOp{bad},
      result,
      CreateOp{MakeTxn("new-2", kT0)},
  });
  EXPECT_TRUE(r[0].status.ok()) << r[0].status;
  EXPECT_EQ(r[1].status.code(), absl::StatusCode::kInternal) << r[1].status;
  EXPECT_THAT(std::string(r[1].status.message()), ::testing::HasSubstr("refuse_bad_target"));
  EXPECT_TRUE(r[2].status.ok()) << r[2].status;
  EXPECT_TRUE(r[3].status.ok()) << r[3].status;
  auto new1 = store_->Get("new-1");
  ASSERT_TRUE(new1.ok()) << new1.status();
  EXPECT_EQ(new1->branches.size(), 4u);
  EXPECT_TRUE(store_->Get("new-2").ok());
  EXPECT_EQ(store_->Get("good-but-bad-target").status().code(), absl::StatusCode::kNotFound);
  auto old = store_->Get("old");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->branches[0].status, BranchStatus::kSucceeded);
  EXPECT_EQ(old->branches[0].attempts, 1);
  int transactions = GetParam().transactions_of(where_, {"new-1", "new-2", "old"});
  if (transactions >= 0) {
    EXPECT_EQ(transactions, 1);
  }
}

// Many refused ops in one batch (more than a store re-runs a batch for): each fails alone.
TEST_P(StoreConformanceTest, ManyRefusedOpsInOneBatchEachFailAlone) {
  GetParam().refuse_bad_rows(where_);
  std::vector<WriteOp> ops;
  for (int i = 0; i < 20; ++i) {
    ops.push_back(CreateOp{MakeTxn(absl::StrCat(i % 2 ? "bad-" : "good-", i), kT0)});
  }
  std::vector<WriteResult> r = WriteOneBatch(std::move(ops));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(r[i].status.code(), i % 2 ? absl::StatusCode::kInternal : absl::StatusCode::kOk)
        << i << ": " << r[i].status;
    EXPECT_EQ(store_->Get(absl::StrCat(i % 2 ? "bad-" : "good-", i)).ok(), i % 2 == 0) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreConformanceTest,
    ::testing::Values(StoreFactory{"sqlite", MakeSQLite, SQLiteRefuseBadRows,
                                   [](const std::string&, const std::vector<std::string>&) {
                                     return -1;
                                   }},
                      StoreFactory{"postgres", MakePostgres, PgRefuseBadRows, PgTransactionsOf}),
    [](const auto& info) { return info.param.name; });

// The connection drops after COMMIT went out and before its answer came back: the store must
// not guess. It reconnects, reads whether that batch committed (its commit marker), and
// reports what really happened, which a read then confirms.
TEST(PgStoreTest, ACommitWhoseAnswerIsLostIsResolvedByAskingTheDatabase) {
  const char* conninfo = std::getenv("DTM_TEST_PG");
  ASSERT_NE(conninfo, nullptr) << "run through ctest, which starts PostgreSQL";
  std::atomic<int> cuts{0};
  PgStoreOptions o;
  o.schema = absl::StrCat("unknown_commit_", getpid());
  o.after_commit_sent_for_test = [&](PGconn* c) {
    if (cuts.load() == 0) {
      cuts++;
      shutdown(PQsocket(c), SHUT_RDWR);  // COMMIT is on its way; its answer will never arrive
    }
  };
  auto s = PgStore::Open(conninfo, o);
  ASSERT_TRUE(s.ok()) << s.status();
  // The cut can come too late: PostgreSQL's answer may already sit in the socket's receive
  // buffer (a busy machine delays this thread between sending COMMIT and the hook), and is
  // then read despite it. Such a round proves nothing: the next write notices the cut
  // connection and reconnects, and the test cuts again.
  WriteResult r;
  std::string gid;
  for (int round = 0; round < 10 && (*s)->unknown_commits_resolved() == 0; ++round) {
    cuts = 0;
    gid = absl::StrCat("cut-", round);
    r = (*s)->WriteSync(CreateOp{MakeTxn(gid, kT0)});
    EXPECT_EQ(cuts.load(), 1);
    if ((*s)->unknown_commits_resolved() == 0) {
      cuts = 1;  // no cut in this write
      (*s)->WriteSync(CreateOp{MakeTxn(absl::StrCat("reconnect-", round), kT0)});
    }
  }
  cuts = 1;
  EXPECT_EQ((*s)->unknown_commits_resolved(), 1);  // the path under test was taken
  auto stored = (*s)->Get(gid);
  if (r.status.ok()) {
    ASSERT_TRUE(stored.ok()) << stored.status();  // reported durable: it is
    EXPECT_EQ(stored->branches.size(), 4u);
  } else {
    EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
    EXPECT_EQ(stored.status().code(), absl::StatusCode::kNotFound);  // reported lost: it is
  }
  // Either way the store carries on.
  EXPECT_TRUE((*s)->WriteSync(CreateOp{MakeTxn("after", kT0)}).status.ok());
  (*s)->Close();
}

// A COMMIT whose answer is lost: PostgreSQL rolls it back at commit time ("doomed": a deferred
// trigger the test adds raises there), or it is still running when the store asks ("slow": the
// trigger sleeps 4 s; "slowbranch": a trigger on the branch rows, which go out with the COMMIT,
// sleeps 4 s before it). The store must report what happened: UNAVAILABLE with nothing stored
// for the first (the batch's commit marker is not there); for the others, it waits for the
// session (which holds the marker's row lock) instead of ending it, which could make a commit
// already in the WAL visible before a standby has it, or reading the marker before the session
// wrote it, and reports it committed. Asking about the transaction id would not do after a
// failover, where ids are handed out again.
class PgLostCommitTest : public ::testing::TestWithParam<const char*> {};

TEST_P(PgLostCommitTest, IsReportedAsItHappened) {
  const char* conninfo = std::getenv("DTM_TEST_PG");
  ASSERT_NE(conninfo, nullptr) << "run through ctest, which starts PostgreSQL";
  const std::string kind = GetParam();  // "doomed": rolled back; the others: still running
  std::atomic<int> cuts{1};
  PgStoreOptions o;
  o.schema = absl::StrCat("lost_commit_", kind, "_", getpid());
  o.after_commit_sent_for_test = [&](PGconn* c) {
    if (cuts.load() == 0) {
      cuts++;
      shutdown(PQsocket(c), SHUT_RDWR);
    }
  };
  auto s = PgStore::Open(conninfo, o);
  ASSERT_TRUE(s.ok()) << s.status();
  {
    PGconn* admin = PQconnectdb(conninfo);
    ASSERT_EQ(PQstatus(admin), CONNECTION_OK);
    const std::string sql =
        absl::StrCat(R"sql(
      CREATE FUNCTION )sql",
                     o.schema, R"sql(.doom() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.gid LIKE 'slow-%' THEN PERFORM pg_sleep(4); END IF;
        IF NEW.gid LIKE 'doomed-%' THEN RAISE EXCEPTION 'doomed at commit'; END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER doom AFTER INSERT ON )sql",
                     o.schema, R"sql(.trans_global
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION )sql",
                     o.schema, R"sql(.doom();
      CREATE FUNCTION )sql",
                     o.schema, R"sql(.slow_branch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.gid LIKE 'slowbranch-%' AND NEW.idx = 0 THEN PERFORM pg_sleep(4); END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER slow_branch BEFORE INSERT ON )sql",
                     o.schema, R"sql(.trans_branch
        FOR EACH ROW EXECUTE FUNCTION )sql",
                     o.schema, R"sql(.slow_branch();
    )sql");
    PGresult* r = PQexec(admin, sql.c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(admin);
  }
  ASSERT_TRUE((*s)->WriteSync(CreateOp{MakeTxn("before", kT0)}).status.ok());
  // A doomed COMMIT may answer before the cut (see above): such a round proves nothing.
  WriteResult r;
  std::string gid;
  const absl::Time start = absl::Now();
  for (int round = 0; round < 10 && (*s)->unknown_commits_resolved() == 0; ++round) {
    cuts = 0;
    gid = absl::StrCat(kind, "-", round);
    r = (*s)->WriteSync(CreateOp{MakeTxn(gid, kT0)});
  }
  cuts = 1;
  EXPECT_EQ((*s)->unknown_commits_resolved(), 1);  // the path under test was taken
  if (kind == "doomed") {
    EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
    EXPECT_EQ((*s)->Get(gid).status().code(), absl::StatusCode::kNotFound);
  } else {
    // Waited for: the trigger's 4 s, and then the COMMIT's real outcome.
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_GE(absl::Now() - start, absl::Seconds(3));
    EXPECT_TRUE((*s)->Get(gid).ok());
  }
  // The store carries on, and what it acknowledged before is there.
  EXPECT_TRUE((*s)->WriteSync(CreateOp{MakeTxn("after", kT0)}).status.ok());
  EXPECT_TRUE((*s)->Get("before").ok());
  EXPECT_TRUE((*s)->Get("after").ok());
  (*s)->Close();
}

INSTANTIATE_TEST_SUITE_P(PgStoreTest, PgLostCommitTest,
                         ::testing::Values("doomed", "slow", "slowbranch"),
                         [](const auto& info) { return std::string(info.param); });

// A realistic refusal without any help: PostgreSQL text must be valid UTF-8 (SQLSTATE 22021),
// and a branch's error message, which comes from the branch service, may not be. That write
// fails alone; the writes batched with it commit.
TEST(PgStoreTest, AValuePostgresCannotStoreFailsOnlyItsOwnWrite) {
  const char* conninfo = std::getenv("DTM_TEST_PG");
  ASSERT_NE(conninfo, nullptr) << "run through ctest, which starts PostgreSQL";
  PgStoreOptions o;
  o.schema = absl::StrCat("refused_", getpid());
  auto s = PgStore::Open(conninfo, o);
  ASSERT_TRUE(s.ok()) << s.status();
  Store& store = **s;
  ASSERT_TRUE(store.WriteSync(CreateOp{MakeTxn("t", kT0)}).status.ok());
  UpdateOp bad_text;
  bad_text.gid = "t";
  bad_text.expected_status = GlobalStatus::kSubmitted;
  bad_text.new_status = GlobalStatus::kSubmitted;
  Branch b = MakeTxn("t", kT0).branches[0];
  b.attempts = 1;
  b.last_error = "UNKNOWN: caf\xe9";  // Latin-1, not UTF-8
  bad_text.branches.emplace_back(0, b);

  absl::Notification holding, release;  // the writer held, as in WriteOneBatch
  ClaimOp hold;
  hold.owner = "holder";
  hold.now = absl::UnixEpoch();
  store.Write(hold, [&](const WriteResult&) {
    holding.Notify();
    release.WaitForNotification();
  });
  holding.WaitForNotification();
  absl::BlockingCounter done(3);
  WriteResult before, bad, after;
  store.Write(CreateOp{MakeTxn("before", kT0)}, [&](WriteResult r) {
    before = std::move(r);
    done.DecrementCount();
  });
  store.Write(bad_text, [&](WriteResult r) {
    bad = std::move(r);
    done.DecrementCount();
  });
  store.Write(CreateOp{MakeTxn("after", kT0)}, [&](WriteResult r) {
    after = std::move(r);
    done.DecrementCount();
  });
  release.Notify();
  done.Wait();
  EXPECT_TRUE(before.status.ok()) << before.status;
  EXPECT_TRUE(after.status.ok()) << after.status;
  EXPECT_EQ(bad.status.code(), absl::StatusCode::kInternal) << bad.status;
  EXPECT_EQ(pg::SqlState(bad.status), "22021");  // character_not_in_repertoire
  EXPECT_TRUE(store.Get("before").ok());
  EXPECT_TRUE(store.Get("after").ok());
  EXPECT_EQ(store.Get("t")->branches[0].attempts, 0);
  store.Close();
}

// Now() is PostgreSQL's clock carried forward by the monotonic clock, and never the local wall
// clock, whose steps (NTP, an operator) must not move the times the store writes: with the
// monotonic clock held still, Now() stands still while real time passes; it moves exactly as
// far as the monotonic clock does; and the database's clock is read again once 10 s have
// passed on the monotonic clock.
TEST(PgStoreTest, NowIsTheDatabaseClockCarriedForwardByTheMonotonicClock) {
  const char* conninfo = std::getenv("DTM_TEST_PG");
  ASSERT_NE(conninfo, nullptr) << "run through ctest, which starts PostgreSQL";
  std::atomic<int64_t> monotonic_us{1000000};
  PgStoreOptions o;
  o.schema = absl::StrCat("clock_", getpid());
  o.monotonic_for_test = [&] { return absl::Microseconds(monotonic_us.load()); };
  auto s = PgStore::Open(conninfo, o);
  ASSERT_TRUE(s.ok()) << s.status();
  Store& store = **s;
  auto database_now = [] {
    int64_t us = 0;
    EXPECT_TRUE(absl::SimpleAtoi(
        PgSql("SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint"), &us));
    return absl::FromUnixMicros(us);
  };
  const absl::Time first = store.Now();
  EXPECT_LT(absl::AbsDuration(first - database_now()), absl::Seconds(1));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(store.Now(), first);  // the wall clock moved on, the monotonic clock did not
  monotonic_us += 5000000;
  EXPECT_EQ(store.Now(), first + absl::Seconds(5));
  // Batches and idle ticks before 10 s on the monotonic clock do not read the clock again.
  EXPECT_TRUE(store.WriteSync(CreateOp{MakeTxn("c1", kT0)}).status.ok());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(store.Now(), first + absl::Seconds(5));
  monotonic_us += 6000000;  // 11 s: the next batch (or idle tick) reads it again
  EXPECT_TRUE(store.WriteSync(CreateOp{MakeTxn("c2", kT0)}).status.ok());
  EXPECT_LT(absl::AbsDuration(store.Now() - database_now()), absl::Seconds(1));
  store.Close();
}

// A store of schema v4 (its partial indexes declared with IN lists, no trace context columns)
// is migrated in place: the indexes are rebuilt with the range predicates the queries use, the
// trace context columns are added, and the rows stay.
// The store's clock starts at the wall clock and then follows the monotonic clock: it never
// goes back, and stays with the wall clock while nobody steps it.
TEST(SQLiteStoreTest, NowStartsAtTheWallClockAndNeverGoesBack) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/now-", getpid(), ".db");
  std::remove(path.c_str());
  auto s = SQLiteStore::Open(path);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Time last = (*s)->Now();
  EXPECT_LT(absl::AbsDuration(last - absl::Now()), absl::Seconds(2));
  for (int i = 0; i < 1000; ++i) {
    absl::Time now = (*s)->Now();
    ASSERT_GE(now, last);
    last = now;
  }
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_GE((*s)->Now() - last, absl::Milliseconds(20));
  (*s)->Close();
}

TEST(SQLiteStoreTest, MigratesV4IndexesToRanges) {
  std::string dir = test::MakeTempDir("dtm-store");
  std::string path = dir + "/m.db";
  {
    auto s = SQLiteStore::Open(path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->WriteSync(CreateOp{MakeTxn("kept", kT0)}).status.ok());
  }
  auto exec = [&](const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  exec(
      "DROP INDEX trans_global_due; CREATE INDEX trans_global_due ON trans_global "
      "(next_retry_time) WHERE status IN (1,2,3); DROP INDEX trans_global_finished; CREATE "
      "INDEX trans_global_finished ON trans_global (finish_time) WHERE status IN (4,5); ALTER "
      "TABLE trans_global DROP COLUMN traceparent; ALTER TABLE trans_global DROP COLUMN "
      "tracestate; DELETE FROM dtm_schema_version WHERE version >= 5");
  auto s = SQLiteStore::Open(path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Get("kept")->status, GlobalStatus::kSubmitted);
  EXPECT_EQ((*s)->Get("kept")->traceparent, "");
  Transaction traced = MakeTxn("traced", kT0);
  ASSERT_TRUE((*s)->WriteSync(CreateOp{traced}).status.ok());
  EXPECT_EQ((*s)->Get("traced")->traceparent, traced.traceparent);
  (*s)->Close();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT sql FROM sqlite_master WHERE name IN "
                               "('trans_global_due', 'trans_global_finished') ORDER BY name",
                               -1, &q, nullptr),
            SQLITE_OK);
  std::vector<std::string> sql;
  while (sqlite3_step(q) == SQLITE_ROW) {
    sql.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  ASSERT_EQ(sql.size(), 2u);
  EXPECT_THAT(sql[0], ::testing::HasSubstr("status BETWEEN 1 AND 3"));
  EXPECT_THAT(sql[1], ::testing::HasSubstr("status BETWEEN 4 AND 5"));
}

TEST(SQLiteStoreTest, RefusesASchemaFromANewerVersion) {
  std::string dir = test::MakeTempDir("dtm-store");
  std::string path = dir + "/v.db";
  {
    auto s = SQLiteStore::Open(path);
    ASSERT_TRUE(s.ok());
  }
  {
    // Pretend a future dtmd migrated this file.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "INSERT INTO dtm_schema_version VALUES (99)", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = SQLiteStore::Open(path);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("99"));
}

// A store file that existed, filled, then was emptied (truncated to 0 bytes, or replaced by
// an empty database) must not start as a new store: its transactions would be gone silently.
TEST(SQLiteStoreTest, RefusesAnEmptiedFileUnlessToldToInitialise) {
  std::string dir = test::MakeTempDir("dtm-store");
  std::string path = dir + "/e.db";
  {
    auto s = SQLiteStore::Open(path);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE((*s)->WriteSync(CreateOp{MakeTxn("kept", kT0)}).status.ok());
    (*s)->Close();
  }
  ASSERT_TRUE(SQLiteStore::Open(path).ok()) << "a store file opens again";
  ASSERT_EQ(truncate(path.c_str(), 0), 0);
  auto refused = SQLiteStore::Open(path);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::AllOf(::testing::HasSubstr(path), ::testing::HasSubstr("no dtm store"),
                               ::testing::HasSubstr("--init_store")));
  auto created = SQLiteStore::Open(path, /*init=*/true);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)->Get("kept").status().code(), absl::StatusCode::kNotFound);
}

TEST(SQLiteStoreTest, RefusesADamagedFile) {
  std::string dir = test::MakeTempDir("dtm-store");
  std::string path = dir + "/d.db";
  {
    auto s = SQLiteStore::Open(path);
    ASSERT_TRUE(s.ok()) << s.status();
    for (int i = 0; i < 300; ++i) {
      Transaction t = MakeTxn(absl::StrCat("t-", i), kT0 + absl::Seconds(i));
      for (Branch& b : t.branches) b.payload = std::string(1000, static_cast<char>('a' + i % 26));
      ASSERT_TRUE((*s)->WriteSync(CreateOp{t}).status.ok());
    }
    (*s)->Close();  // the last connection checkpoints the WAL into the file
  }
  // 8 KiB of garbage over two whole pages in the middle of the file.
  FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fseek(f, 0, SEEK_END), 0);
  long size = std::ftell(f);
  ASSERT_GT(size, 200000);
  ASSERT_EQ(std::fseek(f, (size / 2) / 4096 * 4096, SEEK_SET), 0);
  std::string garbage(8192, '\xA5');
  ASSERT_EQ(std::fwrite(garbage.data(), 1, garbage.size(), f), garbage.size());
  std::fclose(f);
  auto damaged = SQLiteStore::Open(path);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
  EXPECT_THAT(std::string(damaged.status().message()),
              ::testing::AllOf(::testing::HasSubstr(path), ::testing::HasSubstr("quick_check")));
}

}  // namespace
}  // namespace dtm
