// Helpers for branch services called by the coordinator: read the dtm-* metadata of an
// incoming call, and answer with the status codes the coordinator understands.
#ifndef DTM_CLIENT_BRANCH_H_
#define DTM_CLIENT_BRANCH_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "client/common/grpc_status.h"

namespace dtm {

// The dtm-* metadata of one branch call (same keys and values as DTM).
struct BranchContext {
  std::string gid;         // dtm-gid
  std::string trans_type;  // dtm-trans_type: saga, tcc, msg, xa
  std::string branch_id;   // dtm-branch_id: "01", "02", ...
  std::string op;   // dtm-op: action, compensate, try, confirm, cancel, msg, commit, rollback
  std::string dtm;  // dtm-dtm: the coordinator's address
  // dtm-phase2_url: an xa action's own target, which the branch registers as the target of
  // its commit and rollback. Value-initialised so that aggregate initialisations naming only
  // the fields above stay warning-free.
  std::string phase2_url{};

  // Reads the metadata of `ctx`; fields absent from it stay empty.
  static BranchContext From(const grpc::ServerContextBase& ctx);
  // Returns a client metadata value by key, or "".
  static std::string Header(const grpc::ServerContextBase& ctx, const std::string& key);
  bool valid() const { return !gid.empty() && !branch_id.empty() && !op.empty(); }
};

// A handler that computes an absl::Status answers with ToGrpcStatus(status)
// (client/common/grpc_status.h): OK, ABORTED and FAILED_PRECONDITION keep their meaning.

// SUCCESS: the branch did its work (or had done it before).
inline grpc::Status BranchSuccess() { return grpc::Status::OK; }
// FAILURE: the business refuses; the coordinator rolls the transaction back.
inline grpc::Status BranchFailure(const std::string& why) {
  return grpc::Status(grpc::StatusCode::ABORTED, why);
}
// ONGOING: not done yet; the coordinator asks again after retry_interval, without backoff.
inline grpc::Status BranchOngoing(const std::string& why = "ongoing") {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why);
}

}  // namespace dtm

#endif  // DTM_CLIENT_BRANCH_H_
