// How libpq failures become statuses, against the test run's PostgreSQL (DTM_TEST_PG): a
// statement the server refuses is INTERNAL and carries its SQLSTATE as a payload (read with
// pg::SqlState, never from the message text); a connection that cannot be made or is lost is
// UNAVAILABLE.
#include "storage/libpq/pg_conn.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/libpq/pg_exec.h"

namespace dtm {
namespace {

std::string Conninfo() {
  const char* pg = std::getenv("DTM_TEST_PG");
  return pg ? pg : "";
}

std::unique_ptr<PgConn> Connect() {
  auto c = PgConn::Connect(Conninfo(), "", absl::Seconds(5));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

TEST(PostgresErrorTest, ARefusedStatementCarriesItsSqlState) {
  ASSERT_FALSE(Conninfo().empty()) << "DTM_TEST_PG is not set: run through ctest";
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  auto r = c->Exec("SELECT 1 / 0");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  EXPECT_EQ(pg::SqlState(r.status()), "22012");  // division_by_zero
  EXPECT_FALSE(c->broken());

  // Prepared, with parameters.
  ASSERT_TRUE(c->Prepare("cast_int", "SELECT $1::int").ok());
  PgParams p;
  p.Add(std::string("not a number"));
  r = c->ExecPrepared("cast_int", p);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  EXPECT_EQ(pg::SqlState(r.status()), "22P02");  // invalid_text_representation

  // In a pipeline: the failing statement's SQLSTATE, whichever statement it was.
  ASSERT_TRUE(c->BeginPipeline().ok());
  ASSERT_TRUE(c->SendSql("SELECT 1").ok());
  ASSERT_TRUE(c->SendSql("SELECT * FROM no_such_table").ok());
  ASSERT_TRUE(c->SendSql("SELECT 2").ok());
  auto results = c->Flush();
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInternal) << results.status();
  EXPECT_EQ(pg::SqlState(results.status()), "42P01");  // undefined_table
  EXPECT_EQ(c->failed_statement(), 1);
  ASSERT_TRUE(c->EndPipeline().ok());

  // The session is fine afterwards.
  EXPECT_TRUE(c->Exec("SELECT 1").ok());

  // The one-statement helper answers UNAVAILABLE (a reason to be asked again), still with
  // the SQLSTATE.
  auto e = pg::Exec(c->raw(), "helper", "SELECT 1 / 0");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kUnavailable) << e.status();
  EXPECT_EQ(pg::SqlState(e.status()), "22012");

  EXPECT_EQ(pg::SqlState(absl::InternalError("SQLSTATE 22012")), "")
      << "the SQLSTATE is a payload, never read from the message";
}

TEST(PostgresErrorTest, NoServerIsUnavailable) {
  auto c = PgConn::Connect("host=/nonexistent-dtm-socket-dir port=1 user=postgres", "",
                           absl::Seconds(2));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_EQ(pg::SqlState(c.status()), "");
}

// The server ends the session (as at a restart or a failover), while it is idle or in the
// middle of a statement: that statement is UNAVAILABLE, not an SQL error (even though the
// server's last words carry SQLSTATE 57P01), and the connection knows it is broken.
TEST(PostgresErrorTest, ASessionTheServerEndedIsUnavailable) {
  ASSERT_FALSE(Conninfo().empty()) << "DTM_TEST_PG is not set: run through ctest";
  for (bool busy : {false, true}) {
    for (bool pipeline : {false, true}) {
      SCOPED_TRACE(absl::StrCat(busy ? "busy" : "idle", pipeline ? ", pipeline" : ""));
      auto victim = Connect();
      auto killer = Connect();
      ASSERT_NE(victim, nullptr);
      ASSERT_NE(killer, nullptr);
      PgParams pid;
      pid.Add(static_cast<int64_t>(victim->backend_pid()));
      auto terminate = [&] {
        if (busy) {  // wait until the victim's statement runs
          for (int i = 0; i < 500; ++i) {
            auto r = killer->Exec(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1::int AND state = 'active'", pid);
            if (r.ok() && PQntuples(r->get()) == 1) break;
            absl::SleepFor(absl::Milliseconds(10));
          }
        }
        auto killed = killer->Exec("SELECT pg_terminate_backend($1::int, 5000)", pid);
        EXPECT_TRUE(killed.ok()) << killed.status();
      };
      std::thread t;
      if (busy) {
        t = std::thread(terminate);
      } else {
        terminate();
      }
      const std::string sql = busy ? "SELECT pg_sleep(10)" : "SELECT 1";
      absl::Status st;
      if (pipeline) {
        ASSERT_TRUE(victim->BeginPipeline().ok());
        st = victim->SendSql(sql);
        if (st.ok()) st = victim->Flush().status();
      } else {
        st = victim->Exec(sql).status();
      }
      if (t.joinable()) t.join();
      EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
      EXPECT_TRUE(victim->broken());
    }
  }
}

}  // namespace
}  // namespace dtm
