// GrpcBranchCaller: calls branches through a generic stub with raw byte buffers (the
// coordinator never decodes business messages), asynchronously with the callback API, over
// one cached channel per normalised host:port (ParseGrpcTarget lowercases the host and admits
// one spelling of a port, so spellings cannot multiply channels). The cache is bounded: past
// `max_channels`, the least recently used channels with no call in flight are closed, and any
// channel unused for `idle_channel_timeout` is closed when the cache is next touched.
//
// Result mapping (DTM's): OK -> success, ABORTED -> failure, FAILED_PRECONDITION -> ongoing,
// anything else -> transient error, except an answer over the receive limit, which no retry
// can fix: that call fails (the branch ran; its answer is dropped, as `last_error` says).
// Thread-safe.
#ifndef DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_
#define DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/common/target.h"
#include "server/branch/branch_caller.h"

namespace dtm {

struct GrpcBranchCallerOptions {
  size_t max_channels = 1000;
  absl::Duration idle_channel_timeout = absl::Minutes(5);
  int max_answer_bytes = 4 << 20;  // a branch's answer, as gRPC's receive limit
  // Keep gRPC's own words for UNAVAILABLE and INTERNAL in last_error ("Connection refused",
  // "Socket closed", "...http1.x server..."). Off, they read the same whatever was at the
  // address, so that a client cannot use last_error to learn what listens where.
  bool verbose_errors = false;
  // PEM CAs that grpcs:// branches' certificates are verified against; empty: gRPC's default
  // roots (the system's).
  std::string ca_pem{};
};

class GrpcBranchCaller final : public BranchCaller {
 public:
  explicit GrpcBranchCaller(GrpcBranchCallerOptions options = {});
  ~GrpcBranchCaller() override;

  void Call(BranchCall call, std::function<void(BranchResult)> done) override;
  void Shutdown() override;

  // Maps a gRPC status from a branch to its outcome (`verbose`: GrpcBranchCallerOptions).
  static BranchResult Classify(const grpc::Status& status, bool verbose = true);

  // Channels open now (for tests and metrics).
  size_t channel_count() const;

 private:
  struct InFlight;
  struct Channel {
    std::unique_ptr<grpc::GenericStub> stub;
    absl::Time last_used;
    int in_flight = 0;
  };
  Channel* ChannelFor(const GrpcTarget& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseIdleChannels(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GrpcBranchCallerOptions options_;
  mutable absl::Mutex mu_;
  absl::node_hash_map<std::string, Channel> channels_ ABSL_GUARDED_BY(mu_);  // pointer-stable
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
  std::set<InFlight*> in_flight_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_
