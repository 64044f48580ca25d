// Msg: a two-phase message from C++.
//
//   dtm::Msg msg(client, gid);
//   msg.Add("svc:50052/bank.Bank/TransIn", req);
//   auto r = msg.DoAndSubmit("svc:50051/bank.Bank/QueryPrepared", [&] {
//     return CommitLocalTransaction();  // the local change the message must follow
//   });
//
// DoAndSubmit prepares the message, runs the local transaction, then submits the message if
// it returned OK, or aborts it if it returned ABORTED (the business refused). Any other error
// (or a crash of this process) leaves the message PREPARED: once its timeout_to_fail passes
// the coordinator asks `query_prepared` whether the local transaction committed and delivers
// or drops the message accordingly. A submitted message is delivered until every action
// succeeded. Not thread-safe.
#ifndef DTM_CLIENT_MSG_H_
#define DTM_CLIENT_MSG_H_

#include <google/protobuf/message.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/coordinator_client.h"

namespace dtm {

class Msg {
 public:
  Msg(CoordinatorClient* client, std::string gid);

  // Appends a step (an action; an empty target is a no-op).
  Msg& Add(const std::string& action, std::string payload = "");
  Msg& Add(const std::string& action, const google::protobuf::Message& payload);
  // wait_result, concurrent, delay, timeout_to_fail, retry_interval, ...
  v1::TransOptions& options() { return options_; }

  // Phase 1: stores the message PREPARED with its back-check target.
  absl::Status Prepare(const std::string& query_prepared);
  // Phase 2 (after Prepare), or the whole message at once (without Prepare). Always sends
  // the steps, so a Submit whose Prepare was lost still delivers.
  absl::StatusOr<v1::SubmitResponse> Submit();
  // Drops a prepared message: nothing is delivered.
  absl::Status Abort(const std::string& reason = "");
  absl::StatusOr<v1::SubmitResponse> DoAndSubmit(const std::string& query_prepared,
                                                 const std::function<absl::Status()>& local);

  const std::string& gid() const { return gid_; }

 private:
  CoordinatorClient* const client_;
  std::string gid_;
  std::string query_prepared_;
  google::protobuf::RepeatedPtrField<v1::Step> steps_;
  v1::TransOptions options_;
};

}  // namespace dtm

#endif  // DTM_CLIENT_MSG_H_
