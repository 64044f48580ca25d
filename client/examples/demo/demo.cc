// dtm-demo: runs a saga, a tcc or a two-phase message through a running dtmd against branch
// services hosted in this process, and prints what each branch saw.
//
//   dtm-demo                          # a 3-step saga; all steps succeed
//   dtm-demo --fail_step=2            # step 2 refuses: compensations 2, 1 run in reverse
//   dtm-demo --hang_step=2 --no_wait  # step 2 hangs; kill -9 dtmd, restart it, then
//   dtm-demo --query=<gid>            # ... see the saga finished by recovery
//   dtm-demo --mode=tcc               # 2 branches: Try1, Try2, then Confirm2, Confirm1
//   dtm-demo --mode=tcc --fail_step=2 # Try2 refuses: Cancel2, Cancel1
//   dtm-demo --mode=msg               # prepare, local commit, submit: Deliver1, Deliver2
//   dtm-demo --mode=msg --skip_submit # "crash" before Submit: dtmd asks QueryPrepared, delivers
//   dtm-demo --mode=msg --skip_submit --rolled_back   # QueryPrepared says rolled back: dropped
#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/generic_branch_server.h"
#include "client/msg.h"
#include "client/saga.h"
#include "client/tcc.h"

ABSL_FLAG(std::string, dtm, "127.0.0.1:36790", "dtmd address");
ABSL_FLAG(int, fail_step, 0, "step (1-3) whose action answers ABORTED (business failure)");
ABSL_FLAG(int, hang_step, 0, "step (1-3) whose first action call never answers");
ABSL_FLAG(bool, no_wait, false, "submit without wait_result and keep serving for 60 s");
ABSL_FLAG(std::string, query, "", "only print the transaction with this gid");
ABSL_FLAG(std::string, mode, "saga", "saga, tcc or msg");
ABSL_FLAG(bool, skip_submit, false,
          "msg: prepare and 'commit locally', then never submit (as if the process died): the "
          "coordinator back-checks QueryPrepared after 3 s");
ABSL_FLAG(bool, rolled_back, false,
          "msg: QueryPrepared answers ABORTED (local transaction rolled back)");

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
  // The business services of this demo: one generic server answering every method by name.
  auto started = dtm::GenericBranchServer::Start([&](const dtm::IncomingBranchCall& c) {
    std::printf("  branch service: %-8s gid=%s branch_id=%s op=%s\n", c.name().c_str(),
                c.branch.gid.c_str(), c.branch.branch_id.c_str(), c.branch.op.c_str());
    std::fflush(stdout);
    dtm::BranchAnswer reply;
    if (c.name() == absl::StrCat("Action", fail_step) ||
        c.name() == absl::StrCat("Try", fail_step)) {
      reply.status = grpc::Status(grpc::StatusCode::ABORTED, "insufficient funds");
    }
    if (c.name() == "QueryPrepared" && absl::GetFlag(FLAGS_rolled_back)) {
      reply.status = grpc::Status(grpc::StatusCode::ABORTED, "local transaction rolled back");
    }
    if (c.name() == absl::StrCat("Action", hang_step)) {
      static std::atomic<bool> hung{false};
      if (!hung.exchange(true)) reply.hang = true;
    }
    return reply;
  });
  if (!started.ok()) {
    std::fprintf(stderr, "branch service: %s\n", started.status().ToString().c_str());
    return 1;
  }
  dtm::GenericBranchServer& service = **started;

  auto gid = client->NewGid();
  if (!gid.ok()) {
    std::fprintf(stderr, "NewGid: %s (is dtmd running at %s?)\n", gid.status().ToString().c_str(),
                 absl::GetFlag(FLAGS_dtm).c_str());
    return 1;
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  absl::StatusOr<dtm::v1::SubmitResponse> r;
  if (mode == "saga") {
    dtm::Saga saga(client.get(), *gid);
    for (int i = 1; i <= 3; ++i) {
      saga.Add(service.Target(absl::StrCat("Action", i)),
               service.Target(absl::StrCat("Compensate", i)), absl::StrCat("step ", i));
    }
    saga.WaitResult(!absl::GetFlag(FLAGS_no_wait)).RequestTimeout(absl::Seconds(30));
    std::printf("submitting saga %s (3 steps) to %s\n", gid->c_str(),
                absl::GetFlag(FLAGS_dtm).c_str());
    r = saga.Submit();
  } else if (mode == "tcc") {
    dtm::v1::TransOptions options;
    options.set_wait_result(true);
    std::printf("running tcc %s (2 branches) on %s\n", gid->c_str(),
                absl::GetFlag(FLAGS_dtm).c_str());
    r = dtm::Tcc::Run(
        client.get(), *gid,
        [&](dtm::Tcc& tcc) {
          for (int i = 1; i <= 2; ++i) {
            absl::Status s =
                tcc.CallBranch(absl::StrCat("branch ", i), service.Target(absl::StrCat("Try", i)),
                               service.Target(absl::StrCat("Confirm", i)),
                               service.Target(absl::StrCat("Cancel", i)));
            if (!s.ok()) return s;
          }
          return absl::OkStatus();
        },
        options);
    if (!r.ok()) {
      std::printf("the tcc body failed (%s): aborted\n", r.status().ToString().c_str());
      absl::SleepFor(absl::Milliseconds(500));  // let the cancels reach this process
      r = dtm::v1::SubmitResponse();
    }
  } else if (mode == "msg") {
    dtm::Msg msg(client.get(), *gid);
    msg.Add(service.Target("Deliver1"), "event 1").Add(service.Target("Deliver2"), "event 2");
    msg.options().set_wait_result(true);
    msg.options().mutable_timeout_to_fail()->set_seconds(3);
    std::printf("preparing msg %s (2 steps, back-check QueryPrepared) on %s\n", gid->c_str(),
                absl::GetFlag(FLAGS_dtm).c_str());
    absl::Status prepared = msg.Prepare(service.Target("QueryPrepared"));
    if (!prepared.ok()) {
      std::fprintf(stderr, "Prepare: %s\n", prepared.ToString().c_str());
      return 1;
    }
    std::printf("local transaction committed\n");
    if (absl::GetFlag(FLAGS_skip_submit)) {
      std::printf("not submitting (as if this process died); dtmd back-checks in 3 s...\n");
      std::fflush(stdout);
      absl::SleepFor(absl::Seconds(5));
      r = dtm::v1::SubmitResponse();
    } else {
      r = msg.Submit();
    }
  } else {
    std::fprintf(stderr, "--mode '%s' is not saga, tcc or msg\n", mode.c_str());
    return 2;
  }
  if (!r.ok()) {
    std::fprintf(stderr, "Submit: %s\n", r.status().ToString().c_str());
    return 1;
  }
  if (r->gid().empty()) {
    std::printf("\n");
  } else {
    std::printf("Submit returned %s %s\n", dtm::v1::Status_Name(r->status()).c_str(),
                r->rollback_reason().c_str());
  }
  if (absl::GetFlag(FLAGS_no_wait)) {
    std::printf("serving the branches for 60 s; query with: dtm-demo --query=%s\n", gid->c_str());
    std::fflush(stdout);
    absl::SleepFor(absl::Seconds(60));
  }
  auto t = client->Query(*gid);
  if (t.ok()) PrintTransaction(*t);
  return 0;
}
