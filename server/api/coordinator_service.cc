#include "server/api/coordinator_service.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/common/grpc_status.h"
#include "server/api/convert.h"

namespace dtm {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* CoordinatorService::NewGid(grpc::CallbackServerContext* ctx,
                                                     const v1::NewGidRequest*,
                                                     v1::NewGidResponse* resp) {
  resp->set_gid(::dtm::NewGid());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::Submit(grpc::CallbackServerContext* ctx,
                                                     const v1::SubmitRequest* req,
                                                     v1::SubmitResponse* resp) {
  absl::StatusOr<Transaction> txn = SubmitToTransaction(*req, limits_);
  if (!txn.ok()) return FinishNow(ctx, txn.status());
  auto* reactor = ctx->DefaultReactor();
  engine_->Submit(*std::move(txn), [reactor, resp](absl::StatusOr<SubmitResult> r) {
    if (r.ok()) {
      resp->set_gid(r->gid);
      resp->set_status(static_cast<v1::Status>(r->status));
      resp->set_rollback_reason(r->rollback_reason);
    }
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Prepare(grpc::CallbackServerContext* ctx,
                                                      const v1::PrepareRequest* req,
                                                      v1::PrepareResponse*) {
  absl::StatusOr<Transaction> txn = PrepareToTransaction(*req, limits_);
  if (!txn.ok()) return FinishNow(ctx, txn.status());
  auto* reactor = ctx->DefaultReactor();
  engine_->Prepare(*std::move(txn),
                   [reactor](const absl::Status& st) { reactor->Finish(ToGrpcStatus(st)); });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Abort(grpc::CallbackServerContext* ctx,
                                                    const v1::AbortRequest* req,
                                                    v1::AbortResponse* resp) {
  absl::Status valid = ValidateAbort(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  engine_->Abort(req->gid(), static_cast<TransType>(req->trans_type()), req->reason(),
                 [reactor, resp](absl::StatusOr<SubmitResult> r) {
                   if (r.ok()) resp->set_status(static_cast<v1::Status>(r->status));
                   reactor->Finish(ToGrpcStatus(r.status()));
                 });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::RegisterBranch(grpc::CallbackServerContext* ctx,
                                                             const v1::RegisterBranchRequest* req,
                                                             v1::RegisterBranchResponse*) {
  absl::StatusOr<BranchRegistration> op = ReadRegistration(*req, limits_);
  if (!op.ok()) return FinishNow(ctx, op.status());
  auto* reactor = ctx->DefaultReactor();
  engine_->RegisterBranch(*std::move(op),
                          [reactor](const absl::Status& st) { reactor->Finish(ToGrpcStatus(st)); });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Query(grpc::CallbackServerContext* ctx,
                                                    const v1::QueryRequest* req,
                                                    v1::QueryResponse* resp) {
  absl::Status valid = ValidateGid(req->gid());
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  engine_->Query(req->gid(), [reactor, resp](absl::StatusOr<Transaction> t) {
    if (t.ok()) ToProto(*t, resp->mutable_transaction());
    reactor->Finish(ToGrpcStatus(t.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::List(grpc::CallbackServerContext* ctx,
                                                   const v1::ListRequest* req,
                                                   v1::ListResponse* resp) {
  absl::StatusOr<ListQuery> q = ListToQuery(*req, limits_);
  if (!q.ok()) return FinishNow(ctx, q.status());
  auto* reactor = ctx->DefaultReactor();
  engine_->List(*std::move(q), [reactor, resp](absl::StatusOr<ListPage> page) {
    if (page.ok()) {
      for (const Transaction& t : page->transactions) ToProto(t, resp->add_transactions());
      resp->set_next_page_token(page->next_page_token);
    }
    reactor->Finish(ToGrpcStatus(page.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ForceStop(grpc::CallbackServerContext* ctx,
                                                        const v1::ForceStopRequest* req,
                                                        v1::ForceStopResponse* resp) {
  absl::Status valid = ValidateGid(req->gid());
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
  auto* reactor = ctx->DefaultReactor();
  if (req->all_waiting()) {
    if (!req->gid().empty()) {
      reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "gid '", req->gid(), "' is set together with all_waiting: give one or the other"))));
      return reactor;
    }
    engine_->RetryAllWaiting([reactor, resp](absl::StatusOr<int64_t> n) {
      if (n.ok()) resp->set_count(*n);
      reactor->Finish(ToGrpcStatus(n.status()));
    });
    return reactor;
  }
  absl::Status valid = ValidateGid(req->gid());
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  engine_->RetryNow(req->gid(), [reactor, resp](const absl::Status& s) {
    if (s.ok()) resp->set_count(1);
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

}  // namespace dtm
