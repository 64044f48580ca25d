// ProtocolRouter: the BranchCaller the engine uses. It sends a call to the HTTP caller when its
// target is an http:// or https:// URL and to the gRPC caller otherwise, so one transaction
// may mix both kinds of branches. Thread-safe.
#ifndef DTM_SERVER_BRANCH_PROTOCOL_ROUTER_H_
#define DTM_SERVER_BRANCH_PROTOCOL_ROUTER_H_

#include <functional>
#include <utility>

#include "client/common/target.h"
#include "server/branch/branch_caller.h"

namespace dtm {

class ProtocolRouter final : public BranchCaller {
 public:
  ProtocolRouter(BranchCaller* grpc, BranchCaller* http) : grpc_(grpc), http_(http) {}

  void Call(BranchCall call, std::function<void(BranchResult)> done) override {
    BranchCaller* to = IsHttpTarget(call.target) ? http_ : grpc_;
    to->Call(std::move(call), std::move(done));
  }
  void Shutdown() override {
    grpc_->Shutdown();
    http_->Shutdown();
  }

 private:
  BranchCaller* const grpc_;
  BranchCaller* const http_;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_PROTOCOL_ROUTER_H_
