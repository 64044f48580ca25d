#include "client/saga.h"

namespace dtm {
namespace {

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  int64_t secs = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(secs);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

}  // namespace

Saga::Saga(CoordinatorClient* client, std::string gid) : client_(client) {
  request_.set_gid(std::move(gid));
  request_.set_trans_type(v1::SAGA);
}

Saga& Saga::Add(const std::string& action, const std::string& compensate, std::string payload) {
  v1::Step* s = request_.add_steps();
  s->set_action(action);
  s->set_compensate(compensate);
  s->set_payload(std::move(payload));
  return *this;
}

Saga& Saga::Add(const std::string& action, const std::string& compensate,
                const google::protobuf::Message& payload) {
  return Add(action, compensate, payload.SerializeAsString());
}

Saga& Saga::After(int step, const std::vector<int>& after) {
  request_.mutable_options()->set_concurrent(true);
  if (step >= 0 && step < request_.steps_size()) {
    for (int a : after) request_.mutable_steps(step)->add_after(a);
  }
  return *this;
}

Saga& Saga::Concurrent(bool on) {
  request_.mutable_options()->set_concurrent(on);
  return *this;
}
Saga& Saga::WaitResult(bool on) {
  request_.mutable_options()->set_wait_result(on);
  return *this;
}
Saga& Saga::TimeoutToFail(absl::Duration d) {
  SetDuration(d, request_.mutable_options()->mutable_timeout_to_fail());
  return *this;
}
Saga& Saga::RetryInterval(absl::Duration d) {
  SetDuration(d, request_.mutable_options()->mutable_retry_interval());
  return *this;
}
Saga& Saga::MaxRetryInterval(absl::Duration d) {
  SetDuration(d, request_.mutable_options()->mutable_max_retry_interval());
  return *this;
}
Saga& Saga::RequestTimeout(absl::Duration d) {
  SetDuration(d, request_.mutable_options()->mutable_request_timeout());
  return *this;
}
Saga& Saga::RetryLimit(int n) {
  request_.mutable_options()->set_retry_limit(n);
  return *this;
}
Saga& Saga::BranchHeader(const std::string& key, const std::string& value) {
  (*request_.mutable_options()->mutable_branch_headers())[key] = value;
  return *this;
}

absl::StatusOr<v1::SubmitResponse> Saga::Submit() { return client_->Submit(request_); }

}  // namespace dtm
