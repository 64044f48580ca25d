// What an untrusted client must not be able to do to dtmd through its APIs, each with the
// limit that stops it: make it dial something else than a TCP port by name (SSRF through
// resolver schemes), answer a List larger than it can hold, store headers no branch server
// would accept, grow a transaction without bound, or make it retry in a tight loop.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/saga.h"
#include "tests/support/http_client.h"
#include "tests/support/live_dtmd_test.h"
#include "tests/support/test_ca.h"

#if defined(__SANITIZE_ADDRESS__)
#define DTM_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DTM_UNDER_ASAN 1
#endif
#endif
#ifndef DTM_UNDER_ASAN
#define DTM_UNDER_ASAN 0
#endif

namespace dtm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kListBytes = 20000;

class HardeningE2ETest : public test::LiveDtmdTest<HardeningE2ETest> {
 public:
  static std::vector<std::string> DtmdArgs() {
    return {"--lease=1s",
            "--recovery_interval=100ms",
            absl::StrCat("--max_list_bytes=", kListBytes),
            "--max_header_bytes=3000",
            "--max_headers=4",
            "--max_steps=3",
            "--min_retry_interval=100ms",
            "--min_request_timeout=100ms",
            "--retry_all_interval=1h",
            "--verbose_errors=false"};
  }

 protected:
  absl::Status SubmitWith(const std::string& gid, const std::function<void(Saga&)>& change) {
    Saga saga(client_, gid);
    saga.Add("", "");
    change(saga);
    return saga.WaitResult().Submit().status();
  }
};

TEST_F(HardeningE2ETest, TargetsReachingBeyondATcpPortAreRefusedAndNothingIsStored) {
  for (const char* target :
       {"unix:/run/dtm.sock/a.B/C", "unix-abstract:dtm/a.B/C", "ipv4:127.0.0.1:1/a.B/C",
        "vsock:1:2/a.B/C", "dns://8.8.8.8/h:1/a.B/C", "h:0040121/a.B/C", "h:+40121/a.B/C",
        "user@h:1/a.B/C", "h%00:1/a.B/C", "h\n:1/a.B/C"}) {
    std::string gid = Gid();
    Saga saga(client_, gid);
    saga.Add(target, "");
    absl::Status st = saga.Submit().status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << target << ": " << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("steps[0].action '")) << target;
    EXPECT_EQ(client_->Query(gid).status().code(), absl::StatusCode::kNotFound) << target;
  }
  // DTM's HTTP API holds its targets to the same grammar.
  test::HttpClient http;
  std::string gid = Gid();
  test::HttpResult r = http.Post(
      absl::StrCat("http://", dtmd_->http_address(), "/api/dtmsvr/submit"),
      absl::StrCat(R"({"gid":")", gid,
                   R"(","trans_type":"saga","steps":[{"action":"http://10.0.0.1:0080/x"}]})"));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_THAT(r.body, HasSubstr("1..65535"));
  EXPECT_EQ(client_->Query(gid).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(HardeningE2ETest, BranchHeadersBeyondTheLimitsAreRefusedNamingTheFlag) {
  absl::Status big =
      SubmitWith(Gid(), [](Saga& s) { s.BranchHeader("x", std::string(3000, 'v')); });
  EXPECT_EQ(big.code(), absl::StatusCode::kResourceExhausted) << big;
  EXPECT_THAT(std::string(big.message()), HasSubstr("--max_header_bytes"));
  absl::Status many = SubmitWith(Gid(), [](Saga& s) {
    for (int i = 0; i < 5; ++i) s.BranchHeader(absl::StrCat("x-", i), "v");
  });
  EXPECT_EQ(many.code(), absl::StatusCode::kResourceExhausted) << many;
  EXPECT_THAT(std::string(many.message()), HasSubstr("--max_headers"));
  EXPECT_TRUE(SubmitWith(Gid(), [](Saga& s) { s.BranchHeader("x", "v"); }).ok());
}

TEST_F(HardeningE2ETest, RetryIntervalAndRequestTimeoutHaveFloors) {
  absl::Status fast = SubmitWith(Gid(), [](Saga& s) { s.RetryInterval(absl::Milliseconds(1)); });
  EXPECT_EQ(fast.code(), absl::StatusCode::kInvalidArgument) << fast;
  EXPECT_THAT(std::string(fast.message()), HasSubstr("--min_retry_interval"));
  absl::Status quick = SubmitWith(Gid(), [](Saga& s) { s.RequestTimeout(absl::Milliseconds(10)); });
  EXPECT_EQ(quick.code(), absl::StatusCode::kInvalidArgument) << quick;
  EXPECT_THAT(std::string(quick.message()), HasSubstr("--min_request_timeout"));
}

TEST_F(HardeningE2ETest, ATccStopsAcceptingBranchesAtMaxSteps) {
  std::string gid = Gid();
  v1::PrepareRequest prepare;
  prepare.set_gid(gid);
  prepare.set_trans_type(v1::TCC);
  ASSERT_TRUE(client_->Prepare(prepare).ok());
  for (int i = 1; i <= 4; ++i) {
    v1::RegisterBranchRequest reg;
    reg.set_gid(gid);
    reg.set_trans_type(v1::TCC);
    reg.set_branch_id(absl::StrCat("0", i));
    absl::Status st = client_->RegisterBranch(reg);
    if (i <= 3) {
      EXPECT_TRUE(st.ok()) << i << ": " << st;
    } else {
      EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
      EXPECT_THAT(std::string(st.message()), HasSubstr("--max_steps"));
    }
  }
  v1::AbortRequest abort;
  abort.set_gid(gid);
  abort.set_trans_type(v1::TCC);
  ASSERT_TRUE(client_->Abort(abort).ok());
  EXPECT_EQ(client_->Query(gid)->branches_size(), 6);  // three registered: cancel and confirm
}

TEST_F(HardeningE2ETest, ListOfLargeTransactionsIsPagedByBytes) {
  // 20 transactions of about 3 KB each; one page may hold about 6 of them.
  std::string prefix = Gid();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(SubmitWith(absl::StrCat(prefix, "-", i), [](Saga& s) {
                  s.BranchHeader("x", std::string(2900, 'v'));
                }).ok());
  }
  v1::ListRequest req;
  req.set_gid_prefix(prefix + "-");
  req.set_page_size(1000);
  std::set<std::string> seen;
  int pages = 0;
  for (;;) {
    auto page = client_->List(req);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    EXPECT_GE(page->transactions_size(), 1);
    EXPECT_LE(page->ByteSizeLong(), 2u * kListBytes);
    for (const auto& t : page->transactions()) seen.insert(t.gid());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
    ASSERT_LT(pages, 50);
  }
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_GE(pages, 3);
}

TEST_F(HardeningE2ETest, LastErrorDoesNotTellWhatListensAtAnAddress) {
  // A closed port and a port where something else than gRPC listens (dtmd's own HTTP API)
  // read the same.
  std::string closed = Gid();
  std::string http = Gid();
  for (const auto& [gid, target] :
       {std::pair<std::string, std::string>{closed, "127.0.0.1:1/a.B/C"},
        {http, absl::StrCat(dtmd_->http_address(), "/a.B/C")}}) {
    Saga saga(client_, gid);
    saga.Add(target, "").RetryInterval(absl::Seconds(60));
    ASSERT_TRUE(saga.Submit().ok());
  }
  std::vector<std::string> errors;
  for (const std::string& gid : {closed, http}) {
    ASSERT_TRUE(test::WaitUntil([&] {
      auto t = client_->Query(gid);
      return t.ok() && !t->branches(0).last_error().empty();
    }));
    errors.push_back(client_->Query(gid)->branches(0).last_error());
  }
  EXPECT_THAT(errors[0], HasSubstr("no gRPC answer from the branch"));
  EXPECT_EQ(errors[0].substr(errors[0].find(':')), errors[1].substr(errors[1].find(':')));
  for (const std::string& gid : {closed, http}) EXPECT_TRUE(client_->ForceStop(gid, "done").ok());
}

TEST_F(HardeningE2ETest, RetryNowOfAllWaitingRunsAtMostOncePerInterval) {
  auto first = client_->RetryAllWaiting();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::Status again = client_->RetryAllWaiting().status();
  EXPECT_EQ(again.code(), absl::StatusCode::kResourceExhausted) << again;
  EXPECT_THAT(std::string(again.message()), HasSubstr("--retry_all_interval"));
}

// A dtmd of its own: its bound counts every transaction in progress.
class AdmissionE2ETest : public test::LiveDtmdTest<AdmissionE2ETest> {
 public:
  static std::vector<std::string> DtmdArgs() {
    return {"--lease=1s", "--recovery_interval=100ms", "--max_active_transactions=3"};
  }
};

TEST_F(AdmissionE2ETest, NewTransactionsWaitWhileTooManyAreInProgress) {
  // Three sagas stuck on a closed port (each waits for its next retry, in memory: well
  // within --park_after): the bound.
  const std::string target = absl::StrCat("127.0.0.1:", test::ClosedPort(), "/a.B/C");
  auto stick_three = [&] {
    std::vector<std::string> gids;
    for (int i = 0; i < 3; ++i) {
      gids.push_back(Gid());
      Saga saga(client_, gids.back());
      saga.Add(target, "").RetryInterval(absl::Seconds(10));
      EXPECT_TRUE(saga.Submit().ok()) << gids.back();
    }
    return gids;
  };
  std::vector<std::string> stuck = stick_three();
  Saga more(client_, Gid());
  more.Add("", "");
  absl::Status refused = more.Submit().status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--max_active_transactions 3"));
  test::HttpClient http;
  test::HttpResult r =
      http.Post(absl::StrCat("http://", dtmd_->http_address(), "/api/dtmsvr/submit"),
                R"({"gid":"admission-http","trans_type":"saga","steps":[{"action":""}]})");
  EXPECT_EQ(r.status, 413) << r.body;
  // Commits of transactions already prepared are not refused (that would roll them back).
  std::string tcc = Gid();
  v1::PrepareRequest prepare;
  prepare.set_gid(tcc);
  prepare.set_trans_type(v1::TCC);
  EXPECT_EQ(client_->Prepare(prepare).code(), absl::StatusCode::kResourceExhausted);
  // Nothing accepted is lost: once they end, new ones are taken again.
  for (const std::string& gid : stuck) {
    ASSERT_TRUE(client_->ForceStop(gid, "test over").ok());
  }
  EXPECT_TRUE(test::WaitUntil([&] {
    Saga later(client_, Gid());
    later.Add("", "");
    return later.Submit().ok();
  }));
  for (const std::string& gid : stuck) EXPECT_EQ(StatusOf(gid), v1::FAILED);
  // A tcc prepared now is committed even while the bound is reached again.
  ASSERT_TRUE(client_->Prepare(prepare).ok());
  std::vector<std::string> more_stuck = stick_three();
  v1::SubmitRequest commit;
  commit.set_gid(tcc);
  commit.set_trans_type(v1::TCC);
  auto committed = client_->Submit(commit);
  EXPECT_TRUE(committed.ok()) << committed.status();
  for (const std::string& gid : more_stuck) EXPECT_TRUE(client_->ForceStop(gid, "test over").ok());
}

TEST_F(HardeningE2ETest, UndecodableRequestsCannotFloodTheLog) {
  // Query with a gid that is not UTF-8, as raw bytes: field 1, length 2, 0xff 0xfe.
  auto channel = grpc::CreateChannel(dtmd_->address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  const std::string bytes("\x0a\x02\xff\xfe", 4);
  for (int i = 0; i < 50; ++i) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, "/dtm.v1.Coordinator/Query", grpc::StubOptions(), &request, &response,
                   [&](const grpc::Status& s) {
                     status = s;
                     done.Notify();
                   });
    done.WaitForNotification();
    EXPECT_FALSE(status.ok()) << i;
  }
  // Still serving, and at most one protobuf line in the log for the 50 requests.
  EXPECT_TRUE(client_->Query("absent").status().code() == absl::StatusCode::kNotFound);
  std::string log = dtmd_->Log();
  size_t lines = 0;
  for (size_t at = log.find("libprotobuf"); at != std::string::npos;
       at = log.find("libprotobuf", at + 1)) {
    ++lines;
  }
  EXPECT_GE(lines, 1u) << log;
  EXPECT_LE(lines, 1u) << log;
}

// With --allowed_targets, a target outside the list is refused before anything is stored, on
// both faces; the listed branch services are called as usual.
class AllowListE2ETest : public test::LiveDtmdTest<AllowListE2ETest> {
 public:
  static std::vector<std::string> DtmdArgs() {
    return {"--lease=1s", "--recovery_interval=100ms", "--allowed_targets=127.0.0.1"};
  }
};

TEST_F(AllowListE2ETest, OnlyListedHostsAreCalled) {
  std::string gid = Gid();
  Saga refused(client_, gid);
  refused.Add(branches_->Target("A1"), "");
  refused.Add(absl::StrCat("localhost", branches_->Target("A2").substr(9)), "");
  absl::Status st = refused.Submit().status();
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("steps[1].action 'localhost:"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("--allowed_targets"));
  EXPECT_EQ(client_->Query(gid).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(branches_->CallsFor(gid).empty());

  test::HttpClient http;
  test::HttpResult r = http.Post(
      absl::StrCat("http://", dtmd_->http_address(), "/api/dtmsvr/submit"),
      absl::StrCat(R"({"gid":")", Gid(),
                   R"(","trans_type":"saga","steps":[{"action":"http://169.254.169.254/x"}]})"));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_THAT(r.body, HasSubstr("169.254.169.254"));

  std::string ok = Gid();
  Saga allowed(client_, ok);
  allowed.Add(branches_->Target("A1"), branches_->Target("C1"));
  auto done = allowed.WaitResult().Submit();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), v1::SUCCEEDED);
  EXPECT_EQ(branches_->NamesFor(ok), std::vector<std::string>{"A1"});
}

// A listener other machines can reach, with nothing to authenticate clients, is said loudly;
// a loopback one is not.
TEST(ListenerTest, APublicListenerWithoutProtectionIsWarnedAbout) {
  test::DtmdProcess open(test::TestStore(test::MakeTempDir()),
                         {"--listen=0.0.0.0:0", "--http_listen="});
  ASSERT_TRUE(open.Start().ok()) << open.Log();
  // Written right after the lines Start waits for.
  ASSERT_TRUE(test::WaitUntil([&] { return open.Log().find("WARNING") != std::string::npos; }))
      << open.Log();
  EXPECT_THAT(open.Log(), HasSubstr("WARNING: 0.0.0.0:0 accepts connections from other machines"));
  EXPECT_THAT(open.Log(), HasSubstr("set --allowed_targets"));
  EXPECT_EQ(open.Terminate(), 0);
  test::DtmdProcess local(test::TestStore(test::MakeTempDir()), {"--http_listen="});
  ASSERT_TRUE(local.Start().ok()) << local.Log();
  EXPECT_EQ(local.Terminate(), 0);  // the log is complete once dtmd has exited
  EXPECT_THAT(local.Log(), Not(HasSubstr("WARNING")));
}

// dtmd's DTM_* environment variables (how the Kubernetes manifests and the systemd unit set
// it up) are its flags: one the flag would refuse stops dtmd naming the variable, with the
// exit status a supervisor does not restart (2), as a malformed --store does; a valid one
// takes effect; the command line wins over it.
TEST(ConfigTest, EnvironmentVariablesAreCheckedAndAppliedLikeFlags) {
  const std::string store = test::TestStore(test::MakeTempDir());
  ASSERT_EQ(setenv("DTM_LEASE", "ten seconds", 1), 0);
  test::DtmdProcess bad(store);
  EXPECT_FALSE(bad.Start().ok());
  ASSERT_EQ(unsetenv("DTM_LEASE"), 0);
  ASSERT_TRUE(bad.exit_code().has_value()) << bad.Log();
  EXPECT_EQ(*bad.exit_code(), 2) << bad.Log();
  EXPECT_THAT(bad.Log(), HasSubstr("environment variable DTM_LEASE='ten seconds'"));

  test::DtmdProcess no_store("foo://x");
  EXPECT_FALSE(no_store.Start().ok());
  ASSERT_TRUE(no_store.exit_code().has_value()) << no_store.Log();
  EXPECT_EQ(*no_store.exit_code(), 2) << no_store.Log();
  EXPECT_THAT(no_store.Log(), HasSubstr("--store 'foo://x' is not a store URL"));

  ASSERT_EQ(setenv("DTM_MAX_STEPS", "1", 1), 0);
  ASSERT_EQ(setenv("DTM_MAX_HEADERS", "1", 1), 0);
  test::DtmdProcess dtmd(store, {"--max_headers=5"});
  absl::Status started = dtmd.Start();
  ASSERT_EQ(unsetenv("DTM_MAX_STEPS"), 0);
  ASSERT_EQ(unsetenv("DTM_MAX_HEADERS"), 0);
  ASSERT_TRUE(started.ok()) << dtmd.Log();
  auto client = CoordinatorClient::Connect(dtmd.address());
  Saga two(client.get(), "two-steps");
  two.Add("", "").Add("", "");
  absl::Status refused = two.Submit().status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--max_steps"));
  Saga headers(client.get(), "two-headers");
  headers.Add("", "");
  headers.BranchHeader("x-a", "1").BranchHeader("x-b", "2");
  EXPECT_TRUE(headers.Submit().ok());  // --max_headers=5 on the command line, not DTM_'s 1
}

// An HTTP address already in use fails the start even though the gRPC port was already up:
// dtmd exits 1 (not on a signal, nor hanging in its stop of what it had started) naming the
// address, and the next dtmd serves on the same store. (That the stop runs in order with work
// in flight is not shown here: nothing reaches the gRPC port in that moment.)
TEST(ListenerTest, AnHttpAddressInUseFailsTheStartCleanlyNamingIt) {
  int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // not inherited by dtmd
  ASSERT_GE(busy, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(busy, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));

  const std::string store = test::TestStore(test::MakeTempDir());
  test::DtmdProcess second(store, {absl::StrCat("--http_listen=", taken)});
  EXPECT_FALSE(second.Start().ok());
  close(busy);
  ASSERT_TRUE(second.exit_code().has_value()) << second.Log();
  EXPECT_EQ(*second.exit_code(), 1) << second.Log();
  EXPECT_THAT(second.Log(), HasSubstr(absl::StrCat("cannot listen for HTTP on '", taken, "'")));

  test::DtmdProcess next(store, {"--http_listen="});
  ASSERT_TRUE(next.Start().ok()) << next.Log();
  test::TestBranchServer branches;
  auto client = CoordinatorClient::Connect(next.address());
  Saga saga(client.get(), "after-a-failed-start");
  saga.Add(branches.Target("A1"), branches.Target("C1"));
  absl::StatusOr<v1::SubmitResponse> r = saga.WaitResult().Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  EXPECT_EQ(next.Terminate(), 0) << next.Log();
}

// A TCP connection to 127.0.0.1:`port`, or -1.
int ConnectToLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Connections up to dtmd's open-file limit make gRPC's accept4 fail with EMFILE; gRPC then
// never accepts again, though dtmd looks alive. dtmd notices (its listener check fails over
// new connections) and exits non-zero, for its supervisor to restart it.
// Runs dtmd with `args` at a low descriptor limit, fills its listener's backlog until accept
// fails with EMFILE, closes those connections and expects dtmd to notice and exit with 3.
void ExpectExitOnADeadListener(std::vector<std::string> args) {
  args.push_back("--listener_check_interval=300ms");
  args.push_back("--http_listen=");
  test::DtmdProcess dtmd(test::TestStore(test::MakeTempDir()), args);
  dtmd.set_open_file_limit(160);
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  const int port = std::stoi(dtmd.address().substr(dtmd.address().rfind(':') + 1));
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    // The kernel completes connections into the backlog whether or not dtmd accepts them.
    int fd = ConnectToLoopback(port);
    if (fd < 0) break;
    fds.push_back(fd);
  }
  ASSERT_TRUE(test::WaitUntil([&] {
    return dtmd.Log().find("Too many open files") != std::string::npos;
  })) << dtmd.Log();
  for (int fd : fds) close(fd);
  std::optional<int> code = dtmd.WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << dtmd.Log();
  EXPECT_EQ(*code, 3) << dtmd.Log();
  EXPECT_THAT(dtmd.Log(), HasSubstr("accepts no new connections"));
}

// Idle HTTP connections may take at most a quarter of dtmd's open-file limit: beyond that
// the HTTP listener closes new ones at once, and gRPC, the store and the branch channels keep
// the descriptors they need. (With 4096 allowed whatever the limit, a few hundred idle
// connections left gRPC's listener unable to accept and dtmd exited.)
TEST(ListenerTest, IdleHttpConnectionsCannotTakeTheDescriptorsGrpcNeeds) {
  test::DtmdProcess dtmd(test::TestStore(test::MakeTempDir()), {"--listener_check_interval=300ms"});
  dtmd.set_open_file_limit(256);  // at most 64 HTTP connections
  ASSERT_TRUE(dtmd.Start().ok()) << dtmd.Log();
  const std::string http = dtmd.http_address();
  const int port = std::stoi(http.substr(http.rfind(':') + 1));
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    int fd = ConnectToLoopback(port);
    ASSERT_GE(fd, 0) << i;
    fds.push_back(fd);
  }
  // Those over the bound are closed by dtmd: the client reads the end of the stream.
  std::set<int> closed;
  ASSERT_TRUE(test::WaitUntil([&] {
    for (int fd : fds) {
      char c;
      if (!closed.count(fd) && recv(fd, &c, 1, MSG_DONTWAIT) == 0) closed.insert(fd);
    }
    return closed.size() >= fds.size() - 64;
  })) << closed.size()
      << " of " << fds.size() << " closed\n"
      << dtmd.Log();
  auto client = CoordinatorClient::Connect(dtmd.address());  // a new gRPC connection
  Saga saga(client.get(), "while-http-is-full");
  saga.Add("", "");
  absl::StatusOr<v1::SubmitResponse> r = saga.WaitResult().Submit();
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << dtmd.Log();
  EXPECT_EQ(r->status(), v1::SUCCEEDED);
  for (int fd : fds) close(fd);
  EXPECT_EQ(dtmd.Terminate(), 0) << dtmd.Log();
}

// gRPC 1.51's accept path after EMFILE trips UBSan's vptr check inside libgrpc, and a process
// out of descriptors cannot write its sanitizer report: the g++ build runs these two.
TEST(ListenerTest, ADeadListenerMakesDtmdExitForItsSupervisor) {
  if (DTM_UNDER_ASAN) GTEST_SKIP() << "not under sanitizers";
  ExpectExitOnADeadListener({});
}

TEST(ListenerTest, ADeadTlsListenerIsNoticedWithoutAClientCertificate) {
  if (DTM_UNDER_ASAN) GTEST_SKIP() << "not under sanitizers";
  std::string dir = test::MakeTempDir();
  ASSERT_TRUE(test::MakeTestCa(dir));
  ExpectExitOnADeadListener({absl::StrCat("--tls_cert=", dir, "/srv.pem"),
                             absl::StrCat("--tls_key=", dir, "/srv.key"),
                             absl::StrCat("--tls_client_ca=", dir, "/ca.pem")});
}

}  // namespace
}  // namespace dtm
