#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/admin/admin_page.h"
#include "server/api/admin/admin_api.h"
#include "server/api/coordinator_service.h"
#include "server/api/dtmgimp/dtmgimp_service.h"
#include "server/api/http/dtm_http_api.h"
#include "server/branch/grpc/grpc_branch_caller.h"
#include "server/branch/http/http_branch_caller.h"
#include "server/branch/protocol_router.h"
#include "server/http/http_server.h"
#include "server/observability.h"
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

// Declared in shutdown order, reversed: members are destroyed bottom-up. The HTTP server comes
// first: its connections may be referred to by answers still held elsewhere until the end.
struct DtmServer::Parts {
  std::unique_ptr<Metrics> metrics = std::make_unique<Metrics>();  // counted into until the end
  HttpRouter http_router;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<Store> store;
  std::unique_ptr<StoreClock> clock;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<TimerQueue> timers;
  std::unique_ptr<GrpcBranchCaller> grpc_caller;
  std::unique_ptr<HttpBranchCaller> http_caller;
  std::unique_ptr<ProtocolRouter> caller;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Recovery> recovery;
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<DtmgimpService> dtmgimp_service;  // DTM's gRPC API, on the same port
  std::unique_ptr<DtmHttpApi> http_api;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  std::unique_ptr<AdminApi> admin_api;  // dtm.v1 as JSON under /v1/, for the admin page
  std::unique_ptr<grpc::Server> server;
  bool stopped = false;

  // Stops what is running, in order: nothing is called into once it is gone, and the store
  // is closed last, once nothing can write to it. Also for parts a failed Start left half
  // built (the gRPC port may have served for a moment before the HTTP one failed), so it
  // checks each part; the members' destructors then only free memory.
  void Stop(absl::Duration grace);
  ~Parts() { Stop(absl::ZeroDuration()); }
};

void DtmServer::Parts::Stop(absl::Duration grace) {
  if (stopped) return;
  stopped = true;
  if (server) server->GetHealthCheckService()->SetServingStatus(false);
  if (engine) engine->set_made_due_hook(nullptr);
  if (recovery) recovery->Stop();
  if (engine) engine->Shutdown();  // answers wait_result callers so their RPCs can finish
  absl::Time deadline = absl::Now() + grace;
  if (http) http->Shutdown(grace);
  if (server) server->Shutdown(absl::ToChronoTime(std::max(deadline, absl::Now())));
  if (caller) caller->Shutdown();
  if (timers) timers->Shutdown();
  if (pool) pool->Shutdown();
  if (store) store->Close();
}

absl::StatusOr<std::unique_ptr<DtmServer>> DtmServer::Start(const ServerConfig& config) {
  auto p = std::make_unique<Parts>();
  StoreOptions so;
  so.schema = config.schema;
  so.init = config.init_store;
  so.lease = config.lease;
  auto store = OpenStore(config.store, so);
  if (!store.ok()) return store.status();
  p->store = std::move(*store);
  p->store->set_commit_observer([metrics = p->metrics.get()](absl::Duration took, size_t n) {
    metrics->StoreCommitted(took, n);
  });
  p->clock = std::make_unique<StoreClock>(p->store.get());
  p->pool = std::make_unique<ThreadPool>(config.threads);
  p->timers = std::make_unique<TimerQueue>(p->clock.get());
  GrpcBranchCallerOptions go;
  go.max_channels = config.max_branch_channels;
  go.balanced_renew_interval = config.branch_channel_renew_interval;
  go.verbose_errors = config.verbose_errors;
  if (!config.branch_ca_file.empty()) {
    std::ifstream in(config.branch_ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--branch_ca_file '", config.branch_ca_file,
                                                     "' is not a readable PEM certificate file"));
    }
    go.ca_pem = pem.str();
  }
  p->grpc_caller = std::make_unique<GrpcBranchCaller>(go);
  HttpBranchCallerOptions ho;
  ho.ca_file = config.branch_ca_file;
  ho.addresses.refresh_interval = config.branch_resolve_interval;
  ho.verbose_errors = config.verbose_errors;
  p->http_caller = std::make_unique<HttpBranchCaller>(ho);
  p->caller = std::make_unique<ProtocolRouter>(p->grpc_caller.get(), p->http_caller.get());
  EngineOptions eo;
  eo.lease = config.lease;
  eo.park_after = config.park_after;
  eo.owner = OwnerId();
  eo.metrics = p->metrics.get();
  eo.self_address = config.advertise.empty() ? config.listen : config.advertise;
  p->engine = std::make_unique<Engine>(eo, p->store.get(), p->caller.get(), p->clock.get(),
                                       p->timers.get(), p->pool.get());
  p->service = std::make_unique<CoordinatorService>(p->engine.get(), config.limits);
  p->dtmgimp_service = std::make_unique<DtmgimpService>(p->engine.get(), config.limits);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (config.tls.enabled()) {
    // Checked here, once: gRPC's file watcher would only log a bad file and fail handshakes.
    absl::Status files = CheckServerTlsFiles(config.tls);
    if (!files.ok()) return files;
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        config.tls.key_file, config.tls.cert_file, config.tls.client_ca_file,
        static_cast<unsigned>(
            std::max<int64_t>(1, absl::ToInt64Seconds(config.tls_reload_interval))));
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_identity_key_cert_pairs();
    if (!config.tls.client_ca_file.empty()) {
      options.watch_root_certs();
      options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    }
    credentials = grpc::experimental::TlsServerCredentials(options);
  }
  builder.AddListeningPort(config.listen, credentials, &port);
  builder.RegisterService(p->service.get());
  builder.RegisterService(p->dtmgimp_service.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(NewApiMetricsInterceptor(p->metrics.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_IDLE_MS,
      static_cast<int>(
          std::min<int64_t>(absl::ToInt64Milliseconds(config.idle_connection_timeout), INT32_MAX)));
  // gRPC listens with SO_REUSEPORT by default: a second dtmd started on a port in use would
  // silently share its connections (against another store, or the same one) instead of
  // failing to start.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             static_cast<int>(std::min<int64_t>(
                                 absl::ToInt64Milliseconds(config.handshake_timeout), INT32_MAX)));
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
  if (!config.http_listen.empty()) {
    p->http_api = std::make_unique<DtmHttpApi>(p->engine.get(), config.limits);
    p->http_api->Register(&p->http_router);
    p->metrics_endpoint = std::make_unique<MetricsEndpoint>(p->metrics.get(), p->store.get(),
                                                            p->engine.get(), p->pool.get());
    p->metrics_endpoint->Register(&p->http_router);
    CountHttpRequests(&p->http_router, p->metrics.get());
    p->admin_api = std::make_unique<AdminApi>(p->engine.get(), config.limits);
    p->admin_api->Register(&p->http_router);
    RegisterAdminPage(&p->http_router);
    HttpServerOptions ho;
    ho.listen = config.http_listen;
    ho.tls = config.tls;
    ho.tls_reload_interval = config.tls_reload_interval;
    // Room for the largest allowed transaction, as on the gRPC port.
    ho.max_body_bytes = config.limits.max_payload_bytes * 4 + (1 << 20);
    // Every connection is a file descriptor, as are gRPC's connections, the branch channels
    // and the store's files or sessions: idle HTTP connections may take at most a quarter of
    // the open-file limit, so that they cannot leave the gRPC listener unable to accept.
    if (rlimit r{}; getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
      ho.max_connections = static_cast<int>(std::min<rlim_t>(
          static_cast<rlim_t>(ho.max_connections), std::max<rlim_t>(16, r.rlim_cur / 4)));
    }
    auto http = HttpServer::Start(ho, &p->http_router);
    if (!http.ok()) return http.status();  // ~Parts stops the gRPC server and the rest
    p->http = *std::move(http);
    std::string host = config.http_listen.substr(0, config.http_listen.rfind(':'));
    std::string advertised =
        config.advertise.empty() ? host : config.advertise.substr(0, config.advertise.rfind(':'));
    p->engine->set_http_self_address(absl::StrCat(config.tls.enabled() ? "https://" : "http://",
                                                  advertised, ":", p->http->port(), "/api/dtmsvr"));
  }
  p->server->GetHealthCheckService()->SetServingStatus(true);
  p->server->GetHealthCheckService()->SetServingStatus("dtm.v1.Coordinator", true);
  p->server->GetHealthCheckService()->SetServingStatus("dtmgimp.Dtm", true);

  p->recovery =
      std::make_unique<Recovery>(config.recovery, p->store.get(), p->engine.get(), p->clock.get());
  p->engine->set_made_due_hook([recovery = p->recovery.get()] { recovery->Nudge(); });
  p->recovery->Start();
  int http_port = p->http ? p->http->port() : 0;
  auto s = std::unique_ptr<DtmServer>(new DtmServer(std::move(p)));
  s->port_ = port;
  s->http_port_ = http_port;
  return s;
}

DtmServer::DtmServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

DtmServer::~DtmServer() { Shutdown(absl::Seconds(5)); }

void DtmServer::Shutdown(absl::Duration grace) { parts_->Stop(grace); }

}  // namespace dtm
