// GrpcBranchCaller: calls branches through a generic stub with raw byte buffers (the
// coordinator never decodes business messages), asynchronously with the callback API, over
// one cached channel per normalised host:port (ParseGrpcTarget lowercases the host and admits
// one spelling of a port, so spellings cannot multiply channels). The cache is bounded: past
// `max_channels`, the least recently used channels with no call in flight are closed, and any
// channel unused for `idle_channel_timeout` is closed when the cache is next touched.
//
// Balanced targets (dns:///host:port): gRPC's round_robin over every address gRPC's resolver
// (c-ares in Debian's gRPC 1.51, which reads /etc/hosts and then DNS) finds for the name.
// gRPC resolves the name when the channel starts, and again only when a connection is lost
// (at most every `min_time_between_resolutions`): an address that goes is dropped, but one
// that comes (a new pod) would not be called until some connection breaks. So every
// `balanced_renew_interval` such a channel is renewed: a new channel, resolving the name
// afresh, connects beside the old one; calls move to it once it is ready (those in flight
// finish on the old one, which then closes). A renewal that does not become ready (the name
// does not resolve now, nothing accepts) is dropped and the old channel kept.
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
#include <vector>

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
  // dns:/// channels: how often one is renewed (its name resolved afresh), so that a new
  // address of the name gets calls within about this long; InfiniteDuration: never.
  absl::Duration balanced_renew_interval = absl::Seconds(30);
  // dns:/// channels: how soon gRPC may resolve the name again after a lost connection
  // (GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS; gRPC's own default is 30 s).
  absl::Duration min_time_between_resolutions = absl::Seconds(5);
};

class GrpcBranchCaller final : public BranchCaller {
 public:
  explicit GrpcBranchCaller(GrpcBranchCallerOptions options = {});
  ~GrpcBranchCaller() override;

  void Call(BranchCall call, std::function<void(BranchResult)> done) override;
  void Shutdown() override;

  // Maps a gRPC status from a branch to its outcome (`verbose`: GrpcBranchCallerOptions).
  static BranchResult Classify(const grpc::Status& status, bool verbose = true);

  // Channels open now, and dns:/// channels renewed so far (for tests and metrics).
  size_t channel_count() const;
  int64_t renewals() const;

 private:
  struct InFlight;
  struct Channel {
    // Calls in flight hold the stub too: a renewed channel closes when its last call ends.
    std::shared_ptr<grpc::GenericStub> stub;
    absl::Time last_used;
    int in_flight = 0;
    // dns:/// only: the channel under `stub`, when it was made, and its renewal while that
    // connects.
    std::shared_ptr<grpc::Channel> channel;
    absl::Time created;
    std::shared_ptr<grpc::Channel> renewal;
    absl::Time renewal_created;
  };
  std::shared_ptr<grpc::Channel> NewChannel(const GrpcTarget& target) const;
  // The cached channel for `target`, made or renewed as needed. What the cache lets go of is
  // moved to `released`, for the caller to close out of the lock; a renewal just started goes
  // to `connect`, for the caller to start connecting out of the lock.
  Channel* ChannelFor(const GrpcTarget& target, std::vector<Channel>* released,
                      std::shared_ptr<grpc::Channel>* connect) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Renew(const GrpcTarget& target, Channel* c, absl::Time now, std::vector<Channel>* released,
             std::shared_ptr<grpc::Channel>* connect) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseIdleChannels(absl::Time now, std::vector<Channel>* released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GrpcBranchCallerOptions options_;
  mutable absl::Mutex mu_;
  absl::node_hash_map<std::string, Channel> channels_ ABSL_GUARDED_BY(mu_);  // pointer-stable
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_);
  std::set<InFlight*> in_flight_ ABSL_GUARDED_BY(mu_);
  // Stubs of renewed channels while calls still hold them: let go of here, never by a call's
  // completion, so that no channel is destroyed on a gRPC callback thread.
  std::vector<std::shared_ptr<grpc::GenericStub>> retired_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int64_t renewals_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_GRPC_GRPC_BRANCH_CALLER_H_
