#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <cstdio>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/api/coordinator_service.h"
#include "server/branch/grpc/grpc_branch_caller.h"
#include "server/runtime/clock.h"
#include "server/runtime/thread_pool.h"
#include "server/runtime/timer_queue.h"
#include "storage/open/open_store.h"

namespace dtm {

namespace {

// The database's clock (Store::Now): every time the engine stores or compares is on it, so
// replicas with skewed local clocks agree on what is due.
class StoreClock final : public Clock {
 public:
  explicit StoreClock(Store* store) : store_(store) {}
  absl::Time Now() override { return store_->Now(); }

 private:
  Store* const store_;
};

// Unique per process, readable in the store's owner column: host/pid/random.
std::string OwnerId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  absl::BitGen gen;
  return absl::StrFormat("%s/%d/%06x", host, getpid(), absl::Uniform<uint32_t>(gen, 0, 1 << 24));
}

}  // namespace

// Declared in shutdown order, reversed: members are destroyed bottom-up.
struct DtmServer::Parts {
  std::unique_ptr<Store> store;
  std::unique_ptr<StoreClock> clock;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<TimerQueue> timers;
  std::unique_ptr<GrpcBranchCaller> caller;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Recovery> recovery;
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<grpc::Server> server;
};

absl::StatusOr<std::unique_ptr<DtmServer>> DtmServer::Start(const ServerConfig& config) {
  auto p = std::make_unique<Parts>();
  StoreOptions so;
  so.schema = config.schema;
  auto store = OpenStore(config.store, so);
  if (!store.ok()) return store.status();
  p->store = std::move(*store);
  p->clock = std::make_unique<StoreClock>(p->store.get());
  p->pool = std::make_unique<ThreadPool>(config.threads);
  p->timers = std::make_unique<TimerQueue>(p->clock.get());
  p->caller = std::make_unique<GrpcBranchCaller>();
  EngineOptions eo;
  eo.lease = config.lease;
  eo.owner = OwnerId();
  eo.self_address = config.advertise.empty() ? config.listen : config.advertise;
  p->engine = std::make_unique<Engine>(eo, p->store.get(), p->caller.get(), p->clock.get(),
                                       p->timers.get(), p->pool.get());
  p->service = std::make_unique<CoordinatorService>(p->engine.get(), config.limits);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(p->service.get());
  // Room for the largest allowed saga: every step's payload plus framing.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(INT32_MAX / 2, config.limits.max_payload_bytes * 4 + (1 << 20))));
  p->server = builder.BuildAndStart();
  if (!p->server || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", config.listen, "' (address in use or invalid?)"));
  }
  if (config.advertise.empty()) {
    // Listening on port 0 picks a port: advertise the one we got.
    std::string host = config.listen.substr(0, config.listen.rfind(':'));
    p->engine->set_self_address(absl::StrCat(host, ":", port));
  }
  p->server->GetHealthCheckService()->SetServingStatus(true);
  p->server->GetHealthCheckService()->SetServingStatus("dtm.v1.Coordinator", true);

  p->recovery =
      std::make_unique<Recovery>(config.recovery, p->store.get(), p->engine.get(), p->clock.get());
  p->recovery->Start();
  auto s = std::unique_ptr<DtmServer>(new DtmServer(std::move(p)));
  s->port_ = port;
  return s;
}

DtmServer::DtmServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

DtmServer::~DtmServer() { Shutdown(absl::Seconds(5)); }

void DtmServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  Parts& p = *parts_;
  p.server->GetHealthCheckService()->SetServingStatus(false);
  p.recovery->Stop();
  p.engine->Shutdown();  // answers wait_result callers so their RPCs can finish
  p.server->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  p.caller->Shutdown();
  p.timers->Shutdown();
  p.pool->Shutdown();
  p.store->Close();
}

}  // namespace dtm
