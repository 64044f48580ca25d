// Tcc: runs a TCC global transaction from C++.
//
//   auto r = dtm::Tcc::Run(client, gid, [&](dtm::Tcc& tcc) -> absl::Status {
//     absl::Status s = tcc.CallBranch(req, "svc:50051/bank.Bank/TransOutTry",
//                                     "svc:50051/bank.Bank/TransOutConfirm",
//                                     "svc:50051/bank.Bank/TransOutCancel");
//     if (!s.ok()) return s;
//     return tcc.CallBranch(req, "svc:50052/bank.Bank/TransInTry", ...);
//   });
//
// Run prepares the tcc, runs the body, then submits it (the coordinator confirms every
// branch, last registered first) when the body returns OK, or aborts it (the coordinator
// cancels every registered branch) when the body returns an error or throws. CallBranch
// registers a branch's confirm and cancel first and then calls its Try with the dtm-*
// metadata, so a Try that ran always has its cancel registered.
//
// Nested TCC: inside a branch service's Try handler, Tcc::FromBranch(client, context) opens
// sub-branches of the same global transaction under the calling branch's id ("02" -> "0201",
// "0202"); they are confirmed or cancelled with the rest. Not thread-safe.
#ifndef DTM_CLIENT_TCC_H_
#define DTM_CLIENT_TCC_H_

#include <google/protobuf/message.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/branch.h"
#include "client/coordinator_client.h"

namespace dtm {

class Tcc {
 public:
  using Body = std::function<absl::Status(Tcc&)>;

  // Returns Submit's answer (its status says SUCCEEDED, or SUBMITTED while confirms still
  // run), ABORTED if the tcc was rolled back before the submit reached it (CommitAnswer), or
  // the body's error once the tcc was aborted (an exception is rethrown after it).
  static absl::StatusOr<v1::SubmitResponse> Run(CoordinatorClient* client, const std::string& gid,
                                                const Body& body,
                                                const v1::TransOptions& options = {});
  // From inside a tcc branch's Try: FAILED_PRECONDITION unless `ctx` carries a tcc call's
  // dtm-* metadata.
  static absl::StatusOr<Tcc> FromBranch(CoordinatorClient* client,
                                        const grpc::ServerContextBase& ctx);
  static absl::StatusOr<Tcc> FromBranch(CoordinatorClient* client, const BranchContext& branch);

  // Registers the next branch (confirm, cancel and payload) and calls `try_target` with the
  // payload. Returns the Try's status: ABORTED is the business refusing.
  absl::Status CallBranch(const std::string& payload, const std::string& try_target,
                          const std::string& confirm, const std::string& cancel,
                          std::string* response = nullptr);
  absl::Status CallBranch(const google::protobuf::Message& request, const std::string& try_target,
                          const std::string& confirm, const std::string& cancel,
                          google::protobuf::Message* response = nullptr);

  const std::string& gid() const { return gid_; }
  // The id the next CallBranch registers: parent id + two digits.
  std::string NextBranchId() const;

 private:
  Tcc(CoordinatorClient* client, std::string gid, std::string parent, std::string coordinator,
      absl::Duration try_timeout);

  CoordinatorClient* client_;
  std::string gid_;
  std::string parent_;       // "" at the top level
  std::string coordinator_;  // sent as dtm-dtm
  absl::Duration try_timeout_;
  int next_ = 1;
};

}  // namespace dtm

#endif  // DTM_CLIENT_TCC_H_
