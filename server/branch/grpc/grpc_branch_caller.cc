#include "server/branch/grpc/grpc_branch_caller.h"

#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/common/target.h"

namespace dtm {

struct GrpcBranchCaller::InFlight {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::function<void(BranchResult)> done;
};

GrpcBranchCaller::GrpcBranchCaller() = default;

GrpcBranchCaller::~GrpcBranchCaller() { Shutdown(); }

BranchResult GrpcBranchCaller::Classify(const grpc::Status& status) {
  BranchResult r;
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      r.outcome = CallOutcome::kSuccess;
      return r;
    case grpc::StatusCode::ABORTED:
      r.outcome = CallOutcome::kFailure;
      r.message = absl::StrCat("ABORTED: ", status.error_message());
      return r;
    case grpc::StatusCode::FAILED_PRECONDITION:
      r.outcome = CallOutcome::kOngoing;
      r.message = absl::StrCat("FAILED_PRECONDITION (ongoing): ", status.error_message());
      return r;
    default:
      r.outcome = CallOutcome::kError;
      r.message =
          absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                       ": ", status.error_message());
      return r;
  }
}

grpc::GenericStub* GrpcBranchCaller::StubFor(const std::string& authority) {
  auto it = stubs_.find(authority);
  if (it != stubs_.end()) return it->second.get();
  grpc::ChannelArguments args;
  // Fail fast on a dead branch service rather than queueing for the whole deadline.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(authority, grpc::InsecureChannelCredentials(), args);
  auto stub = std::make_unique<grpc::GenericStub>(channel);
  grpc::GenericStub* raw = stub.get();
  stubs_.emplace(authority, std::move(stub));
  return raw;
}

void GrpcBranchCaller::Call(BranchCall call, std::function<void(BranchResult)> done) {
  auto target = ParseGrpcTarget(call.target, "target");
  if (!target.ok()) {
    done(BranchResult{CallOutcome::kError, std::string(target.status().message())});
    return;
  }
  auto* f = new InFlight;
  f->done = std::move(done);
  f->context.set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMicroseconds(call.timeout));
  f->context.AddMetadata("dtm-gid", call.gid);
  f->context.AddMetadata("dtm-trans_type", call.trans_type);
  f->context.AddMetadata("dtm-branch_id", call.branch_id);
  f->context.AddMetadata("dtm-op", call.op);
  f->context.AddMetadata("dtm-dtm", call.dtm);
  for (const auto& [k, v] : call.headers) f->context.AddMetadata(k, v);
  grpc::Slice slice(call.payload);
  f->request = grpc::ByteBuffer(&slice, 1);
  grpc::GenericStub* stub = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      stub = StubFor(target->authority);
      in_flight_.insert(f);
    }
  }
  if (stub == nullptr) {
    auto cb = std::move(f->done);
    delete f;
    cb(BranchResult{CallOutcome::kError, "coordinator is shutting down"});
    return;
  }
  stub->UnaryCall(&f->context, target->method, grpc::StubOptions(), &f->request, &f->response,
                  [this, f](const grpc::Status& status) {
                    {
                      absl::MutexLock lock(&mu_);
                      in_flight_.erase(f);
                    }
                    auto cb = std::move(f->done);
                    delete f;
                    cb(Classify(status));
                  });
}

void GrpcBranchCaller::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  for (InFlight* f : in_flight_) f->context.TryCancel();
  auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return in_flight_.empty(); };
  mu_.Await(absl::Condition(&drained));
}

}  // namespace dtm
