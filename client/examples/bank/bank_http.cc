#include "client/examples/bank/bank_http.h"

#include <google/protobuf/util/json_util.h>

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace bank {
namespace {

struct Route {
  const char* method;
  Op op;
};
constexpr Route kLegs[] = {
    {"TransOut", Op::kTransOut},
    {"TransOutCompensate", Op::kTransOutCompensate},
    {"TransIn", Op::kTransIn},
    {"TransInCompensate", Op::kTransInCompensate},
    {"TransOutTry", Op::kTransOutTry},
    {"TransOutConfirm", Op::kTransOutConfirm},
    {"TransOutCancel", Op::kTransOutCancel},
    {"TransInTry", Op::kTransInTry},
    {"TransInConfirm", Op::kTransInConfirm},
    {"TransInCancel", Op::kTransInCancel},
};

// A branch's answer in DTM's HTTP words.
dtm::HttpResponse FromGrpc(const grpc::Status& s) {
  dtm::HttpResponse r;
  std::string message = s.error_message();
  for (char& c : message) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      r.body = "{\"dtm_result\":\"SUCCESS\"}";
      return r;
    case grpc::StatusCode::ABORTED:
      r.status = 409;
      r.body = absl::StrCat("{\"dtm_result\":\"FAILURE\",\"message\":\"", message, "\"}");
      return r;
    case grpc::StatusCode::FAILED_PRECONDITION:
      r.status = 425;
      r.body = absl::StrCat("{\"dtm_result\":\"ONGOING\",\"message\":\"", message, "\"}");
      return r;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return dtm::JsonError(400, message);
    default:
      return dtm::JsonError(503, message);
  }
}

dtm::BranchContext BranchOf(const dtm::HttpRequest& req) {
  return dtm::BranchContext{req.Param("gid"), req.Param("trans_type"), req.Param("branch_id"),
                            req.Param("op"), req.Param("dtm")};
}

}  // namespace

absl::StatusOr<std::unique_ptr<BankHttp>> BankHttp::Start(BankService* service,
                                                          const std::string& listen) {
  auto bank = std::unique_ptr<BankHttp>(new BankHttp(service));
  for (const Route& leg : kLegs) {
    const char* method = leg.method;
    bank->router_.Handle("POST", absl::StrCat("/api/", method),
                         [b = bank.get(), method](dtm::HttpRequest req, dtm::HttpResponder r) {
                           b->Serve(std::move(req), std::move(r), method);
                         });
  }
  bank->router_.Handle("GET", "/api/QueryPrepared",
                       [b = bank.get()](dtm::HttpRequest req, dtm::HttpResponder r) {
                         b->Serve(std::move(req), std::move(r), nullptr);
                       });
  dtm::HttpServerOptions o;
  o.listen = listen;
  absl::StatusOr<std::unique_ptr<dtm::HttpServer>> server =
      dtm::HttpServer::Start(o, &bank->router_);
  if (!server.ok()) return server.status();
  bank->server_ = *std::move(server);
  // Targets name the address listened on (a wildcard one names this machine's loopback).
  const size_t colon = listen.rfind(':');
  bank->host_ = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (bank->host_.empty() || bank->host_ == "0.0.0.0" || bank->host_ == "[::]") {
    bank->host_ = "127.0.0.1";
  }
  return bank;
}

BankHttp::~BankHttp() {
  server_->Shutdown(absl::Seconds(2));
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  mu_.Await(absl::Condition(&idle));
}

std::string BankHttp::Target(const char* method) const {
  return absl::StrCat("http://", host_, ":", port(), "/api/", method);
}

void BankHttp::Serve(dtm::HttpRequest req, dtm::HttpResponder respond, const char* method) {
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  std::thread([this, req = std::move(req), respond = std::move(respond), method] {
    const dtm::BranchContext branch = BranchOf(req);
    grpc::Status answer;
    if (method == nullptr) {
      answer = service_->CheckPrepared(branch);
    } else {
      v1::TransferRequest transfer;
      auto parsed = google::protobuf::util::JsonStringToMessage(req.body, &transfer);
      if (!parsed.ok()) {
        answer = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              absl::StrCat("the body is not a TransferRequest in JSON: ",
                                           parsed.message().as_string()));
      } else {
        Op op = Op::kTransOut;
        for (const Route& leg : kLegs) {
          if (std::string(leg.method) == method) op = leg.op;
        }
        answer = service_->Leg(branch, transfer, op);
      }
    }
    respond(FromGrpc(answer));
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }).detach();
}

}  // namespace bank
