#include "client/examples/bank/bank_service.h"

#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/pg/xa.h"

namespace bank {
namespace {

// The injected kRefuse: what the business answers when it will not do the work.
absl::Status Refusal() { return absl::AbortedError("injected: the business refuses"); }

}  // namespace

grpc::Status ValidateTransfer(const v1::TransferRequest& req) {
  if (req.user_id().empty() || req.user_id().size() > 64) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("user_id \"", req.user_id(), "\" must be 1 to 64 bytes"));
  }
  if (req.amount() <= 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("amount ", req.amount(), " must be positive"));
  }
  return grpc::Status::OK;
}

BankService::BankService(BankStore store, std::string conninfo, FaultHook faults,
                         dtm::CoordinatorClient* coordinator)
    : store_(std::move(store)),
      pool_(std::move(conninfo)),
      faults_(std::move(faults)),
      coordinator_(coordinator) {}

BankService::~BankService() { DrainReplays(); }

void BankService::DrainReplays() {
  absl::MutexLock lock(&mu_);
  auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return pending_replays_ == 0; };
  mu_.Await(absl::Condition(&drained));
}

BankService::Stats BankService::stats() const {
  return {ran_.load(),         duplicate_.load(),    null_compensation_.load(),
          hanging_.load(),     refused_.load(),      injected_.load(),
          xa_prepared_.load(), xa_committed_.load(), xa_rolled_back_.load()};
}

Fault BankService::PickFault(const dtm::BranchContext& branch, const char* op) {
  Fault f = faults_ ? faults_(branch, op) : Fault::kNone;
  if (f != Fault::kNone) ++injected_;
  return f;
}

absl::Status BankService::RunLeg(const dtm::BranchContext& branch, const v1::TransferRequest& req,
                                 Op op, bool refuse) {
  absl::StatusOr<dtm::Barrier> barrier = dtm::Barrier::From(branch);
  if (!barrier.ok()) return barrier.status();
  absl::StatusOr<ConnPool::Lease> conn = pool_.Acquire();
  if (!conn.ok()) return conn.status();
  dtm::Barrier::Outcome outcome;
  absl::Status s = barrier->Call(
      conn->get(),
      [&](PGconn* tx) {
        if (refuse) return Refusal();
        return store_.Apply(tx, op, req.user_id(), req.amount(), branch);
      },
      &outcome);
  if (absl::IsAborted(s)) ++refused_;
  if (!s.ok()) return s;
  switch (outcome) {
    case dtm::Barrier::Outcome::kRan:
      ++ran_;
      break;
    case dtm::Barrier::Outcome::kDuplicate:
      ++duplicate_;
      break;
    case dtm::Barrier::Outcome::kNullCompensation:
      ++null_compensation_;
      break;
    case dtm::Barrier::Outcome::kHanging:
      ++hanging_;
      break;
  }
  return s;
}

absl::Status BankService::RunXa(const dtm::BranchContext& branch, const v1::TransferRequest& req,
                                Op op, bool refuse) {
  if (coordinator_ == nullptr && branch.op == "action") {
    return absl::FailedPreconditionError(
        "this bank has no coordinator to register XA branches with (bank-server --dtm)");
  }
  absl::StatusOr<dtm::XaBranch> xa = dtm::XaBranch::From(branch);
  if (!xa.ok()) return xa.status();
  // A row lock held by another XA transfer's prepared transaction is released only by its
  // phase 2; two transfers waiting for each other that way are a deadlock PostgreSQL cannot
  // see. Give up soon and let the client abort.
  xa->set_lock_timeout(absl::Seconds(1));
  absl::StatusOr<ConnPool::Lease> conn = pool_.Acquire();
  if (!conn.ok()) return conn.status();
  absl::Status s = xa->Handle(conn->get(), coordinator_, [&](PGconn* tx) {
    if (refuse) return Refusal();
    return store_.Apply(tx, op, req.user_id(), req.amount(), branch);
  });
  if (absl::IsAborted(s)) ++refused_;
  if (s.ok() && branch.op == "commit") {
    ++xa_committed_;
  } else if (s.ok() && branch.op == "rollback") {
    ++xa_rolled_back_;
  } else if (s.ok()) {
    ++xa_prepared_;
  }
  return s;
}

grpc::Status BankService::Leg(const dtm::BranchContext& branch, const v1::TransferRequest& req,
                              Op op) {
  grpc::Status valid = ValidateTransfer(req);
  if (!valid.ok()) return valid;
  return WithFault(branch, OpName(op), MayRefuse(op), [this, branch, req, op](bool refuse) {
    return RunLeg(branch, req, op, refuse);
  });
}

grpc::Status BankService::XaLeg(const dtm::BranchContext& branch, const v1::TransferRequest& req,
                                Op op) {
  absl::StatusOr<dtm::XaBranch> xa = dtm::XaBranch::From(branch);
  if (!xa.ok()) return dtm::ToGrpcStatus(xa.status());
  const bool action = xa->op() == "action";
  if (action) {  // phase 2 comes from dtmd with an empty request
    grpc::Status valid = ValidateTransfer(req);
    if (!valid.ok()) return valid;
  }
  return WithFault(branch, OpName(op), action,
                   [this, branch, req, op](bool refuse) { return RunXa(branch, req, op, refuse); });
}

grpc::Status BankService::WithFault(const dtm::BranchContext& branch, const char* op,
                                    bool may_refuse,
                                    const std::function<absl::Status(bool refuse)>& run_or_refuse) {
  auto run = [&run_or_refuse] { return run_or_refuse(false); };
  switch (PickFault(branch, op)) {
    case Fault::kNone:
      break;
    case Fault::kRefuse:
      if (may_refuse) return dtm::ToGrpcStatus(run_or_refuse(true));
      break;
    case Fault::kTransient:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: transient error");
    case Fault::kOngoing:
      return dtm::BranchOngoing("injected: ongoing");
    case Fault::kLoseResponse:
      run().IgnoreError();
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: response lost");
    case Fault::kStall:
      run().IgnoreError();
      absl::SleepFor(stall_);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: answered too late");
    case Fault::kDuplicate: {
      absl::Status twin;
      std::thread other([&] { twin = run(); });
      absl::Status mine = run();
      other.join();
      return dtm::ToGrpcStatus(mine);
    }
    case Fault::kReplayLater: {
      thread_local std::mt19937 rng(std::random_device{}());
      const int delay_ms = std::uniform_int_distribution<int>(20, 400)(rng);
      {
        absl::MutexLock lock(&mu_);
        ++pending_replays_;
      }
      // A copy: the replay runs after this call has returned.
      std::thread([this, replay = run_or_refuse, delay_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        replay(false).IgnoreError();
        absl::MutexLock lock(&mu_);
        --pending_replays_;
      }).detach();
      break;
    }
  }
  return dtm::ToGrpcStatus(run());
}

#define BANK_LEG(Method, OpValue)                                                            \
  grpc::Status BankService::Method(grpc::ServerContext* ctx, const v1::TransferRequest* req, \
                                   v1::TransferReply*) {                                     \
    return Leg(dtm::BranchContext::From(*ctx), *req, OpValue);                               \
  }
BANK_LEG(TransOut, Op::kTransOut)
BANK_LEG(TransOutCompensate, Op::kTransOutCompensate)
BANK_LEG(TransIn, Op::kTransIn)
BANK_LEG(TransInCompensate, Op::kTransInCompensate)
BANK_LEG(TransOutTry, Op::kTransOutTry)
BANK_LEG(TransOutConfirm, Op::kTransOutConfirm)
BANK_LEG(TransOutCancel, Op::kTransOutCancel)
BANK_LEG(TransInTry, Op::kTransInTry)
BANK_LEG(TransInConfirm, Op::kTransInConfirm)
BANK_LEG(TransInCancel, Op::kTransInCancel)
#undef BANK_LEG

grpc::Status BankService::TransOutXa(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                                     v1::TransferReply*) {
  return XaLeg(dtm::BranchContext::From(*ctx), *req, Op::kTransOutXa);
}
grpc::Status BankService::TransInXa(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                                    v1::TransferReply*) {
  return XaLeg(dtm::BranchContext::From(*ctx), *req, Op::kTransInXa);
}

grpc::Status BankService::QueryPrepared(grpc::ServerContext* ctx, const v1::TransferRequest*,
                                        v1::TransferReply*) {
  return CheckPrepared(dtm::BranchContext::From(*ctx));
}

grpc::Status BankService::CheckPrepared(const dtm::BranchContext& branch) {
  if (branch.gid.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "QueryPrepared: metadata dtm-gid is missing; is this a call from dtmd?");
  }
  Fault f = PickFault(branch, "QueryPrepared");
  if (f == Fault::kTransient) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: transient error");
  }
  if (f == Fault::kOngoing) return dtm::BranchOngoing("injected: ongoing");
  absl::StatusOr<ConnPool::Lease> conn = pool_.Acquire();
  if (!conn.ok()) return dtm::ToGrpcStatus(conn.status());
  absl::Status s = dtm::Barrier::ForMsg(branch.gid).QueryPrepared(conn->get());
  if (f == Fault::kLoseResponse) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: response lost");
  }
  return dtm::ToGrpcStatus(s);
}

grpc::Status BankService::Balances(grpc::ServerContext*, const v1::BalancesRequest*,
                                   v1::BalancesReply* reply) {
  absl::StatusOr<ConnPool::Lease> conn = pool_.Acquire();
  if (!conn.ok()) return dtm::ToGrpcStatus(conn.status());
  absl::StatusOr<std::vector<Account>> accounts = store_.Balances(conn->get());
  if (!accounts.ok()) return dtm::ToGrpcStatus(accounts.status());
  for (const Account& a : *accounts) {
    v1::Account* out = reply->add_accounts();
    out->set_user_id(a.user_id);
    out->set_balance(a.balance);
    out->set_frozen(a.frozen);
  }
  return grpc::Status::OK;
}

}  // namespace bank
