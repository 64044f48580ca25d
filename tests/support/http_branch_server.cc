#include "tests/support/http_branch_server.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dtm::test {

HttpReply ToHttp(const BranchReply& reply) {
  HttpReply r;
  r.hang = reply.hang;
  switch (reply.status.error_code()) {
    case grpc::StatusCode::OK:
      break;
    case grpc::StatusCode::ABORTED:
      r.status = 409;
      r.body = absl::StrCat("{\"dtm_result\":\"FAILURE\",\"message\":\"",
                            reply.status.error_message(), "\"}");
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      r.status = 425;
      r.body = "{\"dtm_result\":\"ONGOING\"}";
      break;
    default:
      r.status = 503;
      r.body = reply.status.error_message();
      break;
  }
  return r;
}

TestHttpBranchServer::TestHttpBranchServer(bool record) : CallLog(record) {
  router_.HandlePrefix("/busi/", [this](HttpRequest req, HttpResponder respond) {
    Handle(std::move(req), std::move(respond));
  });
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.threads = 2;
  auto server = HttpServer::Start(o, &router_);
  if (!server.ok()) {
    std::fprintf(stderr, "TestHttpBranchServer: %s\n", server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
}

TestHttpBranchServer::~TestHttpBranchServer() { Shutdown(); }

void TestHttpBranchServer::Shutdown() {
  std::vector<HttpResponder> hanging;
  {
    absl::MutexLock lock(&mu_);
    hanging.swap(hanging_);
  }
  for (HttpResponder& r : hanging) r(HttpResponse{503, "application/json", "{}", {}});
  server_->Shutdown(absl::Seconds(1));
}

std::string TestHttpBranchServer::Target(const std::string& name) const {
  return absl::StrCat("http://127.0.0.1:", server_->port(), "/busi/", name);
}

void TestHttpBranchServer::SetBehavior(Behavior behavior) {
  absl::MutexLock lock(&mu_);
  behavior_ = std::move(behavior);
}

void TestHttpBranchServer::Handle(HttpRequest req, HttpResponder respond) {
  BranchCallRecord call;
  call.method = req.path;
  call.http_method = req.method;
  for (const char* key : {"gid", "trans_type", "branch_id", "op", "dtm"}) {
    call.metadata[absl::StrCat("dtm-", key)] = req.Param(key);
  }
  for (const auto& [k, v] : req.headers) call.metadata.emplace(k, v);
  call.branch.gid = req.Param("gid");
  call.branch.trans_type = req.Param("trans_type");
  call.branch.branch_id = req.Param("branch_id");
  call.branch.op = req.Param("op");
  call.branch.dtm = req.Param("dtm");
  call.payload = std::move(req.body);
  call = Record(std::move(call));
  Behavior behavior;
  {
    absl::MutexLock lock(&mu_);
    behavior = behavior_;
  }
  HttpReply reply = behavior ? behavior(call) : HttpReply{};
  if (reply.hang) {
    absl::MutexLock lock(&mu_);
    hanging_.push_back(std::move(respond));
    return;
  }
  HttpResponse r;
  r.status = reply.status;
  r.body = std::move(reply.body);
  respond(std::move(r));
}

}  // namespace dtm::test
