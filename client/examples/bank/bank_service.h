// BankService: the example bank's gRPC branch service. Every transfer leg goes through the
// branch barrier, in the same local transaction as its change to the account; an XA leg
// (TransOutXa, TransInXa) goes through dtm::XaBranch, which uses the same barrier table and
// registers the branch with the bank's coordinator.
//
// For tests it can misbehave on purpose: a FaultHook picks, per call, a fault to inject —
// refuse, fail transiently, answer ONGOING, lose the answer after the work committed, run a
// call twice at once, deliver a call again later (after its compensation, say), or answer
// only after the caller gave up.
#ifndef DTM_CLIENT_EXAMPLES_BANK_BANK_SERVICE_H_
#define DTM_CLIENT_EXAMPLES_BANK_BANK_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"
#include "client/coordinator_client.h"
#include "client/examples/bank/bank_store.h"
#include "client/pg/barrier.h"

namespace bank {

enum class Fault {
  kNone,
  kRefuse,        // ABORTED: the business refuses the work (actions and tries only), as it
                  // would for want of money: inside the barrier (or the XA branch), so a
                  // retry of work an earlier attempt did is answered as the barrier answers
                  // it (done, or waiting for the earlier attempt), not refused
  kTransient,     // UNAVAILABLE before any work
  kOngoing,       // FAILED_PRECONDITION (ONGOING) before any work
  kLoseResponse,  // does the work, commits, then answers UNAVAILABLE
  kDuplicate,     // runs the call twice concurrently
  kReplayLater,   // answers normally, and runs the same call again a little later
  kStall,         // does the work, then answers UNAVAILABLE only after stall() (past the
                  // caller's deadline: a branch that never answers)
};
// The fault for one incoming call; `op` is empty for QueryPrepared.
using FaultHook = std::function<Fault(const dtm::BranchContext& branch, const char* op)>;

class BankService final : public v1::Bank::Service {
 public:
  // What the barrier did, over all calls (replays included).
  struct Stats {
    int64_t ran = 0, duplicate = 0, null_compensation = 0, hanging = 0, refused = 0;
    int64_t injected = 0;  // faults injected
    // XA legs answered OK, by op: action (prepared, or found done), commit, rollback.
    int64_t xa_prepared = 0, xa_committed = 0, xa_rolled_back = 0;
  };

  // `coordinator` (which must outlive this) is where XA legs register; without one they
  // answer FAILED_PRECONDITION.
  BankService(BankStore store, std::string conninfo, FaultHook faults = nullptr,
              dtm::CoordinatorClient* coordinator = nullptr);
  ~BankService() override;  // waits for pending replays

  grpc::Status TransOut(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                        v1::TransferReply*) override;
  grpc::Status TransOutCompensate(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                                  v1::TransferReply*) override;
  grpc::Status TransIn(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                       v1::TransferReply*) override;
  grpc::Status TransInCompensate(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                                 v1::TransferReply*) override;
  grpc::Status TransOutTry(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                           v1::TransferReply*) override;
  grpc::Status TransOutConfirm(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                               v1::TransferReply*) override;
  grpc::Status TransOutCancel(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                              v1::TransferReply*) override;
  grpc::Status TransInTry(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                          v1::TransferReply*) override;
  grpc::Status TransInConfirm(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                              v1::TransferReply*) override;
  grpc::Status TransInCancel(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                             v1::TransferReply*) override;
  grpc::Status TransOutXa(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                          v1::TransferReply*) override;
  grpc::Status TransInXa(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                         v1::TransferReply*) override;
  grpc::Status QueryPrepared(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                             v1::TransferReply*) override;
  grpc::Status Balances(grpc::ServerContext* ctx, const v1::BalancesRequest* req,
                        v1::BalancesReply* reply) override;

  // One leg for the call described by `branch` (the gRPC methods above, and the HTTP face in
  // bank_http.h, both come here): validation, faults, the barrier.
  grpc::Status Leg(const dtm::BranchContext& branch, const v1::TransferRequest& req, Op op);
  // One XA leg (`op` kTransOutXa or kTransInXa): the action, or its commit or rollback.
  grpc::Status XaLeg(const dtm::BranchContext& branch, const v1::TransferRequest& req, Op op);
  // The back-check of a message whose local transaction ran in this bank's database.
  grpc::Status CheckPrepared(const dtm::BranchContext& branch);

  Stats stats() const;
  // Blocks until every scheduled replay ran.
  void DrainReplays();
  const BankStore& store() const { return store_; }
  // How long the kStall fault waits before answering (default 4 s).
  void set_stall(absl::Duration d) { stall_ = d; }
  ConnPool& pool() { return pool_; }

 private:
  // The leg behind the barrier, without faults; with `refuse`, the business refuses where it
  // would have done the work.
  absl::Status RunLeg(const dtm::BranchContext& branch, const v1::TransferRequest& req, Op op,
                      bool refuse);
  // The XA leg, without faults; `refuse` as for RunLeg.
  absl::Status RunXa(const dtm::BranchContext& branch, const v1::TransferRequest& req, Op op,
                     bool refuse);
  Fault PickFault(const dtm::BranchContext& branch, const char* op);
  // Runs `run_or_refuse(false)` (a leg's work, copied into a late replay) under the fault
  // picked for the call; kRefuse runs `run_or_refuse(true)`, only where `may_refuse`.
  grpc::Status WithFault(const dtm::BranchContext& branch, const char* op, bool may_refuse,
                         const std::function<absl::Status(bool refuse)>& run_or_refuse);

  const BankStore store_;
  ConnPool pool_;
  const FaultHook faults_;
  dtm::CoordinatorClient* const coordinator_;
  absl::Duration stall_ = absl::Seconds(4);
  std::atomic<int64_t> ran_{0}, duplicate_{0}, null_compensation_{0}, hanging_{0}, refused_{0},
      injected_{0}, xa_prepared_{0}, xa_committed_{0}, xa_rolled_back_{0};
  absl::Mutex mu_;
  int pending_replays_ ABSL_GUARDED_BY(mu_) = 0;  // detached replay threads still running
};

// Checks a transfer leg's fields: INVALID_ARGUMENT naming the field and its value.
grpc::Status ValidateTransfer(const v1::TransferRequest& req);

}  // namespace bank

#endif  // DTM_CLIENT_EXAMPLES_BANK_BANK_SERVICE_H_
