// DtmServer: wires store, runtime, engine, recovery, the branch callers, the gRPC server (with
// dtm.v1.Coordinator and DTM's dtmgimp.Dtm) and the HTTP server together, and takes them down in
// the right order. main.cc only turns flags into a ServerConfig.
#ifndef DTM_SERVER_SERVER_H_
#define DTM_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api/validation.h"
#include "server/engine/engine.h"
#include "server/http/http_server.h"
#include "server/recovery/recovery.h"

namespace dtm {

struct ServerConfig {
  std::string listen = "0.0.0.0:36790";
  // DTM's HTTP API; empty: no HTTP server.
  std::string http_listen = "0.0.0.0:36789";
  // PEM CAs that grpcs:// and https:// branches' certificates are checked against; empty: the
  // system's.
  std::string branch_ca_file{};
  // TLS of both listeners, gRPC and HTTP (with client_ca_file: client certificates required);
  // no cert_file: plaintext. The files are read again when they change, looked at every
  // tls_reload_interval.
  TlsFiles tls{};
  absl::Duration tls_reload_interval = absl::Seconds(10);
  std::string store = "sqlite://dtm.db";
  std::string schema;       // PostgreSQL schema for dtm's tables; empty: public
  bool init_store = false;  // SQLite: create a store in an existing file that holds none
  // Address branches see in dtm-dtm; defaults to the listen address.
  std::string advertise;
  int threads = 4;
  ApiLimits limits;
  // Open channels to gRPC branch services (least recently used idle ones close beyond it).
  size_t max_branch_channels = 1000;
  // How often a name an HTTP branch target uses is resolved again while in use.
  absl::Duration branch_resolve_interval = absl::Seconds(5);
  // How often a dns:/// branch channel is renewed (resolving its name afresh) so that new
  // addresses get calls; InfiniteDuration: never.
  absl::Duration branch_channel_renew_interval = absl::Seconds(30);
  // Branch transport errors in last_error as gRPC and libcurl word them (they tell what
  // listens at an address); off: one generic text.
  bool verbose_errors = false;
  // Client connections: closed after this long without an RPC, or without finishing the
  // HTTP/2 handshake, so that idle or half-open connections do not pile up.
  absl::Duration idle_connection_timeout = absl::Minutes(10);
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration lease = absl::Seconds(10);
  absl::Duration park_after = absl::Seconds(30);  // EngineOptions::park_after
  RecoveryOptions recovery;
};

class DtmServer {
 public:
  // Opens the store, starts the engine, recovery and the gRPC server.
  static absl::StatusOr<std::unique_ptr<DtmServer>> Start(const ServerConfig& config);
  ~DtmServer();

  int port() const { return port_; }
  int http_port() const { return http_port_; }  // 0 without an HTTP server
  // Health NOT_SERVING, answers waiters, drains RPCs for up to `grace`, stops branch
  // calls, timers and threads, flushes the store. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  struct Parts;
  explicit DtmServer(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
  int port_ = 0;
  int http_port_ = 0;
};

}  // namespace dtm

#endif  // DTM_SERVER_SERVER_H_
