#include "server/branch/grpc/grpc_branch_caller.h"

#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/common/target.h"

namespace dtm {
namespace {

// How long a renewed dns:/// channel may take to connect before it is dropped (and renewal
// tried again an interval later).
constexpr absl::Duration kRenewalDeadline = absl::Seconds(10);

}  // namespace

struct GrpcBranchCaller::InFlight {
  Channel* channel = nullptr;               // in channels_, kept open while this call is in flight
  std::shared_ptr<grpc::GenericStub> stub;  // the channel the call went out on
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::function<void(BranchResult)> done;
};

GrpcBranchCaller::GrpcBranchCaller(GrpcBranchCallerOptions options)
    : options_(std::move(options)) {}

GrpcBranchCaller::~GrpcBranchCaller() { Shutdown(); }

BranchResult GrpcBranchCaller::Classify(const grpc::Status& status, bool verbose) {
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
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::INTERNAL:
      if (!verbose) {
        r.outcome = CallOutcome::kError;
        r.message = absl::StrCat(
            absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
            ": no gRPC answer from the branch (dtmd --verbose_errors says why)");
        return r;
      }
      [[fallthrough]];
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // gRPC's own refusal of an answer over the receive limit: the same answer would come
      // back on every retry, and the action would run again each time. Any other
      // RESOURCE_EXHAUSTED is the branch's, and transient.
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
          absl::StrContains(status.error_message(), "larger than max")) {
        r.outcome = CallOutcome::kFailure;
        r.message = absl::StrCat("the branch's answer is over the coordinator's receive limit (",
                                 status.error_message(), ")");
        return r;
      }
      [[fallthrough]];
    default:
      r.outcome = CallOutcome::kError;
      r.message =
          absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                       ": ", status.error_message());
      return r;
  }
}

size_t GrpcBranchCaller::channel_count() const {
  absl::MutexLock lock(&mu_);
  return channels_.size();
}

int64_t GrpcBranchCaller::renewals() const {
  absl::MutexLock lock(&mu_);
  return renewals_;
}

void GrpcBranchCaller::CloseIdleChannels(absl::Time now, std::vector<Channel>* released) {
  if (now - last_sweep_ >= absl::Seconds(10)) {
    last_sweep_ = now;
    for (auto it = channels_.begin(); it != channels_.end();) {
      if (it->second.in_flight == 0 &&
          now - it->second.last_used >= options_.idle_channel_timeout) {
        released->push_back(std::move(it->second));
        channels_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  while (channels_.size() >= options_.max_channels) {  // room for one more
    auto oldest = channels_.end();
    for (auto it = channels_.begin(); it != channels_.end(); ++it) {
      if (it->second.in_flight == 0 &&
          (oldest == channels_.end() || it->second.last_used < oldest->second.last_used)) {
        oldest = it;
      }
    }
    if (oldest == channels_.end()) return;  // all busy: go over the bound rather than fail
    released->push_back(std::move(oldest->second));
    channels_.erase(oldest);
  }
}

std::shared_ptr<grpc::Channel> GrpcBranchCaller::NewChannel(const GrpcTarget& target) const {
  grpc::ChannelArguments args;
  // Fail fast on a dead branch service rather than queueing for the whole deadline.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(options_.max_answer_bytes);
  // Each channel is its own connection: sharing gRPC's subchannel pool across channels
  // would keep a closed channel's connection alive (and a renewed channel would reuse the
  // old one's connections instead of making its own).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (target.balanced) {
    args.SetLoadBalancingPolicyName("round_robin");
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS,
                static_cast<int>(std::min<int64_t>(
                    absl::ToInt64Milliseconds(options_.min_time_between_resolutions), INT_MAX)));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (target.tls) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = options_.ca_pem;  // empty: gRPC's default roots
    credentials = grpc::SslCredentials(tls);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(target.ChannelTarget(), credentials, args);
}

void GrpcBranchCaller::Renew(const GrpcTarget& target, Channel* c, absl::Time now,
                             std::vector<Channel>* released,
                             std::shared_ptr<grpc::Channel>* connect) {
  if (c->renewal != nullptr) {
    grpc_connectivity_state state = c->renewal->GetState(/*try_to_connect=*/false);
    if (state == GRPC_CHANNEL_READY) {
      // New calls go to the renewal; those in flight finish on the old channel.
      retired_.push_back(std::move(c->stub));
      Channel old;
      old.channel = std::move(c->channel);
      released->push_back(std::move(old));
      c->channel = std::move(c->renewal);
      c->stub = std::make_shared<grpc::GenericStub>(c->channel);
      c->created = c->renewal_created;
      c->renewal = nullptr;
      ++renewals_;
    } else if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN ||
               now - c->renewal_created >= kRenewalDeadline) {
      // The name does not resolve now, or nothing it resolves to accepts: keep what works.
      Channel dropped;
      dropped.channel = std::move(c->renewal);
      released->push_back(std::move(dropped));
      c->renewal = nullptr;
      c->created = now;
    }
    return;
  }
  if (now - c->created >= options_.balanced_renew_interval) {
    c->renewal = NewChannel(target);
    c->renewal_created = now;
    *connect = c->renewal;
  }
}

GrpcBranchCaller::Channel* GrpcBranchCaller::ChannelFor(const GrpcTarget& target,
                                                        std::vector<Channel>* released,
                                                        std::shared_ptr<grpc::Channel>* connect) {
  absl::Time now = absl::Now();
  // Renewed channels whose last call has ended. (Only this cache hands out references.)
  for (auto r = retired_.begin(); r != retired_.end();) {
    if (r->use_count() == 1) {
      released->emplace_back().stub = std::move(*r);
      r = retired_.erase(r);
    } else {
      ++r;
    }
  }
  const std::string key = target.ChannelKey();
  auto it = channels_.find(key);
  if (it == channels_.end()) {
    CloseIdleChannels(now, released);
    Channel c;
    c.channel = NewChannel(target);
    c.created = now;
    c.stub = std::make_shared<grpc::GenericStub>(c.channel);
    it = channels_.emplace(key, std::move(c)).first;
  } else if (target.balanced) {
    Renew(target, &it->second, now, released, connect);
  }
  it->second.last_used = now;
  return &it->second;
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
  std::vector<Channel> released;
  std::shared_ptr<grpc::Channel> connect;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      f->channel = ChannelFor(*target, &released, &connect);
      ++f->channel->in_flight;
      f->stub = f->channel->stub;
      stub = f->stub.get();
      in_flight_.insert(f);
    }
  }
  released.clear();  // closes what the cache let go of, out of the lock
  if (connect != nullptr) connect->GetState(/*try_to_connect=*/true);
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
                      --f->channel->in_flight;
                      in_flight_.erase(f);
                      // Never the last reference (the cache, or retired_, holds one): no
                      // channel is destroyed on this gRPC thread.
                      f->stub.reset();
                    }
                    auto cb = std::move(f->done);
                    delete f;
                    cb(Classify(status, options_.verbose_errors));
                  });
}

void GrpcBranchCaller::Shutdown() {
  std::vector<std::shared_ptr<grpc::GenericStub>> retired;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    for (InFlight* f : in_flight_) f->context.TryCancel();
    auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return in_flight_.empty(); };
    mu_.Await(absl::Condition(&drained));
    retired.swap(retired_);
  }
}

}  // namespace dtm
