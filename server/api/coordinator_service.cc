#include "server/api/coordinator_service.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/api/convert.h"

namespace dtm {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

absl::Status NotYet(const char* rpc) {
  return absl::UnimplementedError(
      absl::StrCat(rpc, " is not implemented yet: TCC and two-phase messages come later"));
}

}  // namespace

std::string GenerateGid() {
  thread_local absl::BitGen gen;
  // Time-ordered prefix (readable, sorts by creation) + 64 random bits.
  return absl::StrFormat("%x%016x", absl::ToUnixMicros(absl::Now()), absl::Uniform<uint64_t>(gen));
}

grpc::ServerUnaryReactor* CoordinatorService::NewGid(grpc::CallbackServerContext* ctx,
                                                     const v1::NewGidRequest*,
                                                     v1::NewGidResponse* resp) {
  resp->set_gid(GenerateGid());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorService::Submit(grpc::CallbackServerContext* ctx,
                                                     const v1::SubmitRequest* req,
                                                     v1::SubmitResponse* resp) {
  absl::StatusOr<Transaction> txn = SubmitToTransaction(*req, limits_);
  if (absl::IsUnimplemented(txn.status()) && ValidateGid(req->gid()).ok()) {
    // A mode not built yet; but a gid taken by another type is ALREADY_EXISTS either way.
    auto* reactor = ctx->DefaultReactor();
    engine_->Query(req->gid(), [reactor, type = req->trans_type(),
                                unimplemented = txn.status()](absl::StatusOr<Transaction> t) {
      if (t.ok() && static_cast<int>(t->trans_type) != static_cast<int>(type)) {
        reactor->Finish(ToGrpcStatus(absl::AlreadyExistsError(
            absl::StrCat("gid '", t->gid, "' already exists as a ", TransTypeName(t->trans_type),
                         " transaction, not a ", v1::TransType_Name(type)))));
        return;
      }
      reactor->Finish(ToGrpcStatus(unimplemented));
    });
    return reactor;
  }
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
                                                      const v1::PrepareRequest*,
                                                      v1::PrepareResponse*) {
  return FinishNow(ctx, NotYet("Prepare"));
}

grpc::ServerUnaryReactor* CoordinatorService::Abort(grpc::CallbackServerContext* ctx,
                                                    const v1::AbortRequest*, v1::AbortResponse*) {
  return FinishNow(ctx, NotYet("Abort"));
}

grpc::ServerUnaryReactor* CoordinatorService::RegisterBranch(grpc::CallbackServerContext* ctx,
                                                             const v1::RegisterBranchRequest*,
                                                             v1::RegisterBranchResponse*) {
  return FinishNow(ctx, NotYet("RegisterBranch"));
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
  if (valid.ok() && req->reason().size() > 1024) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("reason is ", req->reason().size(), " characters, more than 1024"));
  }
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
                                                       v1::RetryNowResponse*) {
  absl::Status valid = ValidateGid(req->gid());
  if (!valid.ok()) return FinishNow(ctx, valid);
  auto* reactor = ctx->DefaultReactor();
  engine_->RetryNow(req->gid(), [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  return reactor;
}

}  // namespace dtm
