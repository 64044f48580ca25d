#include "client/branch_call.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/common/grpc_status.h"
#include "client/common/target.h"

namespace dtm {
namespace {

grpc::GenericStub* StubFor(const std::string& host) {
  static absl::Mutex mu;
  static auto* stubs = new std::map<std::string, std::unique_ptr<grpc::GenericStub>>();
  absl::MutexLock lock(&mu);
  auto& stub = (*stubs)[host];
  if (!stub) {
    stub = std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(host, grpc::InsecureChannelCredentials()));
  }
  return stub.get();
}

}  // namespace

absl::Status CallTarget(const std::string& target, const std::string& payload,
                        const std::vector<std::pair<std::string, std::string>>& metadata,
                        absl::Duration timeout, std::string* response) {
  absl::StatusOr<GrpcTarget> parsed = ParseGrpcTarget(target, "target");
  if (!parsed.ok()) return parsed.status();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  grpc::Status status;
  absl::Notification done;
  StubFor(parsed->authority)
      ->UnaryCall(&ctx, parsed->method, grpc::StubOptions(), &request, &reply, [&](grpc::Status s) {
        status = std::move(s);
        done.Notify();
      });
  done.WaitForNotification();
  if (status.ok() && response != nullptr) {
    std::vector<grpc::Slice> slices;
    response->clear();
    if (reply.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        response->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
  }
  return FromGrpcStatus(status);
}

}  // namespace dtm
