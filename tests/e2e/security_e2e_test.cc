// Securing dtmd as the README describes it, against a real dtmd: bearer tokens with roles
// (--auth_tokens_file) on both faces.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/saga.h"
#include "tests/support/http_client.h"
#include "tests/support/live_dtmd_test.h"

namespace dtm {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAlice[] = "alice-token-0123456789";
constexpr char kBob[] = "bob-token-0123456789abc";
constexpr char kOps[] = "ops-token-abcdefghijkl";

class AuthE2ETest : public test::LiveDtmdTest<AuthE2ETest> {
 public:
  static std::vector<std::string> DtmdArgs() {
    std::string path = absl::StrCat(test::MakeTempDir(), "/tokens");
    std::ofstream(path) << "# who may call this dtmd\n"
                        << kAlice << " alice submit\n"
                        << kBob << " bob submit\n"
                        << kOps << " ops admin\n";
    return {"--lease=1s", "--recovery_interval=100ms", absl::StrCat("--auth_tokens_file=", path)};
  }

 protected:
  static std::unique_ptr<CoordinatorClient> As(const std::string& token) {
    auto c = CoordinatorClient::Connect(dtmd_->address());
    c->set_auth_token(token);
    return c;
  }
  static std::vector<std::string> ListedGids(CoordinatorClient& c) {
    v1::ListRequest req;
    req.set_page_size(1000);
    auto page = c.List(req);
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> gids;
    if (page.ok()) {
      for (const auto& t : page->transactions()) gids.push_back(t.gid());
    }
    return gids;
  }
  std::string Url(const std::string& route) {
    return absl::StrCat("http://", dtmd_->http_address(), "/api/dtmsvr/", route);
  }
};

TEST_F(AuthE2ETest, CallsWithoutAKnownTokenAreRefusedOnBothFaces) {
  for (const std::string& token : {std::string(), std::string("not-a-known-token-at-all")}) {
    auto c = As(token);
    std::string gid = Gid();
    Saga saga(c.get(), gid);
    saga.Add("", "");
    absl::Status st = saga.Submit().status();
    EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated) << st;
    EXPECT_EQ(c->NewGid().status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(c->Query(gid).status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(As(kOps)->Query(gid).status().code(), absl::StatusCode::kNotFound);
  }
  test::HttpClient http;
  test::HttpResult r =
      http.Post(Url("submit"), R"({"gid":"http-anon","trans_type":"saga","steps":[]})");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_THAT(r.body, HasSubstr("Bearer"));
  EXPECT_EQ(http.Get(Url("newGid")).status, 401);
  // Liveness stays open for probes.
  EXPECT_EQ(http.Get(absl::StrCat("http://", dtmd_->http_address(), "/api/ping")).status, 200);
  http.set_header(absl::StrCat("Authorization: Bearer ", kAlice));
  EXPECT_EQ(http.Get(Url("newGid")).status, 200);
}

TEST_F(AuthE2ETest, SubmittersActOnlyOnTheirOwnTransactionsAndSeeHeadersRedacted) {
  auto alice = As(kAlice);
  auto bob = As(kBob);
  auto ops = As(kOps);
  std::string gid = Gid();
  Saga saga(alice.get(), gid);
  saga.Add("", "").WaitResult().BranchHeader("authorization", "Bearer downstream-secret");
  auto submitted = saga.Submit();
  ASSERT_TRUE(submitted.ok()) << submitted.status();

  // Alice sees her transaction, with its creator, without the header's value.
  auto mine = alice->Query(gid);
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(mine->creator(), "alice");
  EXPECT_EQ(mine->options().branch_headers().at("authorization"), "(redacted)");
  EXPECT_THAT(ListedGids(*alice), Contains(gid));

  // Bob cannot see it, list it, repeat it, abort it or retry it.
  EXPECT_EQ(bob->Query(gid).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(ListedGids(*bob), Not(Contains(gid)));
  Saga again(bob.get(), gid);
  again.Add("", "");
  EXPECT_EQ(again.Submit().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(bob->RetryNow(gid).code(), absl::StatusCode::kPermissionDenied);
  v1::AbortRequest abort;
  abort.set_gid(gid);
  abort.set_trans_type(v1::TCC);
  EXPECT_EQ(bob->Abort(abort).status().code(), absl::StatusCode::kPermissionDenied);

  // Operator actions need the admin role.
  absl::Status stop = alice->ForceStop(gid, "mine").status();
  EXPECT_EQ(stop.code(), absl::StatusCode::kPermissionDenied) << stop;
  EXPECT_THAT(std::string(stop.message()), HasSubstr("admin role"));
  EXPECT_EQ(alice->RetryAllWaiting().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ops->RetryAllWaiting().ok());

  // The admin sees everyone's, headers included.
  auto seen = ops->Query(gid);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->options().branch_headers().at("authorization"), "Bearer downstream-secret");
  EXPECT_THAT(ListedGids(*ops), Contains(gid));
}

TEST_F(AuthE2ETest, TheAdminForceStopsAnotherClientsTransaction) {
  auto alice = As(kAlice);
  auto ops = As(kOps);
  std::string gid = Gid();
  v1::PrepareRequest prepare;
  prepare.set_gid(gid);
  prepare.set_trans_type(v1::TCC);
  prepare.mutable_options()->mutable_timeout_to_fail()->set_seconds(3600);
  ASSERT_TRUE(alice->Prepare(prepare).ok());
  EXPECT_EQ(As(kBob)->ForceStop(gid, "not mine").status().code(),
            absl::StatusCode::kPermissionDenied);
  auto stopped = ops->ForceStop(gid, "operator");
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->status(), v1::FAILED);
}

TEST_F(AuthE2ETest, DtmsHttpApiAppliesTheSameRoles) {
  test::HttpClient alice;
  alice.set_header(absl::StrCat("Authorization: Bearer ", kAlice));
  std::string gid = Gid();
  test::HttpResult r = alice.Post(
      Url("submit"),
      absl::StrCat(R"({"gid":")", gid,
                   R"(","trans_type":"saga","wait_result":true,"steps":[{"action":""}],)",
                   R"("branch_headers":{"authorization":"Bearer downstream-secret"}})"));
  ASSERT_EQ(r.status, 200) << r.body;
  r = alice.Get(Url(absl::StrCat("query?gid=", gid)));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, Not(HasSubstr("downstream-secret")));

  test::HttpClient bob;
  bob.set_header(absl::StrCat("Authorization: Bearer ", kBob));
  r = bob.Get(Url(absl::StrCat("query?gid=", gid)));
  EXPECT_EQ(r.status, 403) << r.body;
  r = bob.Get(Url("all?limit=1000"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, Not(HasSubstr(gid)));
  r = bob.Post(Url("forceStop"), absl::StrCat(R"({"gid":")", gid, R"("})"));
  EXPECT_EQ(r.status, 403) << r.body;
  r = bob.Post(Url("abort"), absl::StrCat(R"({"gid":")", gid, R"(","trans_type":"tcc"})"));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_THAT(r.body, HasSubstr("belongs to another client"));

  test::HttpClient ops;
  ops.set_header(absl::StrCat("Authorization: Bearer ", kOps));
  r = ops.Get(Url("all?limit=1000"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr(gid));
  EXPECT_EQ(As(kAlice)->Query(gid)->creator(), "alice");
}

}  // namespace
}  // namespace dtm
