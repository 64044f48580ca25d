#include "server/api/dtmgimp/dtmgimp_service.h"

#include <string>

#include "client/common/grpc_status.h"
#include "server/api/dtmgimp/dtmgimp_convert.h"
#include "server/api/grpc_call.h"
#include "server/api/http/dtm_json.h"

namespace dtm {
namespace {

// Finishes with what the engine answered, in this face's convention.
void FinishEngine(grpc::ServerUnaryReactor* reactor, const absl::Status& s) {
  reactor->Finish(ToGrpcStatus(ToDtmgimpStatus(s)));
}

grpc::ServerUnaryReactor* NoTopics(grpc::CallbackServerContext* ctx) {
  return FinishNow(
      ctx, absl::UnimplementedError("dtmd does not support DTM's topics: a msg's steps name their "
                                    "targets directly"));
}

}  // namespace

absl::StatusOr<Transaction> DtmgimpService::NewTransaction(const dtmgimp::DtmRequest& req,
                                                           DtmRoute route,
                                                           const Caller& caller) const {
  absl::StatusOr<Transaction> t = DtmRequestToTransaction(req, route, limits_);
  if (!t.ok()) return ToDtmgimpStatus(t.status());
  absl::Status admitted =
      CheckAdmission(route == DtmRoute::kSubmit ? &*t : nullptr, engine_->active_count(), limits_);
  if (!admitted.ok()) return admitted;
  t->creator = caller.name;
  return t;
}

grpc::ServerUnaryReactor* DtmgimpService::NewGid(grpc::CallbackServerContext* ctx,
                                                 const google::protobuf::Empty*,
                                                 dtmgimp::DtmGidReply* resp) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  resp->set_gid(::dtm::NewGid());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* DtmgimpService::Submit(grpc::CallbackServerContext* ctx,
                                                 const dtmgimp::DtmRequest* req,
                                                 google::protobuf::Empty*) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<Transaction> t = NewTransaction(*req, DtmRoute::kSubmit, *caller);
  if (!t.ok()) return FinishNow(ctx, t.status());
  TakeTraceContext(*ctx, *t);
  const bool wait = t->options.wait_result;
  auto* reactor = ctx->DefaultReactor();
  engine_->Submit(
      *std::move(t),
      [reactor, wait](absl::StatusOr<SubmitResult> r) {
        if (!r.ok()) return FinishEngine(reactor, r.status());
        reactor->Finish(
            ToGrpcStatus(DtmSubmitOutcome(r->gid, r->status, r->rollback_reason, wait)));
      },
      caller->actor());
  return reactor;
}

grpc::ServerUnaryReactor* DtmgimpService::Prepare(grpc::CallbackServerContext* ctx,
                                                  const dtmgimp::DtmRequest* req,
                                                  google::protobuf::Empty*) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<Transaction> t = NewTransaction(*req, DtmRoute::kPrepare, *caller);
  if (!t.ok()) return FinishNow(ctx, t.status());
  TakeTraceContext(*ctx, *t);
  auto* reactor = ctx->DefaultReactor();
  engine_->Prepare(
      *std::move(t), [reactor](const absl::Status& s) { FinishEngine(reactor, s); },
      caller->actor());
  return reactor;
}

grpc::ServerUnaryReactor* DtmgimpService::Abort(grpc::CallbackServerContext* ctx,
                                                const dtmgimp::DtmRequest* req,
                                                google::protobuf::Empty*) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<Transaction> t = DtmRequestToTransaction(*req, DtmRoute::kAbort, limits_);
  if (!t.ok()) return FinishNow(ctx, ToDtmgimpStatus(t.status()));
  auto* reactor = ctx->DefaultReactor();
  engine_->Abort(
      t->gid, t->trans_type, t->rollback_reason,
      [reactor](const absl::StatusOr<SubmitResult>& r) { FinishEngine(reactor, r.status()); },
      caller->actor());
  return reactor;
}

grpc::ServerUnaryReactor* DtmgimpService::RegisterBranch(grpc::CallbackServerContext* ctx,
                                                         const dtmgimp::DtmBranchRequest* req,
                                                         google::protobuf::Empty*) {
  absl::StatusOr<Caller> caller = CallerOfCall(*ctx, limits_.auth_tokens.get());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::StatusOr<BranchRegistration> r = DtmBranchRequestToRegistration(*req, limits_);
  if (!r.ok()) return FinishNow(ctx, r.status());
  r->actor = caller->actor();
  auto* reactor = ctx->DefaultReactor();
  engine_->RegisterBranch(*std::move(r),
                          [reactor](const absl::Status& s) { FinishEngine(reactor, s); });
  return reactor;
}

grpc::ServerUnaryReactor* DtmgimpService::PrepareWorkflow(grpc::CallbackServerContext* ctx,
                                                          const dtmgimp::DtmRequest*,
                                                          dtmgimp::DtmProgressesReply*) {
  return FinishNow(ctx, absl::UnimplementedError(
                            "dtmd does not support DTM's workflow transactions: use saga, tcc, "
                            "msg or xa"));
}

grpc::ServerUnaryReactor* DtmgimpService::Subscribe(grpc::CallbackServerContext* ctx,
                                                    const dtmgimp::DtmTopicRequest*,
                                                    google::protobuf::Empty*) {
  return NoTopics(ctx);
}

grpc::ServerUnaryReactor* DtmgimpService::Unsubscribe(grpc::CallbackServerContext* ctx,
                                                      const dtmgimp::DtmTopicRequest*,
                                                      google::protobuf::Empty*) {
  return NoTopics(ctx);
}

grpc::ServerUnaryReactor* DtmgimpService::DeleteTopic(grpc::CallbackServerContext* ctx,
                                                      const dtmgimp::DtmTopicRequest*,
                                                      google::protobuf::Empty*) {
  return NoTopics(ctx);
}

}  // namespace dtm
