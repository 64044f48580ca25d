// Securing dtmd as the README describes it, against a real dtmd: bearer tokens with roles
// (--auth_tokens_file) on both faces; TLS on both listeners, client certificates, certificate
// renewal without a restart, and TLS to gRPC branches (grpcs://).
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
#include "tests/support/test_ca.h"

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
  // A tcc that stays PREPARED for the test's length.
  static v1::PrepareRequest LongTcc(const std::string& gid) {
    v1::PrepareRequest prepare;
    prepare.set_gid(gid);
    prepare.set_trans_type(v1::TCC);
    prepare.mutable_options()->mutable_timeout_to_fail()->set_seconds(3600);
    return prepare;
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

TEST_F(AuthE2ETest, ASubmitterCannotCommitAbortOrJoinAnotherClientsPreparedTcc) {
  auto alice = As(kAlice);
  auto bob = As(kBob);
  std::string gid = Gid();
  v1::PrepareRequest prepare = LongTcc(gid);
  ASSERT_TRUE(alice->Prepare(prepare).ok());
  // Each refused where the transaction is read or written, not by a look beforehand.
  absl::Status again = bob->Prepare(prepare);
  EXPECT_EQ(again.code(), absl::StatusCode::kPermissionDenied) << again;
  v1::RegisterBranchRequest reg;
  reg.set_gid(gid);
  reg.set_trans_type(v1::TCC);
  reg.set_branch_id("b1");
  reg.set_confirm(branches_->Target("Confirm"));
  reg.set_cancel(branches_->Target("Cancel"));
  absl::Status joined = bob->RegisterBranch(reg);
  EXPECT_EQ(joined.code(), absl::StatusCode::kPermissionDenied) << joined;
  EXPECT_THAT(std::string(joined.message()), HasSubstr("belongs to another client"));
  v1::SubmitRequest commit;
  commit.set_gid(gid);
  commit.set_trans_type(v1::TCC);
  EXPECT_EQ(bob->Submit(commit).status().code(), absl::StatusCode::kPermissionDenied);
  v1::AbortRequest abort;
  abort.set_gid(gid);
  abort.set_trans_type(v1::TCC);
  EXPECT_EQ(bob->Abort(abort).status().code(), absl::StatusCode::kPermissionDenied);
  // Untouched: still Alice's, PREPARED, with no branch; she carries on.
  auto t = alice->Query(gid);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status(), v1::PREPARED);
  EXPECT_EQ(t->branches_size(), 0);
  EXPECT_TRUE(alice->RegisterBranch(reg).ok());
  auto aborted = alice->Abort(abort);
  ASSERT_TRUE(aborted.ok()) << aborted.status();
}

TEST_F(AuthE2ETest, TheAdminForceStopsAnotherClientsTransaction) {
  auto alice = As(kAlice);
  auto ops = As(kOps);
  std::string gid = Gid();
  ASSERT_TRUE(alice->Prepare(LongTcc(gid)).ok());
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
  EXPECT_THAT(r.body, HasSubstr("(redacted)"));

  test::HttpClient bob;
  bob.set_header(absl::StrCat("Authorization: Bearer ", kBob));
  r = bob.Get(Url(absl::StrCat("query?gid=", gid)));
  EXPECT_EQ(r.status, 403) << r.body;
  r = bob.Get(Url("all?limit=1000"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, Not(HasSubstr(gid)));
  r = bob.Get(Url(absl::StrCat("all?gid=", gid)));
  EXPECT_EQ(r.status, 403) << r.body;
  r = bob.Post(Url("registerBranch"),
               absl::StrCat(R"({"gid":")", gid,
                            R"(","branch_id":"b1","trans_type":"tcc","confirm":"http://x/c",)",
                            R"("cancel":"http://x/k","data":""})"));
  EXPECT_EQ(r.status, 403) << r.body;
  r = bob.Post(Url("submit"), absl::StrCat(R"({"gid":")", gid,
                                           R"(","trans_type":"saga","steps":[{"action":""}]})"));
  EXPECT_EQ(r.status, 403) << r.body;
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

// A dtmd with TLS on both listeners, and the test CA's files in dir_.
class TlsE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeTempDir();
    ASSERT_TRUE(test::MakeTestCa(dir_));
    ASSERT_TRUE(test::MakeTestCa(dir_, "other-"));
  }
  std::string File(const std::string& name) const { return absl::StrCat(dir_, "/", name); }
  std::vector<std::string> TlsArgs() const {
    return {absl::StrCat("--tls_cert=", File("srv.pem")),
            absl::StrCat("--tls_key=", File("srv.key"))};
  }
  // A client of `dtmd` over TLS with these files ("" leaves one out).
  std::unique_ptr<CoordinatorClient> Client(const test::DtmdProcess& dtmd, const std::string& ca,
                                            const std::string& cert = "",
                                            const std::string& key = "") {
    ClientTls tls{File(ca), cert.empty() ? "" : File(cert), key.empty() ? "" : File(key)};
    auto c = CoordinatorClient::Connect(dtmd.address(), tls, absl::Seconds(5));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
  static absl::Status RunSaga(CoordinatorClient& c, const std::string& gid,
                              const std::string& target = "") {
    Saga saga(&c, gid);
    saga.Add(target, "").WaitResult();
    return saga.Submit().status();
  }
  std::string dir_;
};

TEST_F(TlsE2ETest, BothListenersServeTlsOnly) {
  test::DtmdProcess dtmd(test::TestStore(test::MakeTempDir()), TlsArgs());
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  auto tls = Client(dtmd, "ca.pem");
  ASSERT_NE(tls, nullptr);
  EXPECT_TRUE(RunSaga(*tls, "tls-1").ok()) << dtmd.Log();
  // A plaintext client, or one that does not trust the certificate, gets nowhere.
  for (int i = 0; i < 5; ++i) {
    auto plain = CoordinatorClient::Connect(dtmd.address(), absl::Seconds(2));
    EXPECT_EQ(plain->NewGid().status().code(), absl::StatusCode::kUnavailable);
  }
  // Each refused handshake is a gRPC error line: at most one a minute reaches the log.
  std::string log = dtmd.Log();
  int lines = 0;
  for (size_t at = log.find("Handshake failed"); at != std::string::npos;
       at = log.find("Handshake failed", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1) << log;
  auto distrusting = Client(dtmd, "other-ca.pem");
  EXPECT_EQ(distrusting->NewGid().status().code(), absl::StatusCode::kUnavailable);

  test::HttpClient https;
  https.set_tls(File("ca.pem"));
  test::HttpResult r =
      https.Get(absl::StrCat("https://", dtmd.http_address(), "/api/dtmsvr/newGid"));
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  test::HttpClient http;
  r = http.Get(absl::StrCat("http://", dtmd.http_address(), "/api/dtmsvr/newGid"),
               absl::Seconds(3));
  EXPECT_EQ(r.status, 0) << r.body;
  test::HttpClient wrong_ca;
  wrong_ca.set_tls(File("other-ca.pem"));
  r = wrong_ca.Get(absl::StrCat("https://", dtmd.http_address(), "/api/dtmsvr/newGid"));
  EXPECT_EQ(r.status, 0) << r.body;
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
}

TEST_F(TlsE2ETest, AClientCaRequiresAClientCertificateItSigned) {
  std::vector<std::string> args = TlsArgs();
  args.push_back(absl::StrCat("--tls_client_ca=", File("ca.pem")));
  args.push_back("--listener_check_interval=100ms");
  test::DtmdProcess dtmd(test::TestStore(test::MakeTempDir()), args);
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  auto with_cert = Client(dtmd, "ca.pem", "cli.pem", "cli.key");
  EXPECT_TRUE(RunSaga(*with_cert, "mtls-1").ok()) << dtmd.Log();
  auto without = Client(dtmd, "ca.pem");
  EXPECT_EQ(without->NewGid().status().code(), absl::StatusCode::kUnavailable);
  auto foreign = Client(dtmd, "ca.pem", "other-cli.pem", "other-cli.key");
  EXPECT_EQ(foreign->NewGid().status().code(), absl::StatusCode::kUnavailable);

  const std::string url = absl::StrCat("https://", dtmd.http_address(), "/api/dtmsvr/newGid");
  test::HttpClient https;
  https.set_tls(File("ca.pem"), File("cli.pem"), File("cli.key"));
  EXPECT_EQ(https.Get(url).status, 200);
  test::HttpClient anonymous;
  anonymous.set_tls(File("ca.pem"));
  EXPECT_EQ(anonymous.Get(url).status, 0);
  test::HttpClient foreign_http;
  foreign_http.set_tls(File("ca.pem"), File("other-cli.pem"), File("other-cli.key"));
  EXPECT_EQ(foreign_http.Get(url).status, 0);
  // The listener check gets its answer from the TLS stack even without a client certificate.
  EXPECT_TRUE(dtmd.running());
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
}

TEST_F(TlsE2ETest, ARenewedCertificateIsServedWithoutARestart) {
  // dtmd serves files that are replaced later, as cert-manager or a Secret volume does.
  ASSERT_EQ(std::system(absl::StrCat("cp '", File("srv.pem"), "' '", File("live.pem"), "' && cp '",
                                     File("srv.key"), "' '", File("live.key"), "'")
                            .c_str()),
            0);
  test::DtmdProcess dtmd(
      test::TestStore(test::MakeTempDir()),
      {absl::StrCat("--tls_cert=", File("live.pem")), absl::StrCat("--tls_key=", File("live.key")),
       "--tls_reload_interval=1s"});
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  EXPECT_TRUE(Client(dtmd, "ca.pem")->NewGid().ok());
  // The new pair, from the other CA, moved into place (key first, then the certificate).
  ASSERT_EQ(std::system(absl::StrCat("cd '", dir_,
                                     "' && cp other-srv.key live.key.new && mv live.key.new "
                                     "live.key && cp other-srv.pem live.pem.new && mv "
                                     "live.pem.new live.pem")
                            .c_str()),
            0);
  EXPECT_TRUE(test::WaitUntil([&] { return Client(dtmd, "other-ca.pem")->NewGid().ok(); }))
      << dtmd.Log();
  EXPECT_FALSE(Client(dtmd, "ca.pem")->NewGid().ok());
  test::HttpClient https;
  https.set_tls(File("other-ca.pem"));
  EXPECT_TRUE(test::WaitUntil([&] {
    return https.Get(absl::StrCat("https://", dtmd.http_address(), "/api/dtmsvr/newGid")).status ==
           200;
  }));
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
}

TEST_F(TlsE2ETest, BadTlsFilesStopDtmdAtStartNamingTheFlag) {
  test::DtmdProcess mismatched(test::TestStore(test::MakeTempDir()),
                               {absl::StrCat("--tls_cert=", File("srv.pem")),
                                absl::StrCat("--tls_key=", File("other-srv.key"))});
  EXPECT_FALSE(mismatched.Start().ok());
  EXPECT_THAT(mismatched.Log(), HasSubstr("key values mismatch"));
  EXPECT_THAT(mismatched.Log(), HasSubstr("is it the key of --tls_cert"));
  test::DtmdProcess missing(test::TestStore(test::MakeTempDir()),
                            {absl::StrCat("--tls_cert=", File("nothing.pem")),
                             absl::StrCat("--tls_key=", File("srv.key"))});
  EXPECT_FALSE(missing.Start().ok());
  EXPECT_THAT(missing.Log(), HasSubstr("nothing.pem' cannot be read: No such file"));
  test::DtmdProcess alone(test::TestStore(test::MakeTempDir()),
                          {absl::StrCat("--tls_cert=", File("srv.pem"))});
  EXPECT_FALSE(alone.Start().ok());
  EXPECT_THAT(alone.Log(), HasSubstr("--tls_cert and --tls_key go together"));
}

TEST_F(TlsE2ETest, GrpcsBranchesAreVerifiedAgainstTheBranchCa) {
  // The TLS gRPC service a saga calls: another dtmd, whose NewGid takes an empty request.
  test::DtmdProcess service(test::TestStore(test::MakeTempDir()), TlsArgs());
  ASSERT_TRUE(service.Start().ok()) << service.Log();
  const std::string target =
      absl::StrCat("grpcs://", service.address(), "/dtm.v1.Coordinator/NewGid");

  test::DtmdProcess trusting(test::TestStore(test::MakeTempDir()),
                             {absl::StrCat("--branch_ca_file=", File("ca.pem"))});
  ASSERT_TRUE(trusting.Start().ok()) << trusting.Log();
  auto c = CoordinatorClient::Connect(trusting.address());
  EXPECT_TRUE(RunSaga(*c, "grpcs-1", target).ok()) << trusting.Log();
  EXPECT_EQ(c->Query("grpcs-1")->status(), v1::SUCCEEDED);

  // Plaintext to a TLS port, or a CA that did not sign the branch's certificate: no call
  // gets through, and the saga waits for a retry.
  test::DtmdProcess distrusting(test::TestStore(test::MakeTempDir()),
                                {absl::StrCat("--branch_ca_file=", File("other-ca.pem"))});
  ASSERT_TRUE(distrusting.Start().ok()) << distrusting.Log();
  auto d = CoordinatorClient::Connect(distrusting.address());
  for (const std::string& t :
       {target, absl::StrCat("grpc://", service.address(), "/dtm.v1.Coordinator/NewGid")}) {
    std::string gid = absl::StrCat("refused-", t.size());
    Saga saga(d.get(), gid);
    saga.Add(t, "");
    ASSERT_TRUE(saga.Submit().ok());
    EXPECT_TRUE(test::WaitUntil([&] {
      auto q = d->Query(gid);
      return q.ok() && q->branches_size() > 0 && q->branches(0).attempts() > 0;
    })) << t;
    EXPECT_EQ(d->Query(gid)->status(), v1::SUBMITTED) << t;
  }
}

}  // namespace
}  // namespace dtm
