#include "client/coordinator_client.h"

#include <chrono>

namespace dtm {

absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
    : stub_(v1::Coordinator::NewStub(std::move(channel))), timeout_(timeout) {}

std::unique_ptr<CoordinatorClient> CoordinatorClient::Connect(const std::string& address,
                                                              absl::Duration timeout) {
  return std::make_unique<CoordinatorClient>(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), timeout);
}

void CoordinatorClient::Prepare(grpc::ClientContext* ctx) const {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout_));
}

absl::StatusOr<std::string> CoordinatorClient::NewGid() {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::NewGidResponse resp;
  grpc::Status s = stub_->NewGid(&ctx, v1::NewGidRequest(), &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.gid();
}

absl::StatusOr<v1::SubmitResponse> CoordinatorClient::Submit(const v1::SubmitRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::SubmitResponse resp;
  grpc::Status s = stub_->Submit(&ctx, request, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<v1::Transaction> CoordinatorClient::Query(const std::string& gid) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::QueryRequest req;
  req.set_gid(gid);
  v1::QueryResponse resp;
  grpc::Status s = stub_->Query(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.transaction();
}

absl::StatusOr<v1::ListResponse> CoordinatorClient::List(const v1::ListRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListResponse resp;
  grpc::Status s = stub_->List(&ctx, request, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<v1::Transaction> CoordinatorClient::ForceStop(const std::string& gid,
                                                             const std::string& reason) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ForceStopRequest req;
  req.set_gid(gid);
  req.set_reason(reason);
  v1::ForceStopResponse resp;
  grpc::Status s = stub_->ForceStop(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.transaction();
}

absl::Status CoordinatorClient::RetryNow(const std::string& gid) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::RetryNowRequest req;
  req.set_gid(gid);
  v1::RetryNowResponse resp;
  return FromGrpcStatus(stub_->RetryNow(&ctx, req, &resp));
}

}  // namespace dtm
