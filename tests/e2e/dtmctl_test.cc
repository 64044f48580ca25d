// dtmctl against a live dtmd: every command, tables and --json, exit codes and messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/coordinator_client.h"
#include "client/saga.h"
#include "tests/support/branch_script.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/live_dtmd_test.h"

namespace dtm {
namespace {

using test::Transient;
using test::WaitUntil;
using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs dtmctl with `args` (and `env` prepended, e.g. "DTM_ADDRESS=..."), capturing output.
Result Dtmctl(const std::string& args, const std::string& env = "") {
  std::string cmd = absl::StrCat(env, " ", test::BuildPath("bin", "dtmctl"), " ", args, " 2>&1");
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class DtmctlTest : public test::LiveDtmdTest<DtmctlTest> {
 public:
  static std::string DtmdStore(const std::string& dir) {
    return absl::StrCat("sqlite://", dir, "/dtm.db");
  }

 protected:
  std::string Ctl() const { return absl::StrCat("--dtm=", dtmd_->address()); }
  // A 1-step saga whose action keeps answering UNAVAILABLE and waits an hour between tries.
  std::string StuckSaga(const std::string& gid) {
    script_->Set(gid, "A1", {Transient()});
    Saga saga(client_, gid);
    saga.Add(branches_->Target("A1"), "").RetryInterval(absl::Hours(1));
    EXPECT_TRUE(saga.Submit().ok());
    EXPECT_TRUE(WaitUntil([&] { return branches_->NamesFor(gid).size() == 1; }));
    return gid;
  }
};

TEST_F(DtmctlTest, HealthSaysServingAndFailsOnADeadAddress) {
  Result ok = Dtmctl(absl::StrCat(Ctl(), " health"));
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("SERVING"));
  // The address from the environment, JSON out.
  Result env = Dtmctl("--json health", absl::StrCat("DTM_ADDRESS=", dtmd_->address()));
  EXPECT_EQ(env.code, 0) << env.out;
  EXPECT_THAT(env.out, HasSubstr("\"status\": \"SERVING\""));
  Result dead = Dtmctl("--dtm=127.0.0.1:1 --timeout=2s health");
  EXPECT_EQ(dead.code, 1) << dead.out;
  EXPECT_THAT(dead.out, HasSubstr("dtmctl: UNAVAILABLE"));
}

TEST_F(DtmctlTest, QueryPrintsTheTransactionAndItsBranches) {
  std::string gid = "ctl-query";
  Saga saga(client_, gid);
  saga.Add(branches_->Target("A1"), branches_->Target("C1"), "x").WaitResult(true);
  ASSERT_TRUE(saga.Submit().ok());
  Result table = Dtmctl(absl::StrCat(Ctl(), " query ", gid));
  EXPECT_EQ(table.code, 0) << table.out;
  EXPECT_THAT(table.out, HasSubstr("status:           SUCCEEDED"));
  EXPECT_THAT(table.out, HasSubstr("ACTION      SUCCEEDED  1"));
  EXPECT_THAT(table.out, HasSubstr(branches_->Target("C1")));
  Result json = Dtmctl(absl::StrCat(Ctl(), " --json query ", gid));
  EXPECT_EQ(json.code, 0) << json.out;
  EXPECT_THAT(json.out, HasSubstr("\"status\": \"SUCCEEDED\""));
  EXPECT_THAT(json.out, HasSubstr("\"trans_type\": \"SAGA\""));

  Result missing = Dtmctl(absl::StrCat(Ctl(), " query no-such-gid"));
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.out, HasSubstr("dtmctl: NOT_FOUND: transaction gid 'no-such-gid' not found"));
  Result bad = Dtmctl(absl::StrCat(Ctl(), " query 'bad gid'"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.out, HasSubstr("INVALID_ARGUMENT: gid 'bad gid'"));
  Result usage = Dtmctl(absl::StrCat(Ctl(), " query"));
  EXPECT_EQ(usage.code, 2);
  EXPECT_THAT(usage.out, HasSubstr("query needs one gid"));
  EXPECT_EQ(Dtmctl(absl::StrCat(Ctl(), " frobnicate")).code, 2);
}

TEST_F(DtmctlTest, ListFiltersAndPages) {
  for (int i = 0; i < 3; ++i) {
    Saga saga(client_, absl::StrCat("ctl-list-", i));
    saga.Add(branches_->Target("A1"), "").WaitResult(true);
    ASSERT_TRUE(saga.Submit().ok());
  }
  Result all = Dtmctl(absl::StrCat(Ctl(), " list --gid_prefix=ctl-list- --type=saga"));
  EXPECT_EQ(all.code, 0) << all.out;
  for (int i = 0; i < 3; ++i) EXPECT_THAT(all.out, HasSubstr(absl::StrCat("ctl-list-", i)));
  EXPECT_THAT(all.out, Not(HasSubstr("ctl-query")));
  Result page = Dtmctl(absl::StrCat(Ctl(), " list --gid_prefix=ctl-list- --limit=2"));
  EXPECT_EQ(page.code, 0) << page.out;
  EXPECT_THAT(page.out, HasSubstr("ctl-list-2"));  // newest first
  EXPECT_THAT(page.out, Not(HasSubstr("ctl-list-0")));
  EXPECT_THAT(page.out, HasSubstr("more: add --page_token="));
  Result followed =
      Dtmctl(absl::StrCat(Ctl(), " --json list --gid_prefix=ctl-list- --limit=2 --all"));
  EXPECT_EQ(followed.code, 0) << followed.out;
  EXPECT_THAT(followed.out, HasSubstr("ctl-list-0"));
  Result none = Dtmctl(absl::StrCat(Ctl(), " list --gid_prefix=ctl-list- --status=FAILED"));
  EXPECT_THAT(none.out, Not(HasSubstr("ctl-list-")));
  Result bad = Dtmctl(absl::StrCat(Ctl(), " list --status=DONE"));
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.out, HasSubstr("--status 'DONE'"));
  Result when = Dtmctl(absl::StrCat(Ctl(), " list --created_after=yesterday"));
  EXPECT_EQ(when.code, 2);
  EXPECT_THAT(when.out, HasSubstr("--created_after 'yesterday'"));
  Result range =
      Dtmctl(absl::StrCat(Ctl(),
                          " list --gid_prefix=ctl-list- --created_after=2000-01-01T00:00:00Z "
                          "--created_before=2001-01-01T00:00:00Z"));
  EXPECT_EQ(range.code, 0) << range.out;
  EXPECT_THAT(range.out, Not(HasSubstr("ctl-list-")));
}

TEST_F(DtmctlTest, RetryNowMakesAWaitingTransactionCallAgain) {
  std::string one = StuckSaga("ctl-retry-one");
  Result r = Dtmctl(absl::StrCat(Ctl(), " retry-now ", one));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(WaitUntil([&] { return branches_->NamesFor(one).size() == 2; }));

  std::string a = StuckSaga("ctl-retry-a");
  std::string b = StuckSaga("ctl-retry-b");
  Result bulk = Dtmctl(absl::StrCat(Ctl(), " --json retry-now --all_waiting"));
  EXPECT_EQ(bulk.code, 0) << bulk.out;
  EXPECT_THAT(bulk.out, HasSubstr("\"count\": 3"));  // the two new ones and the first again
  EXPECT_TRUE(WaitUntil(
      [&] { return branches_->NamesFor(a).size() == 2 && branches_->NamesFor(b).size() == 2; }));
  Result both = Dtmctl(absl::StrCat(Ctl(), " retry-now ", a, " --all_waiting"));
  EXPECT_EQ(both.code, 2) << both.out;
  Saga finished(client_, "ctl-retry-done");
  finished.Add(branches_->Target("A1"), "").WaitResult(true);
  ASSERT_TRUE(finished.Submit().ok());
  Result done = Dtmctl(absl::StrCat(Ctl(), " retry-now ctl-retry-done"));
  EXPECT_EQ(done.code, 1) << done.out;
  EXPECT_THAT(done.out, HasSubstr("FAILED_PRECONDITION"));
}

TEST_F(DtmctlTest, ForceStopEndsAStuckTransaction) {
  std::string gid = StuckSaga("ctl-stop");
  Result r = Dtmctl(absl::StrCat(Ctl(), " force-stop ", gid, " --reason='operator gave up'"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("status:           FAILED"));
  EXPECT_THAT(r.out, HasSubstr("operator gave up"));
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->status(), v1::FAILED);
  Result again = Dtmctl(absl::StrCat(Ctl(), " force-stop ", gid));
  EXPECT_EQ(again.code, 1);
  EXPECT_THAT(again.out, HasSubstr("FAILED_PRECONDITION"));
}

}  // namespace
}  // namespace dtm
