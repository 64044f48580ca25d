#include "client/coordinator_client.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/common/grpc_status.h"

namespace dtm {

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout,
                                     std::string address)
    : stub_(v1::Coordinator::NewStub(std::move(channel))),
      timeout_(timeout),
      address_(std::move(address)) {}

std::unique_ptr<CoordinatorClient> CoordinatorClient::Connect(const std::string& address,
                                                              absl::Duration timeout) {
  return std::make_unique<CoordinatorClient>(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), timeout, address);
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(
    const std::string& address, const ClientTls& tls, absl::Duration timeout) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = Credentials(tls);
  if (!credentials.ok()) return credentials.status();
  return std::make_unique<CoordinatorClient>(grpc::CreateChannel(address, *credentials), timeout,
                                             address);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> CoordinatorClient::Credentials(
    const ClientTls& tls) {
  grpc::SslCredentialsOptions options;
  const std::pair<const std::string*, std::string*> files[] = {
      {&tls.ca_file, &options.pem_root_certs},
      {&tls.cert_file, &options.pem_cert_chain},
      {&tls.key_file, &options.pem_private_key}};
  for (const auto& [path, out] : files) {
    if (path->empty()) continue;
    std::ifstream in(*path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the TLS file '", *path, "'"));
    }
    *out = text.str();
  }
  if (options.pem_cert_chain.empty() != options.pem_private_key.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs its key, and the other way round");
  }
  return grpc::SslCredentials(options);
}

template <typename Request, typename Response>
absl::StatusOr<Response> CoordinatorClient::Call(
    grpc::Status (v1::Coordinator::Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
    const Request& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout_));
  ctx.set_wait_for_ready(wait_for_ready_);
  if (!auth_token_.empty()) ctx.AddMetadata("authorization", "Bearer " + auth_token_);
  Response resp;
  grpc::Status s = (stub_.get()->*rpc)(&ctx, request, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<std::string> CoordinatorClient::NewGid() {
  auto r = Call(&v1::Coordinator::Stub::NewGid, v1::NewGidRequest());
  if (!r.ok()) return r.status();
  return r->gid();
}

absl::StatusOr<v1::SubmitResponse> CoordinatorClient::Submit(const v1::SubmitRequest& request) {
  return Call(&v1::Coordinator::Stub::Submit, request);
}

absl::Status CoordinatorClient::Prepare(const v1::PrepareRequest& request) {
  return Call(&v1::Coordinator::Stub::Prepare, request).status();
}

absl::StatusOr<v1::AbortResponse> CoordinatorClient::Abort(const v1::AbortRequest& request) {
  return Call(&v1::Coordinator::Stub::Abort, request);
}

absl::Status CoordinatorClient::RegisterBranch(const v1::RegisterBranchRequest& request) {
  return Call(&v1::Coordinator::Stub::RegisterBranch, request).status();
}

absl::StatusOr<v1::Transaction> CoordinatorClient::Query(const std::string& gid) {
  v1::QueryRequest req;
  req.set_gid(gid);
  auto r = Call(&v1::Coordinator::Stub::Query, req);
  if (!r.ok()) return r.status();
  return r->transaction();
}

absl::StatusOr<v1::ListResponse> CoordinatorClient::List(const v1::ListRequest& request) {
  return Call(&v1::Coordinator::Stub::List, request);
}

absl::StatusOr<v1::Transaction> CoordinatorClient::ForceStop(const std::string& gid,
                                                             const std::string& reason) {
  v1::ForceStopRequest req;
  req.set_gid(gid);
  req.set_reason(reason);
  auto r = Call(&v1::Coordinator::Stub::ForceStop, req);
  if (!r.ok()) return r.status();
  return r->transaction();
}

absl::Status CoordinatorClient::RetryNow(const std::string& gid) {
  v1::RetryNowRequest req;
  req.set_gid(gid);
  return Call(&v1::Coordinator::Stub::RetryNow, req).status();
}

absl::StatusOr<int64_t> CoordinatorClient::RetryAllWaiting() {
  v1::RetryNowRequest req;
  req.set_all_waiting(true);
  auto r = Call(&v1::Coordinator::Stub::RetryNow, req);
  if (!r.ok()) return r.status();
  return r->count();
}

absl::StatusOr<v1::SubmitResponse> CommitAnswer(absl::StatusOr<v1::SubmitResponse> submitted) {
  if (!submitted.ok()) return submitted;
  if (submitted->status() != v1::ABORTING && submitted->status() != v1::FAILED) return submitted;
  return absl::AbortedError(absl::StrCat("transaction '", submitted->gid(), "' is ",
                                         v1::Status_Name(submitted->status()),
                                         ", not committed: ", submitted->rollback_reason()));
}

}  // namespace dtm
