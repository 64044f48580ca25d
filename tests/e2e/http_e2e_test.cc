// End-to-end over HTTP: a real dtmd with DTM's HTTP API, real HTTP branch services (and gRPC
// ones, to mix them), clients speaking DTM's JSON as DTM's SDKs do. The suite runs on SQLite
// and on the test run's PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/saga.h"
#include "nlohmann/json.hpp"
#include "tests/support/branch_script.h"
#include "tests/support/http_client.h"
#include "tests/support/live_dtmd_test.h"
#include "tests/support/test_ca.h"

namespace dtm {
namespace {

using json = nlohmann::json;
using test::BranchCallRecord;
using test::DtmdProcess;
using test::Failure;
using test::Hang;
using test::HttpClient;
using test::HttpReply;
using test::HttpResult;
using test::Ok;
using test::TestHttpBranchServer;
using test::WaitUntil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class HttpE2ETest : public test::LiveDtmdTest<HttpE2ETest> {
 protected:
  static void SetUpTestSuite() {
    LiveDtmdTest::SetUpTestSuite();
    // A second HTTP service answering exactly what a test says, for the answers DTM's protocol
    // has and gRPC has not (a 200 whose body says FAILURE, a 500...).
    raw_ = new TestHttpBranchServer();
    raw_->SetBehavior([](const BranchCallRecord& c) {
      absl::MutexLock lock(&raw_mu_);
      auto& replies = (*raw_replies_)[{c.gid(), c.name()}];
      if (replies.empty()) return HttpReply{};
      HttpReply r = replies.front();
      if (replies.size() > 1) replies.erase(replies.begin());
      return r;
    });
  }
  static void TearDownTestSuite() {
    delete raw_;
    LiveDtmdTest::TearDownTestSuite();
  }

  static std::string Api(const std::string& route) {
    return absl::StrCat("http://", dtmd_->http_address(), "/api/dtmsvr/", route);
  }
  HttpResult Post(const std::string& route, const json& body) {
    return http_.Post(Api(route), body.dump());
  }
  json Query(const std::string& gid) {
    HttpResult r = http_.Get(Api("query?gid=" + gid));
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  // A DTM saga of `n` steps on the HTTP branch service: H1..Hn, compensations C1..Cn.
  static json Saga(const std::string& gid, int n) {
    json j = {{"gid", gid},
              {"trans_type", "saga"},
              {"steps", json::array()},
              {"payloads", json::array()}};
    for (int i = 1; i <= n; ++i) {
      j["steps"].push_back({{"action", http_branches_->Target(absl::StrCat("H", i))},
                            {"compensate", http_branches_->Target(absl::StrCat("C", i))}});
      j["payloads"].push_back(absl::StrCat("{\"amount\":", i, "}"));
    }
    return j;
  }
  static void RawScript(const std::string& gid, const std::string& name,
                        std::vector<HttpReply> replies) {
    absl::MutexLock lock(&raw_mu_);
    (*raw_replies_)[{gid, name}] = std::move(replies);
  }

  HttpClient http_;
  static inline TestHttpBranchServer* raw_ = nullptr;
  static inline absl::Mutex raw_mu_;
  static inline auto* raw_replies_ =
      new std::map<std::pair<std::string, std::string>, std::vector<HttpReply>>();
};

TEST_F(HttpE2ETest, ASagaSubmittedOverHttpCallsItsHttpBranchesAsDtmDoes) {
  std::string gid = Gid();
  json saga = Saga(gid, 2);
  saga["wait_result"] = true;
  saga["branch_headers"] = {{"Authorization", "Bearer abc"}};
  HttpResult r = Post("submit", saga);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"dtm_result\":\"SUCCESS\"}");
  std::vector<BranchCallRecord> calls = http_branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 2u);
  const BranchCallRecord& h1 = calls[0];
  EXPECT_EQ(h1.name(), "H1");
  EXPECT_EQ(h1.http_method, "POST");
  EXPECT_EQ(h1.payload, "{\"amount\":1}");
  EXPECT_EQ(h1.Meta("dtm-trans_type"), "saga");
  EXPECT_EQ(h1.Meta("dtm-branch_id"), "01");
  EXPECT_EQ(h1.Meta("dtm-op"), "action");
  EXPECT_EQ(h1.Meta("dtm-dtm"), absl::StrCat("http://", dtmd_->http_address(), "/api/dtmsvr"));
  EXPECT_EQ(h1.Meta("content-type"), "application/json");
  EXPECT_EQ(h1.Meta("authorization"), "Bearer abc");
  EXPECT_EQ(calls[1].Meta("dtm-branch_id"), "02");
  // One engine behind both faces.
  auto t = client_->Query(gid);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->status(), v1::SUCCEEDED);
  json q = Query(gid);
  EXPECT_EQ(q["transaction"]["status"], "succeed");
  EXPECT_EQ(q["branches"].size(), 4u);
  EXPECT_EQ(q["branches"][0]["status"], "succeed");
}

TEST_F(HttpE2ETest, AFailureCompensatesInReverseAndWaitResultSays409) {
  std::string gid = Gid();
  script_->Set(gid, "H3", {Failure()});
  json saga = Saga(gid, 3);
  saga["wait_result"] = true;
  HttpResult r = Post("submit", saga);
  EXPECT_EQ(r.status, 409);
  json body = json::parse(r.body);
  EXPECT_EQ(body["dtm_result"], "FAILURE");
  EXPECT_THAT(body["message"].get<std::string>(), HasSubstr("refused by test"));
  EXPECT_THAT(http_branches_->NamesFor(gid), ElementsAre("H1", "H2", "H3", "C3", "C2", "C1"));
  for (const BranchCallRecord& c : http_branches_->CallsFor(gid)) {
    if (c.name()[0] == 'C') {
      EXPECT_EQ(c.Meta("dtm-op"), "compensate");
    }
  }
  EXPECT_EQ(Query(gid)["transaction"]["status"], "failed");
}

TEST_F(HttpE2ETest, EveryAnswerOfAnHttpBranchMeansWhatItMeansToDtm) {
  struct Case {
    std::vector<HttpReply> replies;
    v1::Status status;  // once settled
    int attempts;
    std::string last_error;
  };
  const Case cases[] = {
      {{{200, "{\"dtm_result\":\"FAILURE\"}"}}, v1::FAILED, 1, "FAILURE"},
      {{{409, "no money"}}, v1::FAILED, 1, "HTTP 409: no money"},
      {{{425, ""}, {}}, v1::SUCCEEDED, 2, "HTTP 425"},
      {{{200, "{\"dtm_result\":\"ONGOING\"}"}, {}}, v1::SUCCEEDED, 2, "ONGOING"},
      {{{500, "boom"}, {}}, v1::SUCCEEDED, 2, "HTTP 500: boom"},
      {{{201, "created"}}, v1::SUCCEEDED, 1, ""},
  };
  for (const Case& c : cases) {
    std::string gid = Gid();
    RawScript(gid, "A", c.replies);
    json saga = {{"gid", gid},
                 {"trans_type", "saga"},
                 {"retry_interval", 1},
                 {"steps", {{{"action", raw_->Target("A")}, {"compensate", raw_->Target("B")}}}},
                 {"payloads", {"{}"}}};
    ASSERT_EQ(Post("submit", saga).status, 200);
    ASSERT_TRUE(WaitStatus(gid, c.status)) << c.last_error;
    auto t = client_->Query(gid);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->branches(0).attempts(), c.attempts) << c.last_error;
    EXPECT_THAT(t->branches(0).last_error(), HasSubstr(c.last_error));
  }
}

TEST_F(HttpE2ETest, NoConnectionAndATimeoutAreRetried) {
  std::string gid = Gid();
  json saga = {
      {"gid", gid},
      {"trans_type", "saga"},
      {"steps", {{{"action", absl::StrCat("http://127.0.0.1:", test::ClosedPort(), "/x")}}}},
      {"payloads", {"{}"}}};
  ASSERT_EQ(Post("submit", saga).status, 200);
  ASSERT_TRUE(WaitUntil([&] {
    auto t = client_->Query(gid);
    return t.ok() && t->branches(0).attempts() >= 2;
  }));
  auto t = client_->Query(gid);
  EXPECT_EQ(t->status(), v1::SUBMITTED);
  EXPECT_THAT(t->branches(0).last_error(), HasSubstr("Couldn't connect to server"));
  EXPECT_EQ(Post("forceStop", {{"gid", gid}}).status, 200);
  EXPECT_EQ(Query(gid)["transaction"]["status"], "failed");

  std::string slow = Gid();
  script_->Set(slow, "H1", {test::Hang(), Ok()});
  json hang = Saga(slow, 1);
  hang["request_timeout"] = 1;
  ASSERT_EQ(Post("submit", hang).status, 200);
  ASSERT_TRUE(WaitStatus(slow, v1::SUCCEEDED));
  EXPECT_THAT(client_->Query(slow)->branches(0).last_error(),
              HasSubstr("timed out after 1s (request_timeout)"));
}

TEST_F(HttpE2ETest, AConcurrentSagaFollowsItsOrders) {
  std::string gid = Gid();
  json saga = Saga(gid, 3);
  saga["custom_data"] = "{\"concurrent\":true,\"orders\":{\"2\":[0,1]}}";
  saga["concurrent"] = true;
  saga["wait_result"] = true;
  ASSERT_EQ(Post("submit", saga).status, 200);
  std::vector<std::string> names = http_branches_->NamesFor(gid);
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[2], "H3");  // after both others
  auto t = client_->Query(gid);
  EXPECT_TRUE(t->options().concurrent());
}

TEST_F(HttpE2ETest, ATccOverHttpConfirmsOrCancelsInReverse) {
  for (bool commit : {true, false}) {
    std::string gid = Gid();
    ASSERT_EQ(Post("prepare", {{"gid", gid}, {"trans_type", "tcc"}}).status, 200);
    for (int i = 1; i <= 2; ++i) {
      json reg = {{"gid", gid},
                  {"trans_type", "tcc"},
                  {"branch_id", absl::StrCat("0", i)},
                  {"data", absl::StrCat("{\"leg\":", i, "}")},
                  {"confirm", http_branches_->Target(absl::StrCat("Confirm", i))},
                  {"cancel", http_branches_->Target(absl::StrCat("Cancel", i))}};
      HttpResult r = Post(i == 1 ? "registerBranch" : "registerTccBranch", reg);
      ASSERT_EQ(r.status, 200) << r.body;
    }
    json end = {{"gid", gid}, {"trans_type", "tcc"}, {"wait_result", true}};
    if (commit) {
      ASSERT_EQ(Post("submit", end).status, 200);
      EXPECT_THAT(http_branches_->NamesFor(gid), ElementsAre("Confirm2", "Confirm1"));
      EXPECT_EQ(http_branches_->CallsFor(gid)[0].payload, "{\"leg\":2}");
    } else {
      end["rollback_reason"] = "the client changed its mind";
      ASSERT_EQ(Post("abort", end).status, 200);
      ASSERT_TRUE(WaitStatus(gid, v1::FAILED));
      EXPECT_THAT(http_branches_->NamesFor(gid), ElementsAre("Cancel2", "Cancel1"));
      EXPECT_EQ(client_->Query(gid)->rollback_reason(), "the client changed its mind");
    }
    // Too late to register.
    json late = {{"gid", gid},
                 {"trans_type", "tcc"},
                 {"branch_id", "03"},
                 {"confirm", http_branches_->Target("Confirm3")}};
    EXPECT_EQ(Post("registerBranch", late).status, 409);
  }
}

TEST_F(HttpE2ETest, AMsgLeftPreparedIsBackCheckedOverHttp) {
  for (bool committed : {true, false}) {
    std::string gid = Gid();
    if (!committed) script_->Set(gid, "QueryPrepared", {Failure()});
    json msg = {{"gid", gid},
                {"trans_type", "msg"},
                {"timeout_to_fail", 1},
                {"steps", {{{"action", http_branches_->Target("H1")}}}},
                {"payloads", {"{\"event\":1}"}},
                {"query_prepared", http_branches_->Target("QueryPrepared")}};
    ASSERT_EQ(Post("prepare", msg).status, 200);
    ASSERT_TRUE(WaitStatus(gid, committed ? v1::SUCCEEDED : v1::FAILED));
    std::vector<BranchCallRecord> calls = http_branches_->CallsFor(gid);
    ASSERT_GE(calls.size(), 1u);
    EXPECT_EQ(calls[0].name(), "QueryPrepared");
    EXPECT_EQ(calls[0].http_method, "GET");  // no payload: DTM's GET
    EXPECT_EQ(calls[0].Meta("dtm-op"), "msg");
    EXPECT_EQ(calls[0].Meta("dtm-branch_id"), "00");
    std::vector<std::string> expected = {"QueryPrepared"};
    if (committed) expected.push_back("H1");
    EXPECT_EQ(http_branches_->NamesFor(gid), expected);
  }
}

TEST_F(HttpE2ETest, OneSagaMixesGrpcAndHttpSteps) {
  std::string gid = Gid();
  script_->Set(gid, "H2", {Failure()});
  dtm::Saga saga(client_, gid);
  saga.Add(branches_->Target("G1"), branches_->Target("GC1"), "grpc-payload")
      .Add(http_branches_->Target("H2"), http_branches_->Target("C2"), "{\"http\":true}")
      .WaitResult();
  auto r = saga.Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::FAILED);
  EXPECT_THAT(branches_->NamesFor(gid), ElementsAre("G1", "GC1"));
  EXPECT_THAT(http_branches_->NamesFor(gid), ElementsAre("H2", "C2"));
  EXPECT_EQ(http_branches_->CallsFor(gid)[0].payload, "{\"http\":true}");
}

TEST_F(HttpE2ETest, KillNineMidSagaWithHttpBranchesFinishesAfterARestart) {
  std::string dir = test::MakeTempDir();
  DtmdProcess dtmd(test::TestStore(dir), {"--lease=1s", "--recovery_interval=100ms"});
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  std::string gid = Gid();
  script_->Set(gid, "H2", {Hang(), Ok()});
  json saga = Saga(gid, 3);
  saga["request_timeout"] = 30;
  HttpClient http;
  HttpResult r =
      http.Post(absl::StrCat("http://", dtmd.http_address(), "/api/dtmsvr/submit"), saga.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(http_branches_->WaitFor(gid, [](const std::vector<BranchCallRecord>& c) {
    return c.size() == 2;  // H1, then H2 hangs
  }));
  dtmd.Kill9();
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  auto client = CoordinatorClient::Connect(dtmd.address());
  ASSERT_TRUE(WaitUntil([&] {
    auto t = client->Query(gid);
    return t.ok() && t->status() == v1::SUCCEEDED;
  })) << dtmd.Log();
  std::vector<std::string> names = http_branches_->NamesFor(gid);
  EXPECT_EQ(std::count(names.begin(), names.end(), "H1"), 1);
  EXPECT_EQ(names.back(), "H3");
  EXPECT_EQ(dtmd.Terminate(), 0);
}

TEST_F(HttpE2ETest, EveryRouteAnswersInDtmsShape) {
  HttpResult gid_reply = http_.Get(Api("newGid"));
  ASSERT_EQ(gid_reply.status, 200);
  json g = json::parse(gid_reply.body);
  EXPECT_EQ(g["dtm_result"], "SUCCESS");
  std::string gid = g["gid"];
  EXPECT_FALSE(gid.empty());
  EXPECT_EQ(json::parse(http_.Get(Api("version")).body)["version"].is_string(), true);
  EXPECT_EQ(http_.Get(absl::StrCat("http://", dtmd_->http_address(), "/api/ping")).status, 200);

  json unknown = Query("never-seen");
  EXPECT_TRUE(unknown["transaction"].is_null());
  EXPECT_TRUE(unknown["branches"].empty());

  // A gid from the HTTP face is good for the gRPC face, and the other way round.
  auto grpc_gid = client_->NewGid();
  ASSERT_TRUE(grpc_gid.ok());
  for (const std::string& id : {gid, *grpc_gid}) {
    json saga = Saga(id, 1);
    saga["wait_result"] = true;
    ASSERT_EQ(Post("submit", saga).status, 200);
  }
  // A finished saga: submit again, abort, forceStop are refused.
  EXPECT_EQ(Post("submit", Saga(gid, 1)).status, 409);
  HttpResult abort = Post("abort", {{"gid", gid}, {"trans_type", "saga"}});
  EXPECT_EQ(abort.status, 409);
  EXPECT_EQ(json::parse(abort.body)["dtm_result"], "FAILURE");
  EXPECT_EQ(Post("forceStop", {{"gid", gid}}).status, 409);
  EXPECT_EQ(Post("registerBranch", {{"gid", "no-such"},
                                    {"trans_type", "tcc"},
                                    {"branch_id", "01"},
                                    {"confirm", ""},
                                    {"cancel", ""}})
                .status,
            409);
  // all: by gid, and paged by type and status.
  json one = json::parse(http_.Get(Api("all?gid=" + gid)).body);
  ASSERT_EQ(one["transactions"].size(), 1u);
  EXPECT_EQ(one["transactions"][0]["gid"], gid);
  std::string prefix = Gid();
  for (int i = 0; i < 3; ++i) {
    json saga = Saga(absl::StrCat(prefix, "-", i), 1);
    saga["wait_result"] = true;
    ASSERT_EQ(Post("submit", saga).status, 200);
  }
  json page = json::parse(http_.Get(Api("all?transType=saga&status=succeed&limit=2")).body);
  ASSERT_EQ(page["transactions"].size(), 2u);
  EXPECT_EQ(page["transactions"][0]["status"], "succeed");
  EXPECT_EQ(page["transactions"][0]["gid"], absl::StrCat(prefix, "-2"));  // newest first
  std::string next = page["next_position"];
  ASSERT_FALSE(next.empty());
  json page2 = json::parse(
      http_.Get(Api("all?transType=saga&status=succeed&limit=2&position=" + next)).body);
  EXPECT_EQ(page2["transactions"][0]["gid"], absl::StrCat(prefix, "-0"));
}

TEST_F(HttpE2ETest, BadRequestsAreClear4xxStoreNothingAndDtmdKeepsServing) {
  std::string gid = Gid();
  struct Case {
    std::string method;
    std::string route;
    std::string body;
    long status;
    std::string message;
  };
  const Case cases[] = {
      {"POST", "submit", "{\"gid\":\"" + gid + "\",", 400, "not valid JSON"},
      {"POST", "submit", "{\"trans_type\":\"saga\"}", 400, "gid is missing"},
      {"POST", "submit", "{\"gid\":\"" + gid + "\",\"trans_type\":\"dance\"}", 400,
       "trans_type 'dance' is not saga, tcc, msg or xa"},
      {"POST", "submit",
       "{\"gid\":\"" + gid + "\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"unix:/x\"}]}",
       400, "steps[0].action"},
      {"POST", "nosuchroute", "{}", 404, "no such path"},
      {"GET", "submit", "", 405, "takes POST"},
      {"POST", "submit",
       "{\"gid\":\"" + gid +
           "\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\"}],"
           "\"payloads\":[\"" +
           std::string(6 << 20, 'x') + "\"]}",
       413, "larger than"},
      {"GET", "query", "", 400, "gid is missing"},
      {"GET", "all?limit=abc", "", 400, "limit 'abc'"},
  };
  for (const Case& c : cases) {
    HttpResult r = http_.Do(c.method, Api(c.route), c.body, absl::Seconds(30));
    EXPECT_EQ(r.status, c.status) << c.route << " " << r.body.substr(0, 200);
    EXPECT_THAT(r.body, HasSubstr(c.message)) << c.route;
    EXPECT_EQ(client_->Query(gid).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(http_.Get(Api("version")).status, 200);
  }
}

TEST_F(HttpE2ETest, SigtermAnswersAWaitingSubmitAndDrainsTheHttpServer) {
  DtmdProcess dtmd(test::TestStore(test::MakeTempDir()));
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  std::string gid = Gid();
  script_->Set(gid, "H1", {Hang()});
  json saga = Saga(gid, 1);
  saga["wait_result"] = true;
  saga["request_timeout"] = 60;
  HttpResult answer;
  std::thread client([&] {
    HttpClient http;
    answer =
        http.Post(absl::StrCat("http://", dtmd.http_address(), "/api/dtmsvr/submit"), saga.dump());
  });
  ASSERT_TRUE(http_branches_->WaitFor(
      gid, [](const std::vector<BranchCallRecord>& c) { return !c.empty(); }));
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
  client.join();
  // Still running when dtmd stopped: neither a success nor a failure.
  EXPECT_EQ(answer.status, 425) << answer.error << answer.body;
  EXPECT_THAT(answer.body, HasSubstr("ONGOING"));
  EXPECT_THAT(dtmd.Log(), HasSubstr("dtmd: stopped"));
}

// Runs `command` with sh; true if it exited 0.
bool Shell(const std::string& command) { return std::system(command.c_str()) == 0; }

TEST_F(HttpE2ETest, HttpsBranchesAreVerifiedAgainstTheGivenCa) {
  std::string dir = test::MakeTempDir();
  ASSERT_TRUE(test::MakeTestCa(dir));
  std::string command =
      absl::StrCat("/usr/bin/python3 '", test::BuildPath("source", "tests/e2e/https_branch.py"),
                   "' '", dir, "/srv.pem' '", dir, "/srv.key' & echo $! > '", dir, "/pid'; wait");
  FILE* server = popen(command.c_str(), "r");
  ASSERT_NE(server, nullptr);
  // Stops the HTTPS service however the test ends.
  struct Stop {
    std::string dir;
    FILE* server;
    ~Stop() {
      Shell(absl::StrCat("kill $(cat '", dir, "/pid') 2>/dev/null"));
      pclose(server);
    }
  } stop{dir, server};
  char line[64] = {0};
  ASSERT_NE(fgets(line, sizeof(line), server), nullptr);
  int port = 0;
  ASSERT_EQ(sscanf(line, "port %d", &port), 1) << line;
  std::string url = absl::StrCat("https://127.0.0.1:", port, "/api/TransOut");

  // With the test CA: verified, called, done.
  DtmdProcess trusting(test::TestStore(test::MakeTempDir()),
                       {absl::StrCat("--branch_ca_file=", dir, "/ca.pem")});
  ASSERT_TRUE(trusting.Start().ok()) << trusting.Log();
  std::string gid = Gid();
  json saga = {{"gid", gid},
               {"trans_type", "saga"},
               {"wait_result", true},
               {"steps", {{{"action", url}}}},
               {"payloads", {"{}"}}};
  HttpClient http;
  HttpResult r = http.Post(absl::StrCat("http://", trusting.http_address(), "/api/dtmsvr/submit"),
                           saga.dump());
  EXPECT_EQ(r.status, 200) << r.body << trusting.Log();

  // With the system's CAs only: the certificate is not trusted, the call is a transient error.
  DtmdProcess strict(test::TestStore(test::MakeTempDir()));
  ASSERT_TRUE(strict.Start().ok()) << strict.Log();
  std::string refused = Gid();
  saga["gid"] = refused;
  saga["wait_result"] = false;
  ASSERT_EQ(
      http.Post(absl::StrCat("http://", strict.http_address(), "/api/dtmsvr/submit"), saga.dump())
          .status,
      200);
  auto client = CoordinatorClient::Connect(strict.address());
  ASSERT_TRUE(WaitUntil([&] {
    auto t = client->Query(refused);
    return t.ok() && t->branches(0).attempts() >= 1 && !t->branches(0).last_error().empty();
  }));
  auto t = client->Query(refused);
  EXPECT_EQ(t->status(), v1::SUBMITTED);
  EXPECT_THAT(t->branches(0).last_error(), HasSubstr("SSL"));
  EXPECT_EQ(trusting.Terminate(), 0);
  EXPECT_EQ(strict.Terminate(), 0);
}

}  // namespace
}  // namespace dtm
