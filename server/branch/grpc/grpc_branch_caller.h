// GrpcBranchCaller: calls branches through a generic stub with raw byte buffers (the
// coordinator never decodes business messages), asynchronously with the callback API, over
// one cached channel per host:port.
//
// Result mapping (DTM's): OK -> success, ABORTED -> failure, FAILED_PRECONDITION -> ongoing,
// anything else -> transient error. Thread-safe.
#ifndef DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_
#define DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/branch/branch_caller.h"

namespace dtm {

class GrpcBranchCaller final : public BranchCaller {
 public:
  GrpcBranchCaller();
  ~GrpcBranchCaller() override;

  void Call(BranchCall call, std::function<void(BranchResult)> done) override;
  void Shutdown() override;

  // Maps a gRPC status from a branch to its outcome.
  static BranchResult Classify(const grpc::Status& status);

 private:
  struct InFlight;
  grpc::GenericStub* StubFor(const std::string& authority) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<grpc::GenericStub>> stubs_ ABSL_GUARDED_BY(mu_);
  std::set<InFlight*> in_flight_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_
