// CoordinatorService: the dtm.v1.Coordinator gRPC service on the callback API. Handlers
// validate, hand the work to the Engine and return; the reactor is finished later from the
// thread that completes the work. No handler blocks on the store or a branch call.
#ifndef DTM_SERVER_API_COORDINATOR_SERVICE_H_
#define DTM_SERVER_API_COORDINATOR_SERVICE_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dtm/v1/coordinator.grpc.pb.h"
#include "server/api/common/auth.h"
#include "server/api/validation.h"
#include "server/engine/engine.h"

namespace dtm {

class CoordinatorService final : public v1::Coordinator::CallbackService {
 public:
  CoordinatorService(Engine* engine, ApiLimits limits)
      : engine_(engine), limits_(std::move(limits)) {}

  grpc::ServerUnaryReactor* NewGid(grpc::CallbackServerContext* ctx, const v1::NewGidRequest* req,
                                   v1::NewGidResponse* resp) override;
  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx, const v1::SubmitRequest* req,
                                   v1::SubmitResponse* resp) override;
  grpc::ServerUnaryReactor* Prepare(grpc::CallbackServerContext* ctx, const v1::PrepareRequest* req,
                                    v1::PrepareResponse* resp) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx, const v1::AbortRequest* req,
                                  v1::AbortResponse* resp) override;
  grpc::ServerUnaryReactor* RegisterBranch(grpc::CallbackServerContext* ctx,
                                           const v1::RegisterBranchRequest* req,
                                           v1::RegisterBranchResponse* resp) override;
  grpc::ServerUnaryReactor* Query(grpc::CallbackServerContext* ctx, const v1::QueryRequest* req,
                                  v1::QueryResponse* resp) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx, const v1::ListRequest* req,
                                 v1::ListResponse* resp) override;
  grpc::ServerUnaryReactor* ForceStop(grpc::CallbackServerContext* ctx,
                                      const v1::ForceStopRequest* req,
                                      v1::ForceStopResponse* resp) override;
  grpc::ServerUnaryReactor* RetryNow(grpc::CallbackServerContext* ctx,
                                     const v1::RetryNowRequest* req,
                                     v1::RetryNowResponse* resp) override;

 private:
  // Runs `op` once `caller` may act on `gid` (auth.h's CheckOwnership); otherwise finishes
  // `reactor` with the refusal. For RetryNow, which only moves a retry earlier: the operations
  // that change a transaction are held to their caller by the engine, where they touch it.
  void WhenOwner(grpc::ServerUnaryReactor* reactor, const Caller& caller, const std::string& gid,
                 std::function<void()> op);

  Engine* const engine_;
  const ApiLimits limits_;
  absl::Mutex retry_all_mu_;
  absl::Time last_retry_all_ ABSL_GUARDED_BY(retry_all_mu_) = absl::InfinitePast();
};

}  // namespace dtm

#endif  // DTM_SERVER_API_COORDINATOR_SERVICE_H_
