// dns:/// targets against real gRPC servers on one port at two loopback addresses, behind one
// name written in /etc/hosts: calls reach every address of the name, and an address the name
// gains later is called after the channel is renewed (gRPC alone would not call it).
//
// The name is this test's own: the binary moves into a private mount namespace and bind-mounts
// a hosts file of its own over /etc/hosts (root only, as CI runs), which gRPC's resolver
// (c-ares in Debian's gRPC) reads on every resolution. The machine's /etc/hosts is untouched.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/generic_branch_server.h"
#include "server/branch/grpc/grpc_branch_caller.h"

namespace dtm {
namespace {

constexpr char kName[] = "pods.discovery.test";

std::string& HostsPath() {
  static std::string path;
  return path;
}

// Rewrites the test's hosts file in place: the bind mount shows the same file, so a rename
// would not be seen.
// `addresses`: what the name resolves to, space-separated.
void WriteHosts(const std::string& addresses) {
  std::string text = "127.0.0.1 localhost\n";
  for (absl::string_view a : absl::StrSplit(addresses, ' ', absl::SkipEmpty())) {
    absl::StrAppend(&text, a, " ", kName, "\n");
  }
  int fd = open(HostsPath().c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
}

// Enters a private mount namespace with a hosts file of the test's own over /etc/hosts. Runs
// before any test, while the process has one thread: the threads gRPC starts later inherit
// the namespace (a namespace entered by one thread of many would be that thread's alone).
class PrivateHosts : public ::testing::Environment {
 public:
  void SetUp() override {
    ASSERT_EQ(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                            std::filesystem::directory_iterator{}),
              1)
        << "the mount namespace must be entered while the process has one thread";
    ASSERT_EQ(unshare(CLONE_NEWNS), 0)
        << "this test needs root (CAP_SYS_ADMIN) to enter a private mount namespace, as CI "
           "has: unshare: "
        << std::strerror(errno);
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
        << std::strerror(errno);
    char path[] = "/tmp/dtm-hosts-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    close(fd);
    HostsPath() = path;
    WriteHosts("");
    ASSERT_EQ(mount(path, "/etc/hosts", nullptr, MS_BIND, nullptr), 0)
        << "bind-mounting a hosts file over /etc/hosts: " << std::strerror(errno);
  }
  void TearDown() override { unlink(HostsPath().c_str()); }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new PrivateHosts);

class GrpcDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StartServer(0, "127.0.0.1:0");
    port_ = std::stoi(servers_[0]->address().substr(servers_[0]->address().rfind(':') + 1));
    StartServer(1, absl::StrCat("127.0.0.2:", port_));
  }

  void StartServer(int i, const std::string& listen) {
    auto s = GenericBranchServer::Start(
        [this, i](const IncomingBranchCall&) {
          ++calls_[i];
          return BranchAnswer{};
        },
        listen);
    ASSERT_TRUE(s.ok()) << s.status();
    servers_[i] = *std::move(s);
  }

  BranchResult CallSync(GrpcBranchCaller& caller) const {
    BranchCall call;
    call.target = absl::StrCat("dns:///", kName, ":", port_, "/test.Branch/A");
    call.gid = "g";
    call.timeout = absl::Seconds(5);
    BranchResult out;
    absl::Notification done;
    caller.Call(call, [&](const BranchResult& r) {
      out = r;
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  // Calls for `d`, every call succeeding; whether server `i` got a call meanwhile.
  bool CallsReach(GrpcBranchCaller& caller, int i, absl::Duration d) {
    const int before = calls_[i];
    const absl::Time deadline = absl::Now() + d;
    while (absl::Now() < deadline) {
      BranchResult r = CallSync(caller);
      EXPECT_EQ(r.outcome, CallOutcome::kSuccess) << r.message;
      if (calls_[i] > before) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  std::unique_ptr<GenericBranchServer> servers_[2];
  std::atomic<int> calls_[2] = {0, 0};
  int port_ = 0;
};

TEST_F(GrpcDiscoveryTest, CallsReachEveryAddressOfTheName) {
  WriteHosts("127.0.0.1 127.0.0.2");
  GrpcBranchCaller caller;
  EXPECT_TRUE(CallsReach(caller, 0, absl::Seconds(20)));
  EXPECT_TRUE(CallsReach(caller, 1, absl::Seconds(20)));
  // Once both are connected, round-robin: every other call.
  const int before[2] = {calls_[0], calls_[1]};
  for (int i = 0; i < 20; ++i) ASSERT_EQ(CallSync(caller).outcome, CallOutcome::kSuccess);
  EXPECT_EQ(calls_[0] - before[0], 10);
  EXPECT_EQ(calls_[1] - before[1], 10);
}

// What gRPC (1.51) does by itself: the name is resolved when the channel starts, and again
// only after a lost connection, so an address the name gains is not called.
TEST_F(GrpcDiscoveryTest, WithoutRenewalAnAddressTheNameGainsIsNotCalled) {
  WriteHosts("127.0.0.1");
  GrpcBranchCallerOptions options;
  options.balanced_renew_interval = absl::InfiniteDuration();
  GrpcBranchCaller caller(options);
  ASSERT_EQ(CallSync(caller).outcome, CallOutcome::kSuccess);
  WriteHosts("127.0.0.1 127.0.0.2");
  EXPECT_FALSE(CallsReach(caller, 1, absl::Seconds(2)));
}

TEST_F(GrpcDiscoveryTest, AnAddressTheNameGainsIsCalledOnceTheChannelIsRenewed) {
  WriteHosts("127.0.0.1");
  GrpcBranchCallerOptions options;
  options.balanced_renew_interval = absl::Milliseconds(300);
  GrpcBranchCaller caller(options);
  ASSERT_EQ(CallSync(caller).outcome, CallOutcome::kSuccess);
  EXPECT_FALSE(CallsReach(caller, 1, absl::Milliseconds(500)));
  WriteHosts("127.0.0.1 127.0.0.2");  // a pod came
  EXPECT_TRUE(CallsReach(caller, 1, absl::Seconds(20)));
  EXPECT_GE(caller.renewals(), 1);
  EXPECT_EQ(caller.channel_count(), 1u);
  // And one that goes is no longer called after the next renewal.
  WriteHosts("127.0.0.2");
  ASSERT_TRUE(CallsReach(caller, 1, absl::Seconds(20)));
  const int64_t renewed = caller.renewals();
  while (caller.renewals() < renewed + 2)
    ASSERT_EQ(CallSync(caller).outcome, CallOutcome::kSuccess);
  const int first = calls_[0];
  for (int i = 0; i < 10; ++i) ASSERT_EQ(CallSync(caller).outcome, CallOutcome::kSuccess);
  EXPECT_EQ(calls_[0], first);
}

TEST_F(GrpcDiscoveryTest, AServerThatStopsIsPassedOverAndCalledAgainWhenBack) {
  WriteHosts("127.0.0.1 127.0.0.2");
  GrpcBranchCaller caller;
  ASSERT_TRUE(CallsReach(caller, 1, absl::Seconds(20)));
  servers_[1]->Shutdown();
  // A call racing the shutdown may fail; once gRPC saw the connection go, none does.
  for (int i = 0; i < 2000 && CallSync(caller).outcome != CallOutcome::kSuccess; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  const int first = calls_[0];
  for (int i = 0; i < 10; ++i) {
    BranchResult r = CallSync(caller);
    EXPECT_EQ(r.outcome, CallOutcome::kSuccess) << r.message;
  }
  EXPECT_EQ(calls_[0], first + 10);
  servers_[1].reset();
  StartServer(1, absl::StrCat("127.0.0.2:", port_));
  EXPECT_TRUE(CallsReach(caller, 1, absl::Seconds(20)));  // gRPC reconnects by itself
}

}  // namespace
}  // namespace dtm
