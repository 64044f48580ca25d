// CoordinatorClient: a small synchronous client of dtm.v1.Coordinator. Each call uses a
// fresh ClientContext with a deadline and converts the gRPC status to absl::Status.
// Thread-safe (gRPC stubs are).
#ifndef DTM_CLIENT_COORDINATOR_CLIENT_H_
#define DTM_CLIENT_COORDINATOR_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dtm/v1/coordinator.grpc.pb.h"

namespace dtm {

class CoordinatorClient {
 public:
  explicit CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                             absl::Duration timeout = absl::Seconds(30));
  // Connects (insecure) to "host:port".
  static std::unique_ptr<CoordinatorClient> Connect(const std::string& address,
                                                    absl::Duration timeout = absl::Seconds(30));

  absl::StatusOr<std::string> NewGid();
  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request);
  absl::StatusOr<v1::Transaction> Query(const std::string& gid);
  absl::StatusOr<v1::ListResponse> List(const v1::ListRequest& request);
  absl::StatusOr<v1::Transaction> ForceStop(const std::string& gid, const std::string& reason);
  absl::Status RetryNow(const std::string& gid);

  v1::Coordinator::Stub* stub() { return stub_.get(); }

 private:
  void Prepare(grpc::ClientContext* ctx) const;

  std::unique_ptr<v1::Coordinator::Stub> stub_;
  absl::Duration timeout_;
};

// Converts a gRPC status to absl::Status (codes are the same).
absl::Status FromGrpcStatus(const grpc::Status& s);

}  // namespace dtm

#endif  // DTM_CLIENT_COORDINATOR_CLIENT_H_
