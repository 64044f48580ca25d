#include "server/api/coordinator_service.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/common/grpc_status.h"
#include "server/api/convert.h"
#include "server/api/grpc_call.h"

namespace dtm {

void CoordinatorService::WhenOwner(grpc::ServerUnaryReactor* reactor, const Caller& caller,
                                   const std::string& gid, std::function<void()> op) {
  CheckOwnership(
      caller, gid,
      [this](const std::string& g, std::function<void(absl::StatusOr<Transaction>)> done) {
        engine_->Query(g, std::move(done));
      },
      [reactor, op = std::move(op)](const absl::Status& s) {
        if (!s.ok()) return reactor->Finish(ToGrpcStatus(s));
        op();
      });
}

grpc::ServerUnaryReactor* CoordinatorService::NewGid(grpc::CallbackServerContext* ctx,
                                                     const v1::NewGidRequest*,
                                                     v1::NewGidResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  resp->set_gid(::dtm::NewGid());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::Submit(grpc::CallbackServerContext* ctx,
                                                     const v1::SubmitRequest* req,
                                                     v1::SubmitResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<Transaction> txn = SubmitToTransaction(*req, limits_);
  if (!txn.ok()) return FinishNow(ctx, txn.status());
  absl::Status admitted = CheckAdmission(&*txn, engine_->active_count(), limits_);
  if (!admitted.ok()) return FinishNow(ctx, admitted);
  txn->creator = caller->name;
  TakeTraceContext(*ctx, *txn);
  auto* reactor = ctx->DefaultReactor();
  engine_->Submit(
      *std::move(txn),
      [reactor, resp](absl::StatusOr<SubmitResult> r) {
        if (r.ok()) {
          resp->set_gid(r->gid);
          resp->set_status(static_cast<v1::Status>(r->status));
          resp->set_rollback_reason(r->rollback_reason);
        }
        reactor->Finish(ToGrpcStatus(r.status()));
      },
      caller->actor());
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Prepare(grpc::CallbackServerContext* ctx,
                                                      const v1::PrepareRequest* req,
                                                      v1::PrepareResponse*) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<Transaction> txn = PrepareToTransaction(*req, limits_);
  if (!txn.ok()) return FinishNow(ctx, txn.status());
  absl::Status admitted = CheckAdmission(nullptr, engine_->active_count(), limits_);
  if (!admitted.ok()) return FinishNow(ctx, admitted);
  txn->creator = caller->name;
  TakeTraceContext(*ctx, *txn);
  auto* reactor = ctx->DefaultReactor();
  engine_->Prepare(
      *std::move(txn), [reactor](const absl::Status& st) { reactor->Finish(ToGrpcStatus(st)); },
      caller->actor());
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Abort(grpc::CallbackServerContext* ctx,
                                                    const v1::AbortRequest* req,
                                                    v1::AbortResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateAbort(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  engine_->Abort(
      req->gid(), static_cast<TransType>(req->trans_type()), req->reason(),
      [reactor, resp](absl::StatusOr<SubmitResult> r) {
        if (r.ok()) resp->set_status(static_cast<v1::Status>(r->status));
        reactor->Finish(ToGrpcStatus(r.status()));
      },
      caller->actor());
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::RegisterBranch(grpc::CallbackServerContext* ctx,
                                                             const v1::RegisterBranchRequest* req,
                                                             v1::RegisterBranchResponse*) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<BranchRegistration> op = ReadRegistration(*req, limits_);
  if (!op.ok()) return FinishNow(ctx, op.status());
  op->actor = caller->actor();
  auto* reactor = ctx->DefaultReactor();
  engine_->RegisterBranch(*std::move(op),
                          [reactor](const absl::Status& st) { reactor->Finish(ToGrpcStatus(st)); });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Query(grpc::CallbackServerContext* ctx,
                                                    const v1::QueryRequest* req,
                                                    v1::QueryResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateGid(req->gid());
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  engine_->Query(req->gid(), [reactor, resp, c = *caller](absl::StatusOr<Transaction> t) {
    absl::Status s = t.status();
    if (t.ok()) s = CheckCreator(c, *t);
    if (s.ok()) {
      RedactFor(c, *t);
      ToProto(*t, resp->mutable_transaction());
    }
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::List(grpc::CallbackServerContext* ctx,
                                                   const v1::ListRequest* req,
                                                   v1::ListResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<ListQuery> q = ListToQuery(*req, limits_);
  if (!q.ok()) return FinishNow(ctx, q.status());
  ScopeList(*caller, *q);
  auto* reactor = ctx->DefaultReactor();
  engine_->List(*std::move(q), [reactor, resp, c = *caller](absl::StatusOr<ListPage> page) {
    if (page.ok()) {
      for (Transaction& t : page->transactions) {
        RedactFor(c, t);
        ToProto(t, resp->add_transactions());
      }
      resp->set_next_page_token(page->next_page_token);
    }
    reactor->Finish(ToGrpcStatus(page.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ForceStop(grpc::CallbackServerContext* ctx,
                                                        const v1::ForceStopRequest* req,
                                                        v1::ForceStopResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = RequireAdmin(*caller, "ForceStop");
  if (valid.ok()) valid = ValidateGid(req->gid());
  if (valid.ok()) valid = CheckReason(req->reason(), "reason");
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  engine_->ForceStop(req->gid(), req->reason(), [reactor, resp](absl::StatusOr<Transaction> t) {
    if (t.ok()) ToProto(*t, resp->mutable_transaction());
    reactor->Finish(ToGrpcStatus(t.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::RetryNow(grpc::CallbackServerContext* ctx,
                                                       const v1::RetryNowRequest* req,
                                                       v1::RetryNowResponse* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  if (req->all_waiting()) {
    absl::Status valid = RequireAdmin(*caller, "RetryNow of all_waiting");
    if (valid.ok() && !req->gid().empty()) {
      valid = absl::InvalidArgumentError(absl::StrCat(
          "gid '", req->gid(), "' is set together with all_waiting: give one or the other"));
    }
    if (valid.ok()) {
      absl::MutexLock lock(&retry_all_mu_);
      absl::Time now = absl::Now();
      if (now < last_retry_all_ + limits_.retry_all_interval) {
        valid = absl::ResourceExhaustedError(absl::StrCat(
            "RetryNow of all_waiting ran ", absl::FormatDuration(now - last_retry_all_),
            " ago; it runs at most once per ", absl::FormatDuration(limits_.retry_all_interval),
            " (--retry_all_interval)"));
      } else {
        last_retry_all_ = now;
      }
    }
    if (!valid.ok()) return FinishNow(ctx, valid);
    auto* reactor = ctx->DefaultReactor();
    engine_->RetryAllWaiting([reactor, resp](absl::StatusOr<int64_t> n) {
      if (n.ok()) resp->set_count(*n);
      reactor->Finish(ToGrpcStatus(n.status()));
    });
    return reactor;
  }
  absl::Status valid = ValidateGid(req->gid());
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  WhenOwner(reactor, *caller, req->gid(), [this, reactor, req, resp] {
    engine_->RetryNow(req->gid(), [reactor, resp](const absl::Status& s) {
      if (s.ok()) resp->set_count(1);
      reactor->Finish(ToGrpcStatus(s));
    });
  });
  return reactor;
}

}  // namespace dtm
