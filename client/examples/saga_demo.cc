// dtm-demo: runs a 3-step saga through a running dtmd against branch services hosted in this
// process, and prints what each branch saw.
//
//   dtm-demo                          # all steps succeed
//   dtm-demo --fail_step=2            # step 2 refuses: compensations 2, 1 run in reverse
//   dtm-demo --hang_step=2 --no_wait  # step 2 hangs; kill -9 dtmd, restart it, then
//   dtm-demo --query=<gid>            # ... see the saga finished by recovery
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/saga.h"
#include "tests/support/branch_server.h"

ABSL_FLAG(std::string, dtm, "127.0.0.1:36790", "dtmd address");
ABSL_FLAG(int, fail_step, 0, "step (1-3) whose action answers ABORTED (business failure)");
ABSL_FLAG(int, hang_step, 0, "step (1-3) whose first action call never answers");
ABSL_FLAG(bool, no_wait, false, "submit without wait_result and keep serving for 60 s");
ABSL_FLAG(std::string, query, "", "only print the transaction with this gid");

namespace {

void PrintTransaction(const dtm::v1::Transaction& t) {
  std::printf("gid %s  status %s  reason '%s'\n", t.gid().c_str(),
              dtm::v1::Status_Name(t.status()).c_str(), t.rollback_reason().c_str());
  for (const auto& b : t.branches()) {
    std::printf("  branch %s %-10s %-16s attempts %d  %s\n", b.branch_id().c_str(),
                dtm::v1::BranchOp_Name(b.op()).c_str(),
                dtm::v1::BranchStatus_Name(b.status()).c_str(), b.attempts(),
                b.last_error().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto client = dtm::CoordinatorClient::Connect(absl::GetFlag(FLAGS_dtm));
  if (!absl::GetFlag(FLAGS_query).empty()) {
    auto t = client->Query(absl::GetFlag(FLAGS_query));
    if (!t.ok()) {
      std::fprintf(stderr, "Query: %s\n", t.status().ToString().c_str());
      return 1;
    }
    PrintTransaction(*t);
    return 0;
  }

  const int fail_step = absl::GetFlag(FLAGS_fail_step);
  const int hang_step = absl::GetFlag(FLAGS_hang_step);
  dtm::testing::TestBranchServer service;
  service.SetBehavior([&](const dtm::testing::BranchCallRecord& c) {
    std::printf("  branch service: %-8s gid=%s branch_id=%s op=%s\n", c.name().c_str(),
                c.gid().c_str(), c.branch_id().c_str(), c.op().c_str());
    std::fflush(stdout);
    dtm::testing::BranchReply reply;
    if (c.name() == absl::StrCat("Action", fail_step)) {
      reply.status = grpc::Status(grpc::StatusCode::ABORTED, "insufficient funds");
    }
    if (c.name() == absl::StrCat("Action", hang_step)) {
      static std::atomic<bool> hung{false};
      if (!hung.exchange(true)) reply.hang = true;
    }
    return reply;
  });

  auto gid = client->NewGid();
  if (!gid.ok()) {
    std::fprintf(stderr, "NewGid: %s (is dtmd running at %s?)\n", gid.status().ToString().c_str(),
                 absl::GetFlag(FLAGS_dtm).c_str());
    return 1;
  }
  dtm::Saga saga(client.get(), *gid);
  for (int i = 1; i <= 3; ++i) {
    saga.Add(service.Target(absl::StrCat("Action", i)),
             service.Target(absl::StrCat("Compensate", i)), absl::StrCat("step ", i));
  }
  saga.WaitResult(!absl::GetFlag(FLAGS_no_wait)).RequestTimeout(absl::Seconds(30));
  std::printf("submitting saga %s (3 steps) to %s\n", gid->c_str(),
              absl::GetFlag(FLAGS_dtm).c_str());
  auto r = saga.Submit();
  if (!r.ok()) {
    std::fprintf(stderr, "Submit: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("Submit returned %s %s\n", dtm::v1::Status_Name(r->status()).c_str(),
              r->rollback_reason().c_str());
  if (absl::GetFlag(FLAGS_no_wait)) {
    std::printf("serving the branches for 60 s; query with: dtm-demo --query=%s\n", gid->c_str());
    std::fflush(stdout);
    absl::SleepFor(absl::Seconds(60));
  }
  auto t = client->Query(*gid);
  if (t.ok()) PrintTransaction(*t);
  return 0;
}
