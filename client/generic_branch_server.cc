#include "client/generic_branch_server.h"

#include <grpcpp/support/byte_buffer.h>

#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace dtm {
namespace {

// One call: reads the request, asks the handler, answers (or hangs until cancelled).
class Reactor final : public grpc::ServerGenericBidiReactor {
 public:
  Reactor(const GenericBranchServer::Handler* handler, grpc::GenericCallbackServerContext* ctx)
      : handler_(handler), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::INTERNAL, "no request message"));
      return;
    }
    IncomingBranchCall call;
    call.method = ctx_->method();
    call.branch = BranchContext::From(*ctx_);
    for (const auto& [k, v] : ctx_->client_metadata()) {
      call.metadata.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    std::vector<grpc::Slice> slices;
    if (request_.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        call.payload.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    BranchAnswer answer = (*handler_)(call);
    if (answer.hang) {
      {
        absl::MutexLock lock(&mu_);
        hanging_ = true;
        if (!cancelled_) return;  // OnCancel finishes it
      }
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled while hanging"));
      return;
    }
    if (!answer.status.ok()) {
      FinishOnce(answer.status);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    grpc::Slice body(answer.body);
    response_ = grpc::ByteBuffer(&body, 1);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnCancel() override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      finish = hanging_;
    }
    if (finish) FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled while hanging"));
  }

  void OnDone() override { delete this; }

 private:
  void FinishOnce(const grpc::Status& s) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(s);
  }

  const GenericBranchServer::Handler* const handler_;
  grpc::GenericCallbackServerContext* const ctx_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  absl::Mutex mu_;
  bool hanging_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

class GenericBranchServer::Service final : public grpc::CallbackGenericService {
 public:
  explicit Service(GenericBranchServer::Handler handler) : handler_(std::move(handler)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(&handler_, ctx);
  }

 private:
  const GenericBranchServer::Handler handler_;
};

std::string IncomingBranchCall::name() const { return method.substr(method.rfind('/') + 1); }

absl::StatusOr<std::unique_ptr<GenericBranchServer>> GenericBranchServer::Start(
    Handler handler, const std::string& listen) {
  auto s = std::unique_ptr<GenericBranchServer>(new GenericBranchServer());
  s->service_ = std::make_unique<Service>(std::move(handler));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on '", listen, "'"));
  }
  s->address_ = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  return s;
}

GenericBranchServer::~GenericBranchServer() { Shutdown(); }

void GenericBranchServer::Shutdown() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

std::string GenericBranchServer::Target(const std::string& name, const std::string& service) const {
  return absl::StrCat(address_, "/", service, "/", name);
}

}  // namespace dtm
