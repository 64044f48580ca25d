// dtmd: flags and environment -> ServerConfig -> DtmServer; waits for SIGTERM/SIGINT.
#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/runtime/log.h"
#include "server/runtime/monotonic_wait.h"
#include "server/runtime/thread_name.h"
#include "server/server.h"
#include "storage/open/open_store.h"

namespace {

// Raises the soft limit on open files to the hard one. Every client connection and every
// branch channel is a file descriptor; at the soft limit (often 1024) gRPC's listener fails
// accept4 with EMFILE and, in the gRPC versions Debian ships, never accepts again.
void RaiseOpenFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
  rlim_t was = r.rlim_cur;
  r.rlim_cur = r.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &r) == 0) {
    dtm::Log(dtm::LogLevel::kInfo, "open file limit raised")
        .Field("from", static_cast<int64_t>(was))
        .Field("to", static_cast<int64_t>(r.rlim_cur));
  }
}

// Log lines a client can cause, one per request or connection: protobuf logs an ERROR line
// for every request carrying a string that is not UTF-8 (the request is refused anyway), gRPC
// one for every failed TLS handshake (a plaintext client on a TLS port, a missing client
// certificate). A client could fill the log with them, so at most one line per place in the
// code (file and line) is written per minute, with the count of those left out; fatal ones
// always. Per place, so that one kind of noise does not hide another kind of error.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(const char* source) : source_(source) {}

  void Write(bool fatal, const char* file, int line, const char* message) {
    int64_t before = 0;
    {
      absl::MutexLock lock(&mu_);
      absl::Time now = absl::Now();
      Window& w = windows_[absl::StrCat(file, ":", line)];
      if (!fatal && now < w.end) {
        ++w.left_out;
        return;
      }
      w.end = now + absl::Minutes(1);
      before = w.left_out;
      w.left_out = 0;
    }
    dtm::Log(fatal ? dtm::LogLevel::kError : dtm::LogLevel::kWarning,
             absl::StrCat(source_, " ", file, ":", line, ": ", message))
        .Field("left_out_last_minute", before);
  }

 private:
  struct Window {
    absl::Time end = absl::InfinitePast();
    int64_t left_out = 0;
  };
  const char* const source_;
  absl::Mutex mu_;
  // One per place that logged (a few dozen in gRPC and protobuf at most).
  absl::flat_hash_map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
};

RateLimitedLog& ProtobufLog() {
  static auto* log = new RateLimitedLog("libprotobuf");
  return *log;
}

RateLimitedLog& GrpcLog() {
  static auto* log = new RateLimitedLog("grpc");
  return *log;
}

void RateLimitedProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                            const std::string& message) {
  ProtobufLog().Write(level == google::protobuf::LOGLEVEL_FATAL, file, line, message.c_str());
}

void RateLimitedGrpcLog(gpr_log_func_args* args) {
  if (args->severity < GPR_LOG_SEVERITY_ERROR) {  // asked for with GRPC_VERBOSITY: all of it
    dtm::LogLine(dtm::LogLevel::kInfo,
                 absl::StrCat("grpc ", args->file, ":", args->line, ": ", args->message));
    return;
  }
  GrpcLog().Write(false, args->file, args->line, args->message);
}

// Whether a listen address ("host:port") takes connections from this machine only.
bool LoopbackOnly(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

// Checks that the gRPC listener still accepts connections. gRPC 1.51 stops accepting for good
// after accept4 fails with EMFILE (too many open files), while the connections it has keep
// working: from outside, dtmd looks alive but nobody new can reach it. Every `interval`, a new
// channel (never a pooled connection) asks the health service; after kFailures failures in a
// row the watchdog says why and sends SIGTERM to dtmd, which shuts down and exits with 3.
// A TLS listener (which may want a client certificate the watchdog does not have) is checked
// by a TLS handshake instead: any answer from the server's TLS stack shows that the connection
// was accepted, while a connection the accept loop never took sits unanswered in the backlog.
class ListenerWatchdog {
 public:
  static constexpr int kFailures = 3;

  ListenerWatchdog(absl::Duration interval, const std::string& listen, int port, bool tls)
      : tls_(tls) {
    if (interval <= absl::ZeroDuration()) return;
    std::string host = listen.substr(0, listen.rfind(':'));
    if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "*") host = "127.0.0.1";
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    thread_ = std::thread([this, interval, host, port] {
      dtm::NameThisThread("dtm-watchdog");
      Run(interval, host, port);
    });
  }
  ~ListenerWatchdog() { Stop(); }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    wait_.Notify();
    if (thread_.joinable()) thread_.join();
  }
  bool fired() {
    absl::MutexLock lock(&mu_);
    return fired_;
  }

 private:
  static grpc::Status CheckOnce(const std::string& target, absl::Duration timeout) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    grpc::GenericStub stub(channel);
    grpc::ByteBuffer request;  // HealthCheckRequest{service: ""}: no bytes
    grpc::Slice empty("");
    request = grpc::ByteBuffer(&empty, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                   &response, [&](const grpc::Status& s) {
                     status = s;
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  // Connects to host:port and starts a TLS handshake (no verification: only whether the
  // server answers matters). OK once the server's TLS stack answered, the error otherwise.
  static grpc::Status HandshakeOnce(const std::string& host, int port, absl::Duration timeout) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* addrs = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addrs) != 0 ||
        addrs == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot resolve " + host);
    }
    int fd = socket(addrs->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv = absl::ToTimeval(timeout);
    grpc::Status result(grpc::StatusCode::UNAVAILABLE, "no TLS answer in time");
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
        connect(fd, addrs->ai_addr, addrs->ai_addrlen) == 0) {
      SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
      SSL* ssl = ctx != nullptr ? SSL_new(ctx) : nullptr;
      if (ssl != nullptr) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
        static const unsigned char kAlpn[] = {2, 'h', '2'};
        SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn));
        SSL_set_fd(ssl, fd);
        ERR_clear_error();
        int rc = SSL_connect(ssl);
        // Done, or refused by the server's TLS stack (an alert): either way it answered.
        if (rc == 1 || SSL_get_error(ssl, rc) == SSL_ERROR_SSL) result = grpc::Status::OK;
        SSL_free(ssl);
      }
      SSL_CTX_free(ctx);
    } else if (fd >= 0) {
      result = grpc::Status(grpc::StatusCode::UNAVAILABLE, std::strerror(errno));
    }
    if (fd >= 0) close(fd);
    freeaddrinfo(addrs);
    return result;
  }

  void Run(absl::Duration interval, const std::string& host, int port) {
    const std::string target = absl::StrCat(
        host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host, ":", port);
    int failures = 0;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (wait_.For(mu_, interval, [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; })) {
          return;
        }
      }
      // Generous, so that a loaded machine is not taken for a dead listener.
      const absl::Duration timeout = std::clamp(interval, absl::Seconds(2), absl::Seconds(10));
      grpc::Status st = tls_ ? HandshakeOnce(host, port, timeout) : CheckOnce(target, timeout);
      failures = st.ok() ? 0 : failures + 1;
      if (failures < kFailures) continue;
      dtm::LogLine(
          dtm::LogLevel::kError,
          absl::StrCat("the gRPC listener (", target, ") accepts no new connections: ", failures,
                       " checks in a row failed, the last with ", st.error_message(),
                       "; exiting so that a supervisor restarts dtmd"));
      {
        absl::MutexLock lock(&mu_);
        fired_ = true;
      }
      kill(getpid(), SIGTERM);
      return;
    }
  }

  const bool tls_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  dtm::MonotonicWait wait_;  // between checks
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

ABSL_FLAG(std::string, listen, "0.0.0.0:36790", "gRPC listen address (env DTM_LISTEN)");
ABSL_FLAG(std::string, http_listen, "0.0.0.0:36789",
          "HTTP listen address for DTM's HTTP API (/api/dtmsvr/...); empty: no HTTP server "
          "(env DTM_HTTP_LISTEN)");
ABSL_FLAG(std::string, branch_ca_file, "",
          "PEM file of the CAs that grpcs:// and https:// branch services' certificates are "
          "verified against; empty: the system's CAs (env DTM_BRANCH_CA_FILE)");
ABSL_FLAG(std::string, http_ca_file, "",
          "the former name of --branch_ca_file (env DTM_HTTP_CA_FILE), used when that is empty");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain (leaf first) for TLS on both listeners, gRPC and HTTP; empty: "
          "plaintext. Read again when it changes (env DTM_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (env DTM_TLS_KEY)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CAs of client certificates: with it, both listeners require a client "
          "certificate signed by one of them (mutual TLS) (env DTM_TLS_CLIENT_CA)");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(10),
          "how often the TLS files are looked at for changes (env DTM_TLS_RELOAD_INTERVAL)");
ABSL_FLAG(std::string, store, "sqlite://dtm.db",
          "store: sqlite:///abs/path.db, sqlite://relative.db, or PostgreSQL as a URL "
          "(postgresql://user:pw@host1,host2/db?target_session_attrs=read-write) or libpq "
          "key=value string (env DTM_STORE)");
ABSL_FLAG(std::string, schema, "",
          "PostgreSQL schema for dtm's tables, created if missing; empty: public (env DTM_SCHEMA)");
ABSL_FLAG(bool, init_store, false,
          "SQLite: create a new store in an existing file that holds none (dtmd refuses to "
          "start on an empty or foreign file otherwise, as it would on a damaged one)");
ABSL_FLAG(std::string, advertise, "",
          "address sent to branches as dtm-dtm; default: --listen (env DTM_ADVERTISE)");
ABSL_FLAG(int64_t, threads, 0,
          "engine worker threads; 0: one per hardware thread, at least 2 (env DTM_THREADS)");
ABSL_FLAG(int64_t, max_payload_bytes, 1 << 20,
          "largest step payload accepted (env DTM_MAX_PAYLOAD_BYTES)");
ABSL_FLAG(
    int64_t, max_steps, 1000,
    "most steps in a saga or msg, and branches registered in a tcc or xa (env DTM_MAX_STEPS)");
ABSL_FLAG(int64_t, max_transaction_bytes, 16 << 20,
          "most bytes of targets and payloads in one transaction, registered tcc and xa "
          "branches included (env DTM_MAX_TRANSACTION_BYTES)");
ABSL_FLAG(int64_t, max_list_bytes, 4 << 20,
          "a List page ends early, with a page token, past this many bytes "
          "(env DTM_MAX_LIST_BYTES)");
ABSL_FLAG(int64_t, max_header_bytes, 4096,
          "most bytes of branch_headers (keys and values) per transaction "
          "(env DTM_MAX_HEADER_BYTES)");
ABSL_FLAG(int64_t, max_headers, 32, "most branch_headers per transaction (env DTM_MAX_HEADERS)");
ABSL_FLAG(absl::Duration, min_retry_interval, absl::Milliseconds(100),
          "smallest retry_interval a client may ask for (env DTM_MIN_RETRY_INTERVAL)");
ABSL_FLAG(absl::Duration, min_request_timeout, absl::Milliseconds(100),
          "smallest request_timeout a client may ask for (env DTM_MIN_REQUEST_TIMEOUT)");
ABSL_FLAG(int64_t, max_active_transactions, 50000,
          "transactions in memory (running, or waiting for a retry due within --park_after; "
          "about 13 KB each) beyond which new Submits and Prepares are refused with "
          "RESOURCE_EXHAUSTED; transactions waiting longer wait in the store and do not count "
          "(env DTM_MAX_ACTIVE_TRANSACTIONS)");
ABSL_FLAG(absl::Duration, retry_all_interval, absl::Seconds(10),
          "RetryNow of all waiting transactions runs at most once per this interval "
          "(env DTM_RETRY_ALL_INTERVAL)");
ABSL_FLAG(int64_t, max_branch_channels, 1000,
          "most open channels to gRPC branch services; the least recently used idle ones "
          "close beyond it (env DTM_MAX_BRANCH_CHANNELS)");
ABSL_FLAG(absl::Duration, branch_resolve_interval, absl::Seconds(5),
          "how often a name an HTTP branch target uses is resolved again while in use; calls "
          "go to each of its addresses in turn (env DTM_BRANCH_RESOLVE_INTERVAL)");
ABSL_FLAG(absl::Duration, branch_channel_renew_interval, absl::Seconds(30),
          "how often a dns:/// branch channel is renewed, resolving its name afresh so that new "
          "addresses (pods) get calls; 0: never (env DTM_BRANCH_CHANNEL_RENEW_INTERVAL)");
ABSL_FLAG(std::string, allowed_targets, "",
          "comma-separated hosts (busi.example.com), name suffixes (*.svc.cluster.local), IP "
          "literals or networks (10.0.0.0/8), each with an optional :port, that branch targets "
          "may name; others are refused with PERMISSION_DENIED. Empty: any "
          "(env DTM_ALLOWED_TARGETS)");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "file of client bearer tokens, one '<token> <name> <role>' per line, role submit or "
          "admin; read again when it changes. Every call then needs 'authorization: Bearer "
          "<token>'; submit tokens act only on their own transactions and see branch_headers "
          "redacted, admin tokens may do everything. Empty: clients are not authenticated "
          "(env DTM_AUTH_TOKENS_FILE)");
ABSL_FLAG(bool, verbose_errors, false,
          "branch transport errors in last_error as gRPC and libcurl word them (\"Connection "
          "refused\", \"Socket closed\"); off, one generic text, so that clients cannot use "
          "dtmd to learn what listens where");
ABSL_FLAG(absl::Duration, idle_connection_timeout, absl::Minutes(10),
          "a gRPC client connection without an RPC for this long is closed "
          "(env DTM_IDLE_CONNECTION_TIMEOUT)");
ABSL_FLAG(absl::Duration, handshake_timeout, absl::Seconds(10),
          "a gRPC client connection that has not finished its HTTP/2 handshake in this long is "
          "closed (env DTM_HANDSHAKE_TIMEOUT)");
ABSL_FLAG(absl::Duration, listener_check_interval, absl::Seconds(5),
          "how often dtmd checks, over a new connection, that its gRPC listener still accepts; "
          "after 3 failed checks in a row it exits (status 3) for its supervisor to restart it. "
          "0: no check (env DTM_LISTENER_CHECK_INTERVAL)");
ABSL_FLAG(absl::Duration, timeout_to_fail, absl::Seconds(35),
          "how long a tcc, xa or msg may stay PREPARED when its options do not say: then the tcc "
          "or xa is aborted and the msg back-checked (env DTM_TIMEOUT_TO_FAIL)");
ABSL_FLAG(absl::Duration, lease, absl::Seconds(10),
          "how long in-flight work is reserved before recovery may take it after a crash "
          "(env DTM_LEASE)");
ABSL_FLAG(absl::Duration, park_after, absl::Seconds(30),
          "a transaction whose next retry is at least this far ahead leaves memory and waits "
          "in the store until recovery claims it when due; longer than --lease "
          "(env DTM_PARK_AFTER)");
ABSL_FLAG(absl::Duration, recovery_interval, absl::Seconds(1),
          "how often due transactions are claimed (env DTM_RECOVERY_INTERVAL)");
ABSL_FLAG(absl::Duration, retention, absl::Hours(24 * 7),
          "finished transactions older than this are purged; 0 keeps them (env DTM_RETENTION)");
ABSL_FLAG(absl::Duration, purge_interval, absl::Minutes(10),
          "how often the purge runs (env DTM_PURGE_INTERVAL)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "how long in-flight RPCs may finish on SIGTERM (env DTM_SHUTDOWN_GRACE)");

ABSL_FLAG(std::string, log_format, "text",
          "text: 'dtmd: message key=value ...' lines; json: one JSON object per line with ts, "
          "level, msg and the fields (env DTM_LOG_FORMAT)");
ABSL_FLAG(std::string, log_level, "info",
          "debug (every branch answer too), info (every state change of a transaction), "
          "warning or error (env DTM_LOG_LEVEL)");

namespace {

// Every flag above but --init_store and --verbose_errors (a one-off and a debugging aid) can be
// given as an environment variable: DTM_ and the flag's name in capitals. The Kubernetes
// manifests and the systemd unit configure dtmd that way. A variable that is set, even to
// nothing, is the flag given that value (DTM_HTTP_LISTEN= means no HTTP server, as
// --http_listen= does); the command line wins over it. A value the flag would refuse is refused
// the same way, naming the variable, rather than quietly replaced by the default.
bool ApplyEnvironment() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->Filename() != __FILE__ || name == "init_store" || name == "verbose_errors") {
      continue;
    }
    const std::string var = absl::StrCat("DTM_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "dtmd: environment variable %s='%s': %s\n", var.c_str(), value,
                   error.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "dtmd: distributed transaction coordinator (gRPC dtm.v1.Coordinator, DTM's HTTP API)");
  if (!ApplyEnvironment()) return 2;
  absl::ParseCommandLine(argc, argv);
  {
    dtm::LogLevel level;
    dtm::LogFormat format;
    absl::Status s = dtm::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level);
    if (s.ok()) s = dtm::ParseLogFormat(absl::GetFlag(FLAGS_log_format), &format);
    if (!s.ok()) {
      std::fprintf(stderr, "dtmd: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    dtm::ConfigureLog(level, format);
  }

  // Debian's Abseil checks every lock acquisition for deadlock cycles at run time; it is a
  // debugging aid (tests keep it) that costs a graph update per mutex in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  RaiseOpenFileLimit();
  // glibc gives the top of a thread's heap back to the kernel as soon as 128 KiB of it are
  // free; with requests allocating and freeing across threads that is an madvise (and, with
  // two or more cores, a TLB shootdown on all of them) several times per transaction. Keep up
  // to 64 MiB of freed memory per heap for reuse instead: the working set is bounded anyway.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  // A peer that resets a connection must not kill dtmd through a write (OpenSSL's socket
  // writes in the listener check do not ask the kernel to spare the signal).
  signal(SIGPIPE, SIG_IGN);
  google::protobuf::SetLogHandler(&RateLimitedProtobufLog);
  gpr_set_log_function(&RateLimitedGrpcLog);

  // Block the signals before any thread starts so that only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  dtm::ServerConfig config;
  config.listen = absl::GetFlag(FLAGS_listen);
  config.http_listen = absl::GetFlag(FLAGS_http_listen);
  config.branch_ca_file = absl::GetFlag(FLAGS_branch_ca_file);
  if (config.branch_ca_file.empty() && !absl::GetFlag(FLAGS_http_ca_file).empty()) {
    config.branch_ca_file = absl::GetFlag(FLAGS_http_ca_file);
    std::fprintf(stderr,
                 "dtmd: --http_ca_file (DTM_HTTP_CA_FILE) is now --branch_ca_file "
                 "(DTM_BRANCH_CA_FILE), for grpcs:// branches too\n");
  }
  config.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  config.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  config.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  config.tls_reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  if (config.tls.cert_file.empty() != config.tls.key_file.empty() ||
      (config.tls.cert_file.empty() && !config.tls.client_ca_file.empty())) {
    std::fprintf(stderr,
                 "dtmd: --tls_cert and --tls_key go together, and --tls_client_ca "
                 "needs them\n");
    return 2;
  }
  config.store = absl::GetFlag(FLAGS_store);
  config.schema = absl::GetFlag(FLAGS_schema);
  config.advertise = absl::GetFlag(FLAGS_advertise);
  config.init_store = absl::GetFlag(FLAGS_init_store);
  config.threads = static_cast<int>(absl::GetFlag(FLAGS_threads));
  if (config.threads == 0) {
    config.threads = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  }
  dtm::ApiLimits& limits = config.limits;
  const std::pair<const char*, int64_t> positive[] = {
      {"max_payload_bytes", absl::GetFlag(FLAGS_max_payload_bytes)},
      {"max_steps", absl::GetFlag(FLAGS_max_steps)},
      {"max_transaction_bytes", absl::GetFlag(FLAGS_max_transaction_bytes)},
      {"max_list_bytes", absl::GetFlag(FLAGS_max_list_bytes)},
      {"max_header_bytes", absl::GetFlag(FLAGS_max_header_bytes)},
      {"max_headers", absl::GetFlag(FLAGS_max_headers)},
      {"max_branch_channels", absl::GetFlag(FLAGS_max_branch_channels)},
      {"max_active_transactions", absl::GetFlag(FLAGS_max_active_transactions)},
  };
  for (const auto& [name, value] : positive) {
    if (value < 1 || value > (int64_t{1} << 40)) {
      std::fprintf(stderr, "dtmd: --%s %lld must be in [1, 2^40]\n", name,
                   static_cast<long long>(value));
      return 2;
    }
  }
  limits.max_payload_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_payload_bytes));
  limits.max_steps = static_cast<int>(std::min<int64_t>(absl::GetFlag(FLAGS_max_steps), 1 << 20));
  limits.max_transaction_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_transaction_bytes));
  limits.max_list_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_list_bytes));
  limits.max_header_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_header_bytes));
  limits.max_headers = static_cast<int>(std::min<int64_t>(absl::GetFlag(FLAGS_max_headers), 4096));
  limits.min_retry_interval = absl::GetFlag(FLAGS_min_retry_interval);
  limits.min_request_timeout = absl::GetFlag(FLAGS_min_request_timeout);
  limits.max_active_transactions =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_active_transactions));
  limits.retry_all_interval = absl::GetFlag(FLAGS_retry_all_interval);
  if (std::string allowed = absl::GetFlag(FLAGS_allowed_targets); !allowed.empty()) {
    absl::StatusOr<dtm::AllowedTargets> parsed = dtm::AllowedTargets::Parse(allowed);
    if (!parsed.ok()) {
      std::fprintf(stderr, "dtmd: %s\n", std::string(parsed.status().message()).c_str());
      return 2;
    }
    limits.allowed_targets = std::make_shared<const dtm::AllowedTargets>(*std::move(parsed));
  }
  if (std::string path = absl::GetFlag(FLAGS_auth_tokens_file); !path.empty()) {
    absl::StatusOr<std::unique_ptr<dtm::AuthTokens>> tokens = dtm::AuthTokens::Load(path);
    if (!tokens.ok()) {
      std::fprintf(stderr, "dtmd: --auth_tokens_file: %s\n",
                   std::string(tokens.status().message()).c_str());
      return 2;
    }
    limits.auth_tokens = std::shared_ptr<dtm::AuthTokens>(*std::move(tokens));
  }
  config.max_branch_channels = static_cast<size_t>(absl::GetFlag(FLAGS_max_branch_channels));
  config.branch_resolve_interval = absl::GetFlag(FLAGS_branch_resolve_interval);
  if (config.branch_resolve_interval < absl::Milliseconds(100)) {
    std::fprintf(stderr, "dtmd: --branch_resolve_interval %s must be at least 100ms\n",
                 absl::FormatDuration(config.branch_resolve_interval).c_str());
    return 2;
  }
  config.branch_channel_renew_interval = absl::GetFlag(FLAGS_branch_channel_renew_interval);
  if (config.branch_channel_renew_interval == absl::ZeroDuration()) {
    config.branch_channel_renew_interval = absl::InfiniteDuration();
  } else if (config.branch_channel_renew_interval < absl::Seconds(1)) {
    std::fprintf(stderr,
                 "dtmd: --branch_channel_renew_interval %s must be 0 (never) or at least 1s\n",
                 absl::FormatDuration(config.branch_channel_renew_interval).c_str());
    return 2;
  }
  config.verbose_errors = absl::GetFlag(FLAGS_verbose_errors);
  config.idle_connection_timeout = absl::GetFlag(FLAGS_idle_connection_timeout);
  config.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
  config.lease = absl::GetFlag(FLAGS_lease);
  config.limits.default_timeout_to_fail = absl::GetFlag(FLAGS_timeout_to_fail);
  if (config.limits.default_timeout_to_fail <= absl::ZeroDuration()) {
    std::fprintf(stderr, "dtmd: --timeout_to_fail must be positive, not %s\n",
                 absl::FormatDuration(config.limits.default_timeout_to_fail).c_str());
    return 2;
  }
  config.recovery.lease = config.lease;
  config.park_after = absl::GetFlag(FLAGS_park_after);
  if (config.park_after <= config.lease) {
    std::fprintf(stderr,
                 "dtmd: --park_after %s must be longer than --lease %s (a transaction leaves "
                 "memory only for a wait its lease does not outlast)\n",
                 absl::FormatDuration(config.park_after).c_str(),
                 absl::FormatDuration(config.lease).c_str());
    return 2;
  }
  config.recovery.interval = absl::GetFlag(FLAGS_recovery_interval);
  config.recovery.max_active =
      std::min(config.recovery.max_active, config.limits.max_active_transactions);
  config.recovery.retention = absl::GetFlag(FLAGS_retention);
  config.recovery.purge_interval = absl::GetFlag(FLAGS_purge_interval);
  if (config.recovery.interval > config.lease / 3) {
    std::fprintf(stderr,
                 "dtmd: --recovery_interval %s must be at most a third of --lease %s (leases are "
                 "renewed on that tick)\n",
                 absl::FormatDuration(config.recovery.interval).c_str(),
                 absl::FormatDuration(config.lease).c_str());
    return 2;
  }
  if (config.threads < 1 || config.threads > 256) {
    std::fprintf(stderr, "dtmd: --threads %d must be in [1, 256]\n", config.threads);
    return 2;
  }

  // Logging never waits for stderr's reader from here on (log.h); stopped before returning.
  dtm::StartAsyncLog();
  auto server = dtm::DtmServer::Start(config);
  if (!server.ok()) {
    dtm::StopAsyncLog();
    std::fprintf(stderr, "dtmd: %s\n", server.status().ToString().c_str());
    // A malformed setting (a --store that is no store URL, say) is the operator's to fix;
    // anything else (the database unreachable, a port taken) may pass by itself.
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  dtm::Log(
      dtm::Log::Always{}, dtm::LogLevel::kInfo,
      absl::StrCat("serving dtm.v1.Coordinator and DTM's dtmgimp.Dtm on port ", (*server)->port()))
      .Field("listen", config.listen)
      .Field("store", dtm::DescribeStore(config.store));
  if ((*server)->http_port() != 0) {
    dtm::Log(dtm::Log::Always{}, dtm::LogLevel::kInfo,
             absl::StrCat("serving DTM's HTTP API, /metrics and the admin page on HTTP port ",
                          (*server)->http_port()))
        .Field("http_listen", config.http_listen);
  }
  const bool tls = config.tls.enabled();
  const bool authenticated =
      config.limits.auth_tokens != nullptr || !config.tls.client_ca_file.empty();
  for (const std::string* listen : {&config.listen, &config.http_listen}) {
    if (listen->empty() || LoopbackOnly(*listen) || (tls && authenticated)) continue;
    if (authenticated) {
      dtm::LogLine(dtm::LogLevel::kWarning,
                   absl::StrCat(*listen,
                                " accepts connections from other machines without TLS: client "
                                "tokens and transaction payloads cross the network in clear text. "
                                "Set --tls_cert and --tls_key."));
      continue;
    }
    dtm::Log(
        dtm::LogLevel::kWarning,
        absl::StrCat(
            *listen, " accepts connections from other machines without ", tls ? "" : "TLS or ",
            "client authentication: anyone who reaches it can run, list and stop "
            "transactions",
            config.limits.allowed_targets ? "" : " and make dtmd call any address it can reach",
            ". Set --auth_tokens_file (or --tls_client_ca), or keep the port private (a "
            "firewall, a Kubernetes NetworkPolicy)",
            config.limits.allowed_targets ? "" : "; and set --allowed_targets", "."));
  }
  std::fflush(stderr);

  ListenerWatchdog watchdog(absl::GetFlag(FLAGS_listener_check_interval), config.listen,
                            (*server)->port(), config.tls.enabled());
  int sig = 0;
  sigwait(&signals, &sig);
  watchdog.Stop();
  const bool listener_dead = watchdog.fired();
  dtm::LogLine(dtm::LogLevel::kInfo,
               absl::StrCat(listener_dead ? "listener check failed" : absl::StrCat("signal ", sig),
                            ", shutting down"));
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  dtm::LogLine(dtm::LogLevel::kInfo, "stopped");
  dtm::StopAsyncLog();
  return listener_dead ? 3 : 0;
}
