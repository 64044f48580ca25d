// HttpBranchCaller against a real HTTP server (dtmd's own HttpServer playing the branch
// service): what goes on the wire, what each answer means, keep-alive, limits.
#include "server/branch/http/http_branch_caller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/http/http_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/test_ca.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;

// Polls `cond` until it holds; false after 20 s.
bool WaitFor(const std::function<bool()>& cond) {
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return cond();
}

class HttpBranchCallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Handle("POST", "/busi", [this](const HttpRequest& req, const HttpResponder& respond) {
      Record(req);
      respond(Reply(req));
    });
    router_.Handle("GET", "/busi", [this](const HttpRequest& req, const HttpResponder& respond) {
      Record(req);
      respond(Reply(req));
    });
    router_.Handle("POST", "/hang", [this](const HttpRequest& req, HttpResponder respond) {
      absl::MutexLock lock(&mu_);
      hanging_.push_back(std::move(respond));
    });
    HttpServerOptions o;
    o.listen = "127.0.0.1:0";
    auto s = HttpServer::Start(o, &router_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  void TearDown() override {
    caller_.Shutdown();
    {
      absl::MutexLock lock(&mu_);
      for (auto& r : hanging_) r(HttpResponse{});
    }
    server_->Shutdown(absl::Seconds(1));
  }

  // The test's answer: ?status= and ?body= of the call's URL.
  HttpResponse Reply(const HttpRequest& req) {
    HttpResponse r;
    if (!req.Param("status").empty()) r.status = std::stoi(req.Param("status"));
    r.body = req.Param("body");
    if (req.Param("big") == "1") r.body = std::string(8 << 20, 'x');
    return r;
  }
  void Record(const HttpRequest& req) {
    absl::MutexLock lock(&mu_);
    seen_.push_back(req);
  }
  std::vector<HttpRequest> Seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

  std::string Url(const std::string& path_and_query) {
    return absl::StrCat("http://127.0.0.1:", server_->port(), path_and_query);
  }
  BranchCall Call(const std::string& target, const std::string& payload = "{\"amount\":30}") {
    BranchCall c;
    c.target = target;
    c.payload = payload;
    c.gid = "g 1";
    c.trans_type = "saga";
    c.branch_id = "01";
    c.op = "action";
    c.dtm = "dtmd:36789";
    c.headers = {{"authorization", "Bearer t"}};
    c.timeout = absl::Seconds(5);
    return c;
  }
  BranchResult CallSync(BranchCall call) {
    absl::Notification n;
    BranchResult out;
    caller_.Call(std::move(call), [&](BranchResult r) {
      out = std::move(r);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }

  HttpRouter router_;
  std::unique_ptr<HttpServer> server_;
  HttpBranchCaller caller_;
  absl::Mutex mu_;
  std::vector<HttpRequest> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpResponder> hanging_ ABSL_GUARDED_BY(mu_);
};

TEST_F(HttpBranchCallerTest, PostsThePayloadWithDtmsParametersAndTheBranchHeaders) {
  BranchResult r = CallSync(Call(Url("/busi?keep=me")));
  EXPECT_EQ(r.outcome, CallOutcome::kSuccess) << r.message;
  std::vector<HttpRequest> seen = Seen();
  ASSERT_EQ(seen.size(), 1u);
  const HttpRequest& req = seen[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.body, "{\"amount\":30}");
  EXPECT_EQ(req.Param("keep"), "me");  // the URL's own query is kept
  EXPECT_EQ(req.Param("gid"), "g 1");
  EXPECT_EQ(req.Param("trans_type"), "saga");
  EXPECT_EQ(req.Param("branch_id"), "01");
  EXPECT_EQ(req.Param("op"), "action");
  EXPECT_EQ(req.Param("dtm"), "dtmd:36789");
  EXPECT_EQ(req.headers.at("content-type"), "application/json");
  EXPECT_EQ(req.headers.at("authorization"), "Bearer t");
}

TEST_F(HttpBranchCallerTest, AnEmptyPayloadIsAGetAsDtmSendsIt) {
  BranchCall c = Call(Url("/busi"), "");
  c.branch_id = "00";
  c.op = "msg";
  EXPECT_EQ(CallSync(c).outcome, CallOutcome::kSuccess);
  std::vector<HttpRequest> seen = Seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].Param("op"), "msg");
}

TEST_F(HttpBranchCallerTest, EachAnswerMeansWhatItMeansToDtm) {
  struct Case {
    std::string query;
    CallOutcome outcome;
    std::string message;
  };
  const Case cases[] = {
      {"status=200&body=%7B%22dtm_result%22%3A%22SUCCESS%22%7D", CallOutcome::kSuccess, ""},
      {"status=204", CallOutcome::kSuccess, ""},
      {"status=409&body=no+money", CallOutcome::kFailure, "HTTP 409: no money"},
      {"status=200&body=%7B%22dtm_result%22%3A%22FAILURE%22%7D", CallOutcome::kFailure,
       "HTTP 200: {\"dtm_result\":\"FAILURE\"}"},
      {"status=425", CallOutcome::kOngoing, "HTTP 425"},
      {"status=200&body=ONGOING", CallOutcome::kOngoing, "HTTP 200: ONGOING"},
      {"status=409&body=ONGOING", CallOutcome::kOngoing, "HTTP 409: ONGOING"},  // as DTM
      // Not DTM's protocol: the body stays out without --verbose_errors.
      {"status=500&body=boom", CallOutcome::kError, "HTTP 500"},
      {"status=404", CallOutcome::kError, "HTTP 404"},
      {"status=302", CallOutcome::kError, "HTTP 302"},  // redirects are not followed
  };
  for (const Case& c : cases) {
    BranchResult r = CallSync(Call(Url("/busi?" + c.query)));
    EXPECT_EQ(r.outcome, c.outcome) << c.query << " -> " << r.message;
    EXPECT_EQ(r.message, c.message) << c.query;
  }
}

TEST_F(HttpBranchCallerTest, ConnectionRefusedAndTimeoutAreTransient) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);  // a port nothing listens on
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  BranchResult refused = CallSync(Call(absl::StrCat("http://127.0.0.1:", port, "/busi")));
  EXPECT_EQ(refused.outcome, CallOutcome::kError);
  EXPECT_EQ(refused.message,
            "HTTP request failed: no HTTP answer from the branch (dtmd --verbose_errors says why)");
  {
    HttpBranchCallerOptions verbose;
    verbose.verbose_errors = true;
    HttpBranchCaller caller(verbose);
    BranchResult said;
    absl::Notification done;
    caller.Call(Call(absl::StrCat("http://127.0.0.1:", port, "/busi")), [&](BranchResult r) {
      said = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_THAT(said.message, HasSubstr("HTTP request failed: Couldn't connect to server"));
  }

  BranchCall slow = Call(Url("/hang"));
  slow.timeout = absl::Milliseconds(300);
  BranchResult timed_out = CallSync(slow);
  EXPECT_EQ(timed_out.outcome, CallOutcome::kError);
  EXPECT_THAT(timed_out.message, HasSubstr("timed out after 300ms (request_timeout)"));
}

TEST_F(HttpBranchCallerTest, KeepsTheStartOfABodyAndRefusesAHugeOne) {
  BranchResult r = CallSync(Call(Url("/busi?status=409&body=" + std::string(1000, 'e'))));
  EXPECT_EQ(r.message, "HTTP 409: " + std::string(256, 'e'));
  BranchResult big = CallSync(Call(Url("/busi?big=1")));
  EXPECT_EQ(big.outcome, CallOutcome::kFailure);
  EXPECT_THAT(big.message, HasSubstr("HTTP response larger than 4194304 bytes"));
}

TEST_F(HttpBranchCallerTest, ReusesItsConnectionsToAHost) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(CallSync(Call(Url("/busi"))).outcome, CallOutcome::kSuccess);
  }
  EXPECT_EQ(server_->connections(), 1);
}

TEST_F(HttpBranchCallerTest, AMarkerSplitAcrossChunksIsFound) {
  // Classify sees what OnBody found in the whole body; the unit below covers the rule itself.
  EXPECT_EQ(HttpBranchCaller::Classify(200, "", "FAILURE").outcome, CallOutcome::kFailure);
  EXPECT_EQ(HttpBranchCaller::Classify(200, "", "ONGOING").outcome, CallOutcome::kOngoing);
  EXPECT_EQ(HttpBranchCaller::Classify(201, "created", "").outcome, CallOutcome::kSuccess);
  EXPECT_EQ(HttpBranchCaller::Classify(199, "", "").outcome, CallOutcome::kError);
  // Another service's answer stays out of last_error unless asked for; DTM's protocol
  // answers keep their words either way.
  EXPECT_EQ(HttpBranchCaller::Classify(500, "secret page", "", false).message, "HTTP 500");
  EXPECT_EQ(HttpBranchCaller::Classify(500, "secret page", "", true).message,
            "HTTP 500: secret page");
  EXPECT_EQ(HttpBranchCaller::Classify(409, "FAILURE: no money", "FAILURE", false).message,
            "HTTP 409: FAILURE: no money");
  // A body far longer than what is kept, with FAILURE beyond the kept part.
  std::string body = std::string(5000, 'x') + "FAILURE";
  BranchResult r = CallSync(Call(Url("/busi?body=" + body)));
  EXPECT_EQ(r.outcome, CallOutcome::kFailure);
}

TEST_F(HttpBranchCallerTest, CallsAfterShutdownFailAtOnce) {
  caller_.Shutdown();
  BranchResult r = CallSync(Call(Url("/busi")));
  EXPECT_EQ(r.outcome, CallOutcome::kError);
  EXPECT_EQ(r.message, "coordinator is shutting down");
}

// Two real servers on one port at two loopback addresses, behind one name that a scripted
// resolver answers for (tests/e2e/discovery_test.py does the same through /etc/hosts).
class HttpBranchCallerDiscoveryTest : public ::testing::Test {
 protected:
  struct Server {
    std::unique_ptr<HttpServer> http;
    std::atomic<int> calls{0};
  };

  void SetUp() override {
    router_[0].Handle("POST", "/busi", [this](const HttpRequest&, const HttpResponder& respond) {
      ++servers_[0].calls;
      respond(HttpResponse{});
    });
    router_[1].Handle("POST", "/busi", [this](const HttpRequest&, const HttpResponder& respond) {
      ++servers_[1].calls;
      respond(HttpResponse{});
    });
    ASSERT_TRUE(StartServer(0, "127.0.0.1:0"));
    port_ = servers_[0].http->port();
    ASSERT_TRUE(StartServer(1, absl::StrCat("127.0.0.2:", port_)));
    Answer(std::vector<std::string>{"127.0.0.1", "127.0.0.2"});
  }
  void TearDown() override {
    if (caller_) caller_->Shutdown();
    for (Server& s : servers_) {
      if (s.http) s.http->Shutdown(absl::Seconds(1));
    }
  }

  bool StartServer(int i, const std::string& listen, const TlsFiles& tls = {}) {
    HttpServerOptions o;
    o.listen = listen;
    o.tls = tls;
    auto s = HttpServer::Start(o, &router_[i]);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return false;
    servers_[i].http = *std::move(s);
    return true;
  }
  // What "pods.test" resolves to from now on.
  void Answer(absl::StatusOr<std::vector<std::string>> addresses) {
    absl::MutexLock lock(&mu_);
    addresses_ = std::move(addresses);
  }
  void MakeCaller(const HttpBranchCallerOptions& options = {}) {
    caller_ = std::make_unique<HttpBranchCaller>(
        options, [this](const std::string& host) -> absl::StatusOr<std::vector<std::string>> {
          absl::MutexLock lock(&mu_);
          ++resolutions_;
          if (host != "pods.test" && host != "pods.test." && host != "localhost") {
            return absl::NotFoundError("cannot resolve " + host);
          }
          return addresses_;
        });
  }
  BranchResult CallSync(const std::string& host = "pods.test", const std::string& scheme = "http") {
    BranchCall c;
    c.target = absl::StrCat(scheme, "://", host, ":", port_, "/busi");
    c.payload = "{}";
    c.timeout = absl::Seconds(5);
    absl::Notification n;
    BranchResult out;
    caller_->Call(std::move(c), [&](BranchResult r) {
      out = std::move(r);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }
  // Calls until server `i` got one more call (every call must succeed); false after 20 s.
  bool CallUntilServerGetsOne(int i) {
    const int before = servers_[i].calls;
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      BranchResult r = CallSync();
      EXPECT_EQ(r.outcome, CallOutcome::kSuccess) << r.message;
      if (r.outcome != CallOutcome::kSuccess) return false;
      if (servers_[i].calls > before) return true;
    }
    return false;
  }

  HttpRouter router_[2];
  Server servers_[2];
  int port_ = 0;
  std::unique_ptr<HttpBranchCaller> caller_;
  absl::Mutex mu_;
  absl::StatusOr<std::vector<std::string>> addresses_ ABSL_GUARDED_BY(mu_);
  int resolutions_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(HttpBranchCallerDiscoveryTest, CallsToANameSpreadOverAllItsAddresses) {
  MakeCaller();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(CallSync().outcome, CallOutcome::kSuccess);
  EXPECT_EQ(servers_[0].calls, 10);  // in turn
  EXPECT_EQ(servers_[1].calls, 10);
  // Each address keeps its own connection alive.
  EXPECT_EQ(servers_[0].http->connections(), 1);
  EXPECT_EQ(servers_[1].http->connections(), 1);
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(resolutions_, 1);
}

TEST_F(HttpBranchCallerDiscoveryTest, AFullyQualifiedNameSpreadsToo) {
  MakeCaller();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(CallSync("pods.test.").outcome, CallOutcome::kSuccess);
  EXPECT_EQ(servers_[0].calls, 2);
  EXPECT_EQ(servers_[1].calls, 2);
}

// The certificate is checked against the target's name, whichever address the call went to.
TEST_F(HttpBranchCallerDiscoveryTest, HttpsChecksTheNameOnEveryAddress) {
  const std::string dir = test::MakeTempDir();
  ASSERT_TRUE(test::MakeTestCa(dir));  // a server certificate for localhost and 127.0.0.1
  TlsFiles tls{dir + "/srv.pem", dir + "/srv.key"};
  for (Server& s : servers_) s.http->Shutdown(absl::Seconds(1));
  ASSERT_TRUE(StartServer(0, "127.0.0.1:0", tls));
  port_ = servers_[0].http->port();
  ASSERT_TRUE(StartServer(1, absl::StrCat("127.0.0.2:", port_), tls));
  HttpBranchCallerOptions options;
  options.ca_file = dir + "/ca.pem";
  MakeCaller(options);
  for (int i = 0; i < 4; ++i) {
    BranchResult r = CallSync("localhost", "https");  // resolves to both addresses here
    ASSERT_EQ(r.outcome, CallOutcome::kSuccess) << r.message;
  }
  EXPECT_EQ(servers_[0].calls, 2);
  EXPECT_EQ(servers_[1].calls, 2);
  // Same addresses, a name the certificate is not for: refused on either.
  for (int i = 0; i < 2; ++i) {
    BranchResult r = CallSync("pods.test", "https");
    EXPECT_EQ(r.outcome, CallOutcome::kError);
    EXPECT_THAT(r.message, HasSubstr("certificate could not be verified"));
  }
  EXPECT_EQ(servers_[0].calls + servers_[1].calls, 4);
}

TEST_F(HttpBranchCallerDiscoveryTest, ARefusedConnectionIsMadeAgainOnAnotherAddress) {
  HttpBranchCallerOptions options;
  options.addresses.down_for = absl::Milliseconds(200);
  MakeCaller(options);
  ASSERT_EQ(CallSync().outcome, CallOutcome::kSuccess);
  servers_[1].http->Shutdown(absl::Seconds(1));  // a pod went, and DNS does not know yet
  servers_[1].http.reset();
  const int first = servers_[0].calls;
  for (int i = 0; i < 10; ++i) {
    BranchResult r = CallSync();
    EXPECT_EQ(r.outcome, CallOutcome::kSuccess) << r.message;  // not one error
  }
  EXPECT_EQ(servers_[0].calls, first + 10);
  // Back on the same address: called again once it is no longer passed over.
  ASSERT_TRUE(StartServer(1, absl::StrCat("127.0.0.2:", port_)));
  EXPECT_TRUE(CallUntilServerGetsOne(1));
}

TEST_F(HttpBranchCallerDiscoveryTest, EveryAddressRefusingIsATransientError) {
  MakeCaller();
  for (Server& s : servers_) {
    s.http->Shutdown(absl::Seconds(1));
    s.http.reset();
  }
  BranchResult r = CallSync();
  EXPECT_EQ(r.outcome, CallOutcome::kError);
  EXPECT_EQ(r.message,
            "HTTP request failed: no HTTP answer from the branch (dtmd --verbose_errors says why)");
}

TEST_F(HttpBranchCallerDiscoveryTest, ANameIsResolvedAgainWhileInUse) {
  Answer(std::vector<std::string>{"127.0.0.1"});
  HttpBranchCallerOptions options;
  options.addresses.refresh_interval = absl::Milliseconds(100);
  MakeCaller(options);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(CallSync().outcome, CallOutcome::kSuccess);
  EXPECT_EQ(servers_[1].calls, 0);
  Answer(std::vector<std::string>{"127.0.0.1", "127.0.0.2"});  // a pod came
  EXPECT_TRUE(CallUntilServerGetsOne(1));
  Answer(std::vector<std::string>{"127.0.0.2"});  // one went
  // Once the answer is in, every call goes to the one left.
  ASSERT_TRUE(WaitFor([&] {
    const int before = servers_[0].calls;
    for (int i = 0; i < 4; ++i) EXPECT_EQ(CallSync().outcome, CallOutcome::kSuccess);
    return servers_[0].calls == before;
  }));
}

TEST_F(HttpBranchCallerDiscoveryTest, ANameThatDoesNotResolveIsATransientError) {
  HttpBranchCallerOptions verbose;
  verbose.verbose_errors = true;
  MakeCaller(verbose);
  BranchResult r = CallSync("nowhere.test");
  EXPECT_EQ(r.outcome, CallOutcome::kError);
  EXPECT_EQ(r.message,
            "HTTP request failed: Couldn't resolve host name (cannot resolve nowhere.test)");
  caller_->Shutdown();
  MakeCaller();
  r = CallSync("nowhere.test");
  EXPECT_EQ(r.message,
            "HTTP request failed: no HTTP answer from the branch (dtmd --verbose_errors says why)");
}

}  // namespace
}  // namespace dtm
