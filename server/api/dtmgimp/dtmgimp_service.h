// DtmgimpService: DTM's own gRPC service, dtmgimp.Dtm, on the engine, served on the same port
// as dtm.v1.Coordinator: a third face of the same engine (beside dtm.v1 and DTM's HTTP API),
// so that Go services using DTM's dtmgrpc SDK work against dtmd by changing only the
// coordinator's address. A transaction started here is the one dtm.v1's Query and List show,
// and gids from either NewGid work on every face.
//
// Answers follow DTM's convention, which its SDKs read: OK; ABORTED (DTM's FAILURE) for a
// state change the transaction refuses (submit of a finished one, abort of a saga, register
// on an unknown or no longer prepared gid, another trans type for a known gid) and for a
// Submit with WaitResult whose transaction failed (message: its rollback reason);
// FAILED_PRECONDITION (DTM's ONGOING) for a Submit with WaitResult still running when its
// first round stalls. Bad input is INVALID_ARGUMENT naming DTM's field; RESOURCE_EXHAUSTED,
// PERMISSION_DENIED, UNAUTHENTICATED and UNAVAILABLE as on dtm.v1. DTM's workflow and topics
// (PrepareWorkflow, Subscribe, Unsubscribe, DeleteTopic) are UNIMPLEMENTED.
// With --auth_tokens_file every call needs "authorization: Bearer <token>" metadata, and
// callers without the admin role act only on their own transactions, as on the other faces.
//
// Thread-safe; handlers never block (the engine answers later, on its own threads).
#ifndef DTM_SERVER_API_DTMGIMP_DTMGIMP_SERVICE_H_
#define DTM_SERVER_API_DTMGIMP_DTMGIMP_SERVICE_H_

#include <utility>

#include "absl/status/statusor.h"
#include "dtmgimp.grpc.pb.h"
#include "server/api/common/auth.h"
#include "server/api/common/checks.h"
#include "server/api/http/dtm_json.h"
#include "server/engine/engine.h"

namespace dtm {

class DtmgimpService final : public dtmgimp::Dtm::CallbackService {
 public:
  DtmgimpService(Engine* engine, ApiLimits limits) : engine_(engine), limits_(std::move(limits)) {}

  grpc::ServerUnaryReactor* NewGid(grpc::CallbackServerContext* ctx,
                                   const google::protobuf::Empty* req,
                                   dtmgimp::DtmGidReply* resp) override;
  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx, const dtmgimp::DtmRequest* req,
                                   google::protobuf::Empty* resp) override;
  grpc::ServerUnaryReactor* Prepare(grpc::CallbackServerContext* ctx,
                                    const dtmgimp::DtmRequest* req,
                                    google::protobuf::Empty* resp) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx, const dtmgimp::DtmRequest* req,
                                  google::protobuf::Empty* resp) override;
  grpc::ServerUnaryReactor* RegisterBranch(grpc::CallbackServerContext* ctx,
                                           const dtmgimp::DtmBranchRequest* req,
                                           google::protobuf::Empty* resp) override;
  grpc::ServerUnaryReactor* PrepareWorkflow(grpc::CallbackServerContext* ctx,
                                            const dtmgimp::DtmRequest* req,
                                            dtmgimp::DtmProgressesReply* resp) override;
  grpc::ServerUnaryReactor* Subscribe(grpc::CallbackServerContext* ctx,
                                      const dtmgimp::DtmTopicRequest* req,
                                      google::protobuf::Empty* resp) override;
  grpc::ServerUnaryReactor* Unsubscribe(grpc::CallbackServerContext* ctx,
                                        const dtmgimp::DtmTopicRequest* req,
                                        google::protobuf::Empty* resp) override;
  grpc::ServerUnaryReactor* DeleteTopic(grpc::CallbackServerContext* ctx,
                                        const dtmgimp::DtmTopicRequest* req,
                                        google::protobuf::Empty* resp) override;

 private:
  // The transaction a Prepare or Submit describes, admitted (CheckAdmission) and stamped with
  // its creator.
  absl::StatusOr<Transaction> NewTransaction(const dtmgimp::DtmRequest& req, DtmRoute route,
                                             const Caller& caller) const;

  Engine* const engine_;
  const ApiLimits limits_;
};

}  // namespace dtm

#endif  // DTM_SERVER_API_DTMGIMP_DTMGIMP_SERVICE_H_
