// End-to-end: the JSON face of dtm.v1 under /v1/ on dtmd's HTTP port (server/api/admin) and
// the admin page's files, against a real dtmd, sagas submitted over gRPC and real gRPC branch
// services. Runs on SQLite and on the test run's PostgreSQL.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/saga.h"
#include "nlohmann/json.hpp"
#include "tests/support/branch_script.h"
#include "tests/support/http_client.h"
#include "tests/support/live_dtmd_test.h"

namespace dtm {
namespace {

using json = nlohmann::json;
using test::HttpClient;
using test::HttpResult;
using test::Ok;
using test::Transient;
using test::WaitUntil;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// An answer of the API: its status and its body parsed (null when it is not JSON).
struct Answer {
  long status = 0;
  std::string body;
  json j;
};

Answer ToAnswer(const HttpResult& r) {
  return {r.status, r.body, json::parse(r.body, nullptr, false)};
}

// What a failed call must answer: the HTTP status and {"code": code, "message": ...}.
void ExpectError(const Answer& a, long status, const std::string& code) {
  EXPECT_EQ(a.status, status) << a.body;
  ASSERT_TRUE(a.j.is_object()) << a.body;
  EXPECT_EQ(a.j.value("code", ""), code) << a.body;
  EXPECT_FALSE(a.j.value("message", "").empty()) << a.body;
}

// A GET by hand over a plain socket, for what HttpClient does not show: the status line and
// headers. Returns the whole answer (headers and body) or "" when nothing came.
std::string RawGet(const std::string& host_port, const std::string& path) {
  std::vector<std::string> hp = absl::StrSplit(host_port, ':');
  int port = 0;
  if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &port)) return "";
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, hp[0].c_str(), &addr.sin_addr);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host_port,
                                   "\r\nConnection: close\r\n\r\n");
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

class AdminApiE2ETest : public test::LiveDtmdTest<AdminApiE2ETest> {
 protected:
  static std::string Url(const std::string& path) {
    return absl::StrCat("http://", dtmd_->http_address(), path);
  }
  Answer Get(const std::string& path) { return ToAnswer(http_.Get(Url(path))); }
  Answer Post(const std::string& path, const std::string& body) {
    return ToAnswer(http_.Post(Url(path), body));
  }
  // The gids of one list answer, in its order.
  static std::vector<std::string> Gids(const json& page) {
    std::vector<std::string> out;
    if (page.contains("transactions")) {
      for (const json& t : page["transactions"]) out.push_back(t.value("gid", ""));
    }
    return out;
  }
  std::vector<std::string> ListGids(const std::string& query) {
    Answer a = Get("/v1/transactions?" + query);
    EXPECT_EQ(a.status, 200) << query << ": " << a.body;
    return Gids(a.j);
  }
  // A saga of one step on the recording branch service whose action fails transiently for as
  // long as the test runs, retried a minute later: it waits, SUBMITTED, after its first call.
  std::string SubmitWaitingSaga(const std::string& gid, const std::string& payload = "") {
    script_->Set(gid, "A1", {Transient()});
    Saga saga(client_, gid);
    saga.Add(branches_->Target("A1"), branches_->Target("C1"), payload)
        .RetryInterval(absl::Seconds(60))
        .MaxRetryInterval(absl::Seconds(60));
    auto r = saga.Submit();
    EXPECT_TRUE(r.ok()) << r.status();
    // Answered, not only called: the error of the first attempt is recorded.
    EXPECT_TRUE(WaitUntil([&] { return !ActionError(gid).empty(); })) << gid;
    return gid;
  }
  // last_error of the first action as the JSON API shows it ("" when none yet).
  std::string ActionError(const std::string& gid) {
    Answer a = Get("/v1/transactions/" + gid);
    if (a.status != 200 || !a.j.contains("branches") || a.j["branches"].empty()) return "";
    return a.j["branches"][0].value("last_error", "");
  }
  // A saga of no-op steps: SUCCEEDED at once.
  void SubmitDoneSaga(const std::string& gid, int steps = 1) {
    Saga saga(client_, gid);
    for (int i = 0; i < steps; ++i) saga.Add("", "");
    auto r = saga.WaitResult().Submit();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status(), v1::SUCCEEDED);
  }
  // attempts of the action branch `branch_id` as the JSON API shows them (-1: not shown).
  int Attempts(const std::string& gid, const std::string& branch_id) {
    Answer a = Get("/v1/transactions/" + gid);
    if (a.status != 200 || !a.j.contains("branches")) return -1;
    for (const json& b : a.j["branches"]) {
      if (b.value("branch_id", "") == branch_id && b.value("op", "") == "ACTION") {
        return b.value("attempts", 0);
      }
    }
    return -1;
  }
  // A prefix of gids unique to this test.
  std::string Prefix() {
    return absl::StrCat(::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                        absl::ToUnixMicros(absl::Now()), "-");
  }

  HttpClient http_;
};

TEST_F(AdminApiE2ETest, ListFiltersByStatusTypePrefixAndCreationTime) {
  std::string p = Prefix();
  SubmitDoneSaga(p + "done");
  SubmitWaitingSaga(p + "waiting");

  EXPECT_THAT(ListGids("gid_prefix=" + p),
              ::testing::UnorderedElementsAre(p + "done", p + "waiting"));
  EXPECT_THAT(ListGids("gid_prefix=" + p + "&status=SUBMITTED"),
              ::testing::ElementsAre(p + "waiting"));
  // Enum names in any case.
  EXPECT_THAT(ListGids("gid_prefix=" + p + "&status=succeeded"),
              ::testing::ElementsAre(p + "done"));
  EXPECT_EQ(ListGids("gid_prefix=" + p + "&trans_type=saga").size(), 2u);
  EXPECT_THAT(ListGids("gid_prefix=" + p + "&trans_type=TCC"), ::testing::IsEmpty());

  // Times are RFC 3339, in and out.
  auto rfc3339 = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
  };
  std::string later = rfc3339(absl::Now() + absl::Hours(1));
  std::string earlier = rfc3339(absl::Now() - absl::Hours(1));
  EXPECT_THAT(ListGids("gid_prefix=" + p + "&created_after=" + later), ::testing::IsEmpty());
  EXPECT_EQ(
      ListGids("gid_prefix=" + p + "&created_after=" + earlier + "&created_before=" + later).size(),
      2u);
  // An offset instead of Z (the "+" percent-encoded, as a query string must carry it).
  EXPECT_EQ(ListGids("gid_prefix=" + p + "&created_before=2999-01-01T00:00:00%2B02:00").size(), 2u);
  // ... or not, as a hand-written curl line would send it.
  EXPECT_EQ(ListGids("gid_prefix=" + p + "&created_after=2000-01-01T00:00:00+02:00").size(), 2u);

  Answer a = Get("/v1/transactions?gid_prefix=" + p + "&status=SUBMITTED");
  ASSERT_EQ(a.status, 200) << a.body;
  const json& t = a.j["transactions"][0];
  EXPECT_EQ(t["gid"], p + "waiting");
  EXPECT_EQ(t["status"], "SUBMITTED");
  EXPECT_EQ(t["trans_type"], "SAGA");
  EXPECT_THAT(t["create_time"].get<std::string>(), AllOf(HasSubstr("T"), ::testing::EndsWith("Z")));
  EXPECT_TRUE(t.contains("next_retry_time")) << t;
  EXPECT_EQ(t["options"]["retry_interval"], "60s");
}

TEST_F(AdminApiE2ETest, PagesFollowTheirTokenToTheEnd) {
  std::string p = Prefix();
  std::vector<std::string> made;
  for (int i = 0; i < 5; ++i) {
    made.push_back(absl::StrCat(p, i));
    SubmitDoneSaga(made.back());
  }
  std::vector<std::string> seen;
  std::vector<size_t> sizes;
  std::string token;
  for (int round = 0; round < 10; ++round) {
    std::string q = "page_size=2&gid_prefix=" + p;
    if (!token.empty()) q += "&page_token=" + token;
    Answer a = Get("/v1/transactions?" + q);
    ASSERT_EQ(a.status, 200) << a.body;
    std::vector<std::string> gids = Gids(a.j);
    sizes.push_back(gids.size());
    seen.insert(seen.end(), gids.begin(), gids.end());
    token = a.j.value("next_page_token", "");
    if (token.empty()) break;
  }
  EXPECT_THAT(sizes, ::testing::ElementsAre(2u, 2u, 1u));
  // Newest first, each once.
  EXPECT_THAT(seen, ::testing::ElementsAre(made[4], made[3], made[2], made[1], made[0]));
}

TEST_F(AdminApiE2ETest, QueryShowsEveryBranchWithoutPayloadsUnlessAsked) {
  const std::string payload = "PAYLOAD-ef01-visible-only-on-request";
  std::string gid = SubmitWaitingSaga(Gid(), payload);

  Answer a = Get("/v1/transactions/" + gid);
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.j["gid"], gid);
  EXPECT_EQ(a.j["status"], "SUBMITTED");
  ASSERT_EQ(a.j["branches"].size(), 2u) << a.body;  // the action and its compensation
  const json& action = a.j["branches"][0];
  EXPECT_EQ(action["branch_id"], "01");
  EXPECT_EQ(action["op"], "ACTION");
  EXPECT_EQ(action["target"], branches_->Target("A1"));
  EXPECT_EQ(action["status"], "BRANCH_PREPARED");
  EXPECT_GE(action.value("attempts", 0), 1);
  EXPECT_FALSE(action.value("last_error", "").empty()) << action;
  EXPECT_EQ(a.j["branches"][1]["op"], "COMPENSATE");
  for (const json& b : a.j["branches"]) EXPECT_FALSE(b.contains("payload")) << b;
  EXPECT_THAT(a.body, Not(HasSubstr(payload)));
  EXPECT_THAT(a.body, Not(HasSubstr(absl::Base64Escape(payload))));

  Answer shown = Get("/v1/transactions/" + gid + "?payloads=true");
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(shown.j["branches"][0]["payload"], absl::Base64Escape(payload));
  EXPECT_EQ(shown.j["branches"][1]["payload"], absl::Base64Escape(payload));

  ExpectError(Get("/v1/transactions/" + gid + "?payloads=maybe"), 400, "INVALID_ARGUMENT");
  ExpectError(Get("/v1/transactions/" + gid + "?verbose=1"), 400, "INVALID_ARGUMENT");
}

TEST_F(AdminApiE2ETest, UnknownTransactionsAndRoutesAre404) {
  Answer a = Get("/v1/transactions/no-such-gid-here");
  ExpectError(a, 404, "NOT_FOUND");
  EXPECT_THAT(a.j.value("message", ""), HasSubstr("no-such-gid-here"));
  ExpectError(Post("/v1/transactions/no-such-gid-here:retryNow", "{}"), 404, "NOT_FOUND");
  ExpectError(Post("/v1/transactions/no-such-gid-here:forceStop", R"({"reason":"r"})"), 404,
              "NOT_FOUND");

  ExpectError(Get("/v1/nothing"), 404, "NOT_FOUND");
  ExpectError(Get("/v1/transactions/a/b"), 404, "NOT_FOUND");
  ExpectError(Post("/v1/transactions/x:explode", "{}"), 404, "NOT_FOUND");
  ExpectError(Get("/v1/transactions/x:retryNow"), 405, "UNIMPLEMENTED");
  ExpectError(ToAnswer(http_.Do("DELETE", Url("/v1/transactions"), "", absl::Seconds(10))), 405,
              "UNIMPLEMENTED");
  // Percent-decoded before it is checked: a space is no gid character.
  Answer bad = Get("/v1/transactions/bad%20gid");
  ExpectError(bad, 400, "INVALID_ARGUMENT");
  EXPECT_THAT(bad.j.value("message", ""), AllOf(HasSubstr("gid"), HasSubstr("bad gid")));
}

TEST_F(AdminApiE2ETest, BadFilterValuesAre400NamingTheParameterAndValue) {
  struct Case {
    std::string query, field, value;
  };
  for (const Case& c : std::vector<Case>{
           {"status=BOGUS", "status", "BOGUS"},
           {"trans_type=saga2", "trans_type", "saga2"},
           {"page_size=-1", "page_size", "-1"},
           {"page_size=1001", "page_size", "1001"},
           {"page_size=ten", "page_size", "ten"},
           {"created_after=notatime", "created_after", "notatime"},
           {"created_before=2026-13-01T00:00:00Z", "created_before", "2026-13-01"},
           {"stauts=FAILED", "stauts", "stauts"},
       }) {
    Answer a = Get("/v1/transactions?" + c.query);
    ExpectError(a, 400, "INVALID_ARGUMENT");
    EXPECT_THAT(a.j.value("message", ""), AllOf(HasSubstr(c.field), HasSubstr(c.value))) << c.query;
  }
  Answer token = Get("/v1/transactions?page_token=not-a-token");
  ExpectError(token, 400, "INVALID_ARGUMENT");
}

TEST_F(AdminApiE2ETest, ForceStopNeedsAReasonAndEndsTheTransactionOnce) {
  std::string gid = SubmitWaitingSaga(Gid());
  const std::string path = "/v1/transactions/" + gid + ":forceStop";
  for (const std::string& body : {std::string(), std::string("{}"), std::string(R"({"reason":""})"),
                                  std::string(R"({"reason":"   "})")}) {
    Answer a = Post(path, body);
    ExpectError(a, 400, "INVALID_ARGUMENT");
    EXPECT_THAT(a.j.value("message", ""), HasSubstr("reason")) << body;
  }
  ExpectError(Post(path, "reason=x"), 400, "INVALID_ARGUMENT");
  ExpectError(Post(path, R"({"reason":"x","gid":"another"})"), 400, "INVALID_ARGUMENT");
  EXPECT_EQ(StatusOf(gid), v1::SUBMITTED);

  Answer a = Post(path, R"({"reason":"refunded by hand"})");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.j["gid"], gid);
  EXPECT_EQ(a.j["status"], "FAILED");
  EXPECT_EQ(a.j["rollback_reason"], "refunded by hand");
  EXPECT_TRUE(a.j.contains("finish_time")) << a.body;
  for (const json& b : a.j["branches"]) EXPECT_FALSE(b.contains("payload")) << b;
  EXPECT_EQ(StatusOf(gid), v1::FAILED);

  Answer again = Post(path, R"({"reason":"twice"})");
  ExpectError(again, 409, "FAILED_PRECONDITION");
  ExpectError(Post("/v1/transactions/" + gid + ":retryNow", ""), 409, "FAILED_PRECONDITION");
}

TEST_F(AdminApiE2ETest, RetryNowCallsAWaitingBranchAgainAtOnce) {
  std::string gid = SubmitWaitingSaga(Gid());
  int before = Attempts(gid, "01");
  ASSERT_GE(before, 1);
  Answer a = Post("/v1/transactions/" + gid + ":retryNow", "");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.body, "{}");
  // Its next retry was a minute away.
  EXPECT_TRUE(WaitUntil([&] { return Attempts(gid, "01") > before; }, absl::Seconds(30)))
      << Attempts(gid, "01");
  EXPECT_EQ(StatusOf(gid), v1::SUBMITTED);

  // The branch heals: one more retry finishes the saga.
  script_->Set(gid, "A1", {Ok()});
  ASSERT_EQ(Post("/v1/transactions/" + gid + ":retryNow", "{}").status, 200);
  EXPECT_TRUE(WaitStatus(gid, v1::SUCCEEDED));
  ExpectError(Post("/v1/transactions/" + gid + ":retryNow", "{\"all_waiting\":true}"), 400,
              "INVALID_ARGUMENT");
}

TEST_F(AdminApiE2ETest, APostFromAPageOfAnotherOriginIsRefused) {
  std::string gid = SubmitWaitingSaga(Gid());
  http_.set_header("Origin: http://elsewhere.example");
  ExpectError(Post("/v1/transactions/" + gid + ":forceStop", R"({"reason":"csrf"})"), 403,
              "PERMISSION_DENIED");
  ExpectError(Post("/v1/transactions/" + gid + ":retryNow", "{}"), 403, "PERMISSION_DENIED");
  EXPECT_EQ(Get("/v1/transactions/" + gid).status, 200);  // reading is harmless
  // The page's own origin is this host.
  http_.set_header(absl::StrCat("Origin: http://", dtmd_->http_address()));
  EXPECT_EQ(Post("/v1/transactions/" + gid + ":forceStop", R"({"reason":"same origin"})").status,
            200);
}

TEST_F(AdminApiE2ETest, ThePageIsServedWithItsTypesAndAPolicyWithoutInlineScript) {
  std::string page = RawGet(dtmd_->http_address(), "/");
  EXPECT_THAT(page, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(page, HasSubstr("Content-Type: text/html; charset=utf-8"));
  EXPECT_THAT(page, HasSubstr("Content-Security-Policy: default-src 'none'; script-src 'self';"));
  EXPECT_THAT(page, HasSubstr("X-Content-Type-Options: nosniff"));
  EXPECT_THAT(page, HasSubstr("<script src=\"/admin/app.js\""));
  EXPECT_THAT(page, Not(HasSubstr("unsafe-inline")));

  std::string js = RawGet(dtmd_->http_address(), "/admin/app.js");
  EXPECT_THAT(js, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(js, HasSubstr("Content-Type: text/javascript; charset=utf-8"));
  EXPECT_THAT(js, Not(HasSubstr("innerHTML")));
  std::string css = RawGet(dtmd_->http_address(), "/admin/style.css");
  EXPECT_THAT(css, HasSubstr("Content-Type: text/css; charset=utf-8"));
  std::string icon = RawGet(dtmd_->http_address(), "/admin/favicon.svg");
  EXPECT_THAT(icon, HasSubstr("Content-Type: image/svg+xml"));
  EXPECT_THAT(RawGet(dtmd_->http_address(), "/admin/nothing.js"), StartsWith("HTTP/1.1 404"));
  // DTM's HTTP API is still there beside it.
  EXPECT_EQ(http_.Get(Url("/api/ping")).status, 200);
}

// With --auth_tokens_file: the roles of dtm.v1.Coordinator.
constexpr char kAlice[] = "alice-token-0123456789";
constexpr char kBob[] = "bob-token-0123456789abc";
constexpr char kOps[] = "ops-token-abcdefghijkl";

class AdminApiAuthE2ETest : public test::LiveDtmdTest<AdminApiAuthE2ETest> {
 public:
  static std::vector<std::string> DtmdArgs() {
    std::string path = absl::StrCat(test::MakeTempDir(), "/tokens");
    std::ofstream(path) << kAlice << " alice submit\n"
                        << kBob << " bob submit\n"
                        << kOps << " ops admin\n";
    return {"--lease=1s", "--recovery_interval=100ms", absl::StrCat("--auth_tokens_file=", path)};
  }

 protected:
  static Answer GetAs(const std::string& token, const std::string& path) {
    HttpClient http;
    if (!token.empty()) http.set_header("Authorization: Bearer " + token);
    return ToAnswer(http.Get(absl::StrCat("http://", dtmd_->http_address(), path)));
  }
  static Answer PostAs(const std::string& token, const std::string& path, const std::string& body) {
    HttpClient http;
    http.set_header("Authorization: Bearer " + token);
    return ToAnswer(http.Post(absl::StrCat("http://", dtmd_->http_address(), path), body));
  }
};

TEST_F(AdminApiAuthE2ETest, TokensAndRolesAreThoseOfTheGrpcFace) {
  std::string gid = Gid();
  {
    auto alice = CoordinatorClient::Connect(dtmd_->address());
    alice->set_auth_token(kAlice);
    Saga saga(alice.get(), gid);
    saga.Add("", "").WaitResult().BranchHeader("authorization", "Bearer downstream-secret");
    auto r = saga.Submit();
    ASSERT_TRUE(r.ok()) << r.status();
  }
  const std::string one = "/v1/transactions/" + gid;

  ExpectError(GetAs("", "/v1/transactions"), 401, "UNAUTHENTICATED");
  ExpectError(GetAs("not-a-known-token-at-all", one), 401, "UNAUTHENTICATED");

  Answer mine = GetAs(kAlice, one);
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(mine.j["creator"], "alice");
  EXPECT_EQ(mine.j["options"]["branch_headers"]["authorization"], "(redacted)");
  Answer seen = GetAs(kOps, one);
  ASSERT_EQ(seen.status, 200) << seen.body;
  EXPECT_EQ(seen.j["options"]["branch_headers"]["authorization"], "Bearer downstream-secret");
  ExpectError(GetAs(kBob, one), 403, "PERMISSION_DENIED");

  auto listed = [](const Answer& a, const std::string& g) {
    if (a.status != 200 || !a.j.contains("transactions")) return false;
    for (const json& t : a.j["transactions"]) {
      if (t.value("gid", "") == g) return true;
    }
    return false;
  };
  EXPECT_TRUE(listed(GetAs(kAlice, "/v1/transactions?page_size=1000"), gid));
  EXPECT_TRUE(listed(GetAs(kOps, "/v1/transactions?page_size=1000"), gid));
  EXPECT_FALSE(listed(GetAs(kBob, "/v1/transactions?page_size=1000"), gid));

  // RetryNow: its creator may (here refused only because it is finished), nobody else.
  ExpectError(PostAs(kBob, one + ":retryNow", "{}"), 403, "PERMISSION_DENIED");
  ExpectError(PostAs(kAlice, one + ":retryNow", "{}"), 409, "FAILED_PRECONDITION");
  // ForceStop needs the admin role.
  ExpectError(PostAs(kAlice, one + ":forceStop", R"({"reason":"mine"})"), 403, "PERMISSION_DENIED");
  ExpectError(PostAs(kOps, one + ":forceStop", R"({"reason":"done already"})"), 409,
              "FAILED_PRECONDITION");
}

}  // namespace
}  // namespace dtm
