#include "client/examples/bank/bank_service.h"

#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"

namespace bank {

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

BankService::BankService(BankStore store, std::string conninfo, FaultHook faults)
    : store_(std::move(store)), pool_(std::move(conninfo)), faults_(std::move(faults)) {}

BankService::~BankService() { DrainReplays(); }

void BankService::DrainReplays() {
  absl::MutexLock lock(&mu_);
  auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return pending_replays_ == 0; };
  mu_.Await(absl::Condition(&drained));
}

BankService::Stats BankService::stats() const {
  return {ran_.load(),     duplicate_.load(), null_compensation_.load(),
          hanging_.load(), refused_.load(),   injected_.load()};
}

Fault BankService::PickFault(const dtm::BranchContext& branch, const char* op) {
  Fault f = faults_ ? faults_(branch, op) : Fault::kNone;
  if (f != Fault::kNone) ++injected_;
  return f;
}

absl::Status BankService::RunLeg(const dtm::BranchContext& branch, const v1::TransferRequest& req,
                                 Op op) {
  absl::StatusOr<dtm::Barrier> barrier = dtm::Barrier::From(branch);
  if (!barrier.ok()) return barrier.status();
  absl::StatusOr<ConnPool::Lease> conn = pool_.Acquire();
  if (!conn.ok()) return conn.status();
  dtm::Barrier::Outcome outcome;
  absl::Status s = barrier->Call(
      conn->get(),
      [&](PGconn* tx) { return store_.Apply(tx, op, req.user_id(), req.amount(), branch); },
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

grpc::Status BankService::Leg(const dtm::BranchContext& branch, const v1::TransferRequest& req,
                              Op op) {
  grpc::Status valid = ValidateTransfer(req);
  if (!valid.ok()) return valid;
  switch (PickFault(branch, OpName(op))) {
    case Fault::kNone:
      break;
    case Fault::kRefuse:
      if (MayRefuse(op)) {
        ++refused_;
        return grpc::Status(grpc::StatusCode::ABORTED, "injected: the business refuses");
      }
      break;
    case Fault::kTransient:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: transient error");
    case Fault::kOngoing:
      return dtm::BranchOngoing("injected: ongoing");
    case Fault::kLoseResponse:
      RunLeg(branch, req, op).IgnoreError();
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: response lost");
    case Fault::kDuplicate: {
      absl::Status twin;
      std::thread other([&] { twin = RunLeg(branch, req, op); });
      absl::Status mine = RunLeg(branch, req, op);
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
      std::thread([this, branch, req, op, delay_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        RunLeg(branch, req, op).IgnoreError();
        absl::MutexLock lock(&mu_);
        --pending_replays_;
      }).detach();
      break;
    }
  }
  return dtm::ToGrpcStatus(RunLeg(branch, req, op));
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
