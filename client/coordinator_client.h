// CoordinatorClient: a small synchronous client of dtm.v1.Coordinator. Each call uses a
// fresh ClientContext with a deadline and converts the gRPC status to absl::Status.
// Thread-safe (gRPC stubs are).
#ifndef DTM_CLIENT_COORDINATOR_CLIENT_H_
#define DTM_CLIENT_COORDINATOR_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dtm/v1/coordinator.grpc.pb.h"

namespace dtm {

// TLS to a dtmd started with --tls_cert: the CAs its certificate is verified against and,
// for a dtmd with --tls_client_ca, this client's certificate and key (PEM files).
struct ClientTls {
  std::string ca_file{};  // empty: gRPC's default roots
  std::string cert_file{};
  std::string key_file{};
};

class CoordinatorClient {
 public:
  explicit CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                             absl::Duration timeout = absl::Seconds(30), std::string address = "");
  // Connects (insecure) to "host:port".
  static std::unique_ptr<CoordinatorClient> Connect(const std::string& address,
                                                    absl::Duration timeout = absl::Seconds(30));
  // Connects over TLS; INVALID_ARGUMENT naming a file that cannot be read.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Connect(
      const std::string& address, const ClientTls& tls, absl::Duration timeout = absl::Seconds(30));
  // The channel credentials Connect uses for `tls`.
  static absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
      const ClientTls& tls);

  absl::StatusOr<std::string> NewGid();
  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request);
  absl::Status Prepare(const v1::PrepareRequest& request);
  absl::StatusOr<v1::AbortResponse> Abort(const v1::AbortRequest& request);
  absl::Status RegisterBranch(const v1::RegisterBranchRequest& request);
  absl::StatusOr<v1::Transaction> Query(const std::string& gid);
  absl::StatusOr<v1::ListResponse> List(const v1::ListRequest& request);
  absl::StatusOr<v1::Transaction> ForceStop(const std::string& gid, const std::string& reason);
  absl::Status RetryNow(const std::string& gid);
  // RetryNow of every SUBMITTED or ABORTING transaction, waiting or being called; returns how
  // many.
  absl::StatusOr<int64_t> RetryAllWaiting();

  // With `on`, a call made while the coordinator is unreachable (restarting, say) waits for
  // it until the call's deadline instead of failing at once with UNAVAILABLE. Set it before
  // the first call.
  void set_wait_for_ready(bool on) { wait_for_ready_ = on; }
  // Sent with every call as "authorization: Bearer <token>" (dtmd's --auth_tokens_file);
  // empty: none. Set it before the first call.
  void set_auth_token(std::string token) { auth_token_ = std::move(token); }

  v1::Coordinator::Stub* stub() { return stub_.get(); }
  // The address given to Connect (sent to tcc branches as dtm-dtm), or "".
  const std::string& address() const { return address_; }

 private:
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (v1::Coordinator::Stub::*rpc)(grpc::ClientContext*,
                                                                           const Request&,
                                                                           Response*),
                                const Request& request);

  std::unique_ptr<v1::Coordinator::Stub> stub_;
  absl::Duration timeout_;
  std::string address_;
  bool wait_for_ready_ = false;
  std::string auth_token_;
};

// Submit's answer for the phase-2 commit of a prepared tcc or xa: an ABORTING or FAILED
// status (its timeout_to_fail passed, or someone aborted it, before this submit) becomes
// ABORTED with the rollback reason, so that a client checking ok() never takes a rolled-back
// transaction for a committed one. Other answers are returned unchanged.
absl::StatusOr<v1::SubmitResponse> CommitAnswer(absl::StatusOr<v1::SubmitResponse> submitted);

}  // namespace dtm

#endif  // DTM_CLIENT_COORDINATOR_CLIENT_H_
