#include "tests/support/branch_server.h"

#include <grpcpp/support/byte_buffer.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dtm::testing {
namespace {

class Reactor final : public grpc::ServerGenericBidiReactor {
 public:
  Reactor(TestBranchServer* server, grpc::GenericCallbackServerContext* ctx)
      : server_(server), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::INTERNAL, "no request message"));
      return;
    }
    BranchCallRecord call;
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
    BranchReply reply = server_->Handle(std::move(call));
    if (reply.hang) {
      absl::MutexLock lock(&mu_);
      hanging_ = true;
      if (!cancelled_) return;
    } else if (reply.status.ok()) {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      grpc::Slice empty("");
      response_ = grpc::ByteBuffer(&empty, 1);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    } else {
      FinishOnce(reply.status);
      return;
    }
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled while hanging"));
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

  TestBranchServer* const server_;
  grpc::GenericCallbackServerContext* const ctx_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  absl::Mutex mu_;
  bool hanging_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

class TestBranchServer::Service final : public grpc::CallbackGenericService {
 public:
  explicit Service(TestBranchServer* server) : server_(server) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(server_, ctx);
  }

 private:
  TestBranchServer* const server_;
};

std::string BranchCallRecord::Meta(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? "" : it->second;
}

std::string BranchCallRecord::name() const { return method.substr(method.rfind('/') + 1); }

TestBranchServer::TestBranchServer(bool record) : record_(record) {
  service_ = std::make_unique<Service>(this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.RegisterCallbackGenericService(service_.get());
  server_ = builder.BuildAndStart();
}

TestBranchServer::~TestBranchServer() { Shutdown(); }

void TestBranchServer::Shutdown() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }
}

std::string TestBranchServer::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string TestBranchServer::Target(const std::string& name) const {
  return absl::StrCat(address(), "/test.Branch/", name);
}

void TestBranchServer::SetBehavior(Behavior behavior) {
  absl::MutexLock lock(&mu_);
  behavior_ = std::move(behavior);
}

BranchReply TestBranchServer::Handle(BranchCallRecord call) {
  Behavior behavior;
  {
    absl::MutexLock lock(&mu_);
    call.seq = ++count_;
    call.time = absl::Now();
    if (record_) calls_.push_back(call);
    behavior = behavior_;
  }
  return behavior ? behavior(call) : BranchReply{};
}

std::vector<BranchCallRecord> TestBranchServer::Calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<BranchCallRecord> TestBranchServer::CallsFor(const std::string& gid) const {
  std::vector<BranchCallRecord> out;
  absl::MutexLock lock(&mu_);
  for (const BranchCallRecord& c : calls_) {
    if (c.gid() == gid) out.push_back(c);
  }
  return out;
}

std::vector<std::string> TestBranchServer::NamesFor(const std::string& gid) const {
  std::vector<std::string> out;
  for (const BranchCallRecord& c : CallsFor(gid)) out.push_back(c.name());
  return out;
}

int64_t TestBranchServer::call_count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

bool TestBranchServer::WaitFor(
    const std::string& gid, const std::function<bool(const std::vector<BranchCallRecord>&)>& pred,
    absl::Duration timeout) const {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  for (;;) {
    std::vector<BranchCallRecord> mine;
    for (const BranchCallRecord& c : calls_) {
      if (c.gid() == gid) mine.push_back(c);
    }
    if (pred(mine)) return true;
    // Woken by every new call (count_ changes) or the deadline.
    int64_t seen = count_;
    auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return count_ != seen; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) return pred(mine);
  }
}

}  // namespace dtm::testing
