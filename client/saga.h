// Saga: a builder for saga Submit requests.
//
//   dtm::Saga saga(client, gid);
//   saga.Add("svc:50051/bank.Bank/TransOut", "svc:50051/bank.Bank/TransOutRevert", req)
//       .Add("svc:50052/bank.Bank/TransIn", "svc:50052/bank.Bank/TransInRevert", req)
//       .WaitResult(true);
//   absl::StatusOr<dtm::v1::SubmitResponse> r = saga.Submit();
//
// Not thread-safe; build and submit from one thread.
#ifndef DTM_CLIENT_SAGA_H_
#define DTM_CLIENT_SAGA_H_

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/coordinator_client.h"

namespace dtm {

class Saga {
 public:
  Saga(CoordinatorClient* client, std::string gid);

  // Appends a step; an empty target is a no-op. Returns *this for chaining.
  Saga& Add(const std::string& action, const std::string& compensate, std::string payload = "");
  Saga& Add(const std::string& action, const std::string& compensate,
            const google::protobuf::Message& payload);
  // Step `step` runs only after the steps in `after` succeeded (turns on concurrent mode).
  Saga& After(int step, const std::vector<int>& after);
  Saga& Concurrent(bool on = true);
  Saga& WaitResult(bool on = true);
  Saga& TimeoutToFail(absl::Duration d);
  Saga& RetryInterval(absl::Duration d);
  Saga& MaxRetryInterval(absl::Duration d);
  Saga& RequestTimeout(absl::Duration d);
  Saga& RetryLimit(int n);
  Saga& BranchHeader(const std::string& key, const std::string& value);
  // Every option at once (the setters above write here).
  v1::TransOptions& options() { return *request_.mutable_options(); }

  const v1::SubmitRequest& request() const { return request_; }
  absl::StatusOr<v1::SubmitResponse> Submit();

 private:
  CoordinatorClient* const client_;
  v1::SubmitRequest request_;
};

}  // namespace dtm

#endif  // DTM_CLIENT_SAGA_H_
