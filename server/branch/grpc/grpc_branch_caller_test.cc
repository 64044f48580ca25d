#include "server/branch/grpc/grpc_branch_caller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "tests/support/branch_server.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;

BranchResult CallSync(GrpcBranchCaller& caller, const std::string& target) {
  BranchCall call;
  call.target = target;
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

TEST(GrpcBranchCallerTest, AnAnswerOverTheReceiveLimitFailsTheCallInsteadOfRetryingIt) {
  test::TestBranchServer branch;
  branch.SetBehavior([](const test::BranchCallRecord& c) {
    BranchAnswer a;
    a.body = std::string(c.name() == "Big" ? 4096 : 100, 'x');
    return a;
  });
  GrpcBranchCallerOptions options;
  options.max_answer_bytes = 1024;
  GrpcBranchCaller caller(options);
  EXPECT_EQ(CallSync(caller, branch.Target("Small")).outcome, CallOutcome::kSuccess);
  BranchResult big = CallSync(caller, branch.Target("Big"));
  EXPECT_EQ(big.outcome, CallOutcome::kFailure);
  EXPECT_THAT(big.message, HasSubstr("over the coordinator's receive limit"));
}

TEST(GrpcBranchCallerTest, ChannelsAreSharedPerNormalisedAuthorityAndBounded) {
  test::TestBranchServer branch;
  GrpcBranchCallerOptions options;
  options.max_channels = 3;
  GrpcBranchCaller caller(options);
  const std::string port = branch.address().substr(branch.address().rfind(':') + 1);
  // Spellings of one endpoint: one channel.
  for (const char* host : {"localhost", "LOCALHOST", "LocalHost"}) {
    EXPECT_EQ(CallSync(caller, absl::StrCat(host, ":", port, "/test.Branch/A")).outcome,
              CallOutcome::kSuccess);
  }
  EXPECT_EQ(caller.channel_count(), 1u);
  // Many endpoints: the least recently used idle channels close past the bound.
  for (int i = 1; i <= 20; ++i) {
    BranchResult r = CallSync(caller, absl::StrCat("127.0.0.", i, ":", port, "/test.Branch/B"));
    EXPECT_LE(caller.channel_count(), 3u) << i;
    if (i == 1) {
      EXPECT_EQ(r.outcome, CallOutcome::kSuccess);
    }
  }
  EXPECT_EQ(caller.channel_count(), 3u);
}

TEST(GrpcBranchCallerTest, OnlyTransportErrorsAreMadeGenericWithoutVerboseErrors) {
  grpc::Status refused(grpc::StatusCode::UNAVAILABLE, "failed to connect: Connection refused");
  BranchResult quiet = GrpcBranchCaller::Classify(refused, /*verbose=*/false);
  EXPECT_EQ(quiet.outcome, CallOutcome::kError);
  EXPECT_EQ(quiet.message,
            "UNAVAILABLE: no gRPC answer from the branch (dtmd --verbose_errors "
            "says why)");
  EXPECT_THAT(GrpcBranchCaller::Classify(refused, true).message, HasSubstr("Connection refused"));
  // A branch's own RESOURCE_EXHAUSTED is transient and keeps its words.
  BranchResult busy = GrpcBranchCaller::Classify(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "quota: 10 per second"), false);
  EXPECT_EQ(busy.outcome, CallOutcome::kError);
  EXPECT_EQ(busy.message, "RESOURCE_EXHAUSTED: quota: 10 per second");
  EXPECT_EQ(
      GrpcBranchCaller::Classify(grpc::Status(grpc::StatusCode::ABORTED, "no"), false).outcome,
      CallOutcome::kFailure);
}

TEST(GrpcBranchCallerTest, ATargetOutsideTheGrammarIsNeverDialled) {
  GrpcBranchCaller caller;
  BranchResult r = CallSync(caller, "unix:/run/dtm.sock/a.B/C");
  EXPECT_EQ(r.outcome, CallOutcome::kError);
  EXPECT_THAT(r.message, HasSubstr("scheme 'unix:'"));
  EXPECT_EQ(caller.channel_count(), 0u);
}

}  // namespace
}  // namespace dtm
