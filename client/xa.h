// Xa: runs an XA global transaction from C++ (the client side, DTM's "TM").
//
//   auto r = dtm::Xa::Run(client, gid, [&](dtm::Xa& xa) -> absl::Status {
//     absl::Status s = xa.CallBranch(req, "svc:50051/bank.v1.Bank/TransOutXa");
//     if (!s.ok()) return s;
//     return xa.CallBranch(req, "svc:50052/bank.v1.Bank/TransInXa");
//   });
//
// Run prepares the global transaction, runs the body, then submits it when the body returns
// OK or aborts it when the body returns an error or throws. Each CallBranch calls one branch
// service with op "action": the service does its work in a local transaction of its own
// database, registers itself with the coordinator and PREPAREs that transaction (see
// client/pg/xa.h), holding its row locks. On Submit the coordinator calls every registered
// branch with op "commit", on Abort (or once timeout_to_fail passes with the client gone) with
// op "rollback", both at the target the branch registered: the one CallBranch called, sent to
// it as dtm-phase2_url.
//
// A body must return CallBranch's error (or another one) when a branch fails: a branch that
// answered an error may still have registered, and only an Abort rolls it back. A client
// that drives the steps itself calls Begin, CallBranch, then Submit or Abort; one that dies
// between them leaves the transaction PREPARED, and the coordinator aborts it once its
// timeout_to_fail passes. Not thread-safe: one body calls its branches one after the other.
#ifndef DTM_CLIENT_XA_H_
#define DTM_CLIENT_XA_H_

#include <google/protobuf/message.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/coordinator_client.h"

namespace dtm {

class Xa {
 public:
  using Body = std::function<absl::Status(Xa&)>;

  // Returns Submit's answer (its status says SUCCEEDED, or SUBMITTED while commits still
  // run), ABORTED if it was rolled back before the submit reached it (its timeout_to_fail
  // passed: CommitAnswer), or the body's error once the transaction was aborted (an exception
  // is rethrown after the Abort).
  static absl::StatusOr<v1::SubmitResponse> Run(CoordinatorClient* client, const std::string& gid,
                                                const Body& body,
                                                const v1::TransOptions& options = {});

  // Run's steps, for a client that drives them itself. Begin prepares the transaction.
  static absl::StatusOr<Xa> Begin(CoordinatorClient* client, const std::string& gid,
                                  const v1::TransOptions& options = {});
  // The coordinator commits every registered branch (with options.wait_result, after they
  // did). ABORTED if the transaction was rolled back first (CommitAnswer).
  absl::StatusOr<v1::SubmitResponse> Submit();
  // The coordinator rolls back every registered branch; `reason` is kept as the
  // transaction's rollback_reason.
  absl::Status Abort(const std::string& reason);

  // Calls `target` with op action and the next branch id. Returns the branch's status:
  // ABORTED is the business refusing (or the global transaction no longer PREPARED).
  absl::Status CallBranch(const std::string& payload, const std::string& target,
                          std::string* response = nullptr);
  absl::Status CallBranch(const google::protobuf::Message& request, const std::string& target,
                          google::protobuf::Message* response = nullptr);

  const std::string& gid() const { return gid_; }
  // The id the next CallBranch uses: "01", "02", ...
  std::string NextBranchId() const;

 private:
  Xa(CoordinatorClient* client, std::string gid, const v1::TransOptions& options);

  CoordinatorClient* client_;
  std::string gid_;
  bool wait_result_;
  absl::Duration timeout_;  // of one branch call
  int next_ = 1;
};

}  // namespace dtm

#endif  // DTM_CLIENT_XA_H_
