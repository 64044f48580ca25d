// HttpServer: dtmd's one HTTP front (DTM's HTTP API today; metrics and the admin page share
// it). HTTP/1.1 with keep-alive on Boost.Beast and Asio, a few I/O threads, no thread per
// connection and none blocked while a request is being worked on: a handler gets the request
// and a Responder it calls once, from any thread, when the answer is ready.
//
// Bounded against careless and hostile clients: the header size and the body size are capped
// (431 / 413), the headers of a request must arrive within `header_timeout` and its body within
// `body_timeout` (a slowloris is disconnected), an idle keep-alive connection is closed after
// `idle_timeout`, and beyond `max_connections` a new connection is closed at once. Unknown
// paths are 404 and known paths with another method 405, both with a JSON message.
//
// With TLS files it serves HTTPS only (TLS 1.2 and later), and with a client CA it requires
// and verifies a client certificate; the files are read again when they change (looked at on
// new connections, at most every `tls_reload_interval`), so a renewed certificate needs no
// restart.
//
// Thread-safe. Shutdown stops accepting, lets the requests in flight be answered for up to a
// grace period, then closes every connection and joins its threads.
#ifndef DTM_SERVER_HTTP_HTTP_SERVER_H_
#define DTM_SERVER_HTTP_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dtm {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // "/api/dtmsvr/query", percent-decoded
  // The query string's parameters, percent-decoded; a repeated name keeps its first value.
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string peer;  // "ip:port" of the client

  // The parameter `name` of the query string, or "".
  std::string Param(const std::string& name) const;
  // The header `name` (lower case), or "".
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// A JSON {"message": ...} response with `status`.
HttpResponse JsonError(int status, const std::string& message);

// Answers one request. Call it exactly once, from any thread; it never blocks.
using HttpResponder = std::function<void(HttpResponse)>;
// Runs on an I/O thread: it must not block (hand slow work to another executor).
using HttpHandler = std::function<void(HttpRequest, HttpResponder)>;

// Maps (method, path) to a handler: exact paths, then path prefixes (any method).
class HttpRouter {
 public:
  void Handle(const std::string& method, const std::string& path, HttpHandler handler);
  // Every path that starts with `prefix` and has no exact route, whatever the method.
  void HandlePrefix(const std::string& prefix, HttpHandler handler);
  // Calls the handler of the request's route, or answers 404 / 405.
  void Dispatch(HttpRequest request, HttpResponder respond) const;
  // `observer` learns of every answer: the route that took the request (its exact path, a
  // prefix followed by "*", or "unmatched": never the raw path, which a client chooses) and
  // the HTTP status. Set it before serving.
  using Observer = std::function<void(const std::string& route, int status)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

 private:
  // `respond`, telling the observer first.
  HttpResponder Observed(std::string route, HttpResponder respond) const;

  Observer observer_;
  std::map<std::string, std::map<std::string, HttpHandler>> routes_;  // path -> method ->
  std::vector<std::pair<std::string, HttpHandler>> prefixes_;
};

// PEM files of a TLS listener.
struct TlsFiles {
  std::string cert_file{};       // the certificate chain, leaf first; empty: no TLS
  std::string key_file{};        // its private key
  std::string client_ca_file{};  // non-empty: clients must present a certificate signed by these
  bool enabled() const { return !cert_file.empty(); }
};

// OK when `files` make a working server TLS setup (readable, PEM, the key matches the
// certificate, the CA file holds certificates); INVALID_ARGUMENT naming the file otherwise.
absl::Status CheckServerTlsFiles(const TlsFiles& files);

struct HttpServerOptions {
  std::string listen = "0.0.0.0:36789";  // host:port; port 0 picks one
  int threads = 2;
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 4 << 20;
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(60);
  int max_connections = 4096;
  TlsFiles tls{};
  // How often, at most, the TLS files are looked at for changes.
  absl::Duration tls_reload_interval = absl::Seconds(10);
};

class HttpServer {
 public:
  // Listens and serves `router` (which must outlive the server).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           const HttpRouter* router);
  ~HttpServer();  // Shutdown(0) if not shut down yet.

  int port() const;
  // Stops accepting, waits up to `grace` for the requests in flight to be answered (idle
  // keep-alive connections are closed at once, busy ones after their answer), then closes
  // what is left and joins the I/O threads. Idempotent.
  void Shutdown(absl::Duration grace);
  // Connections open now (for tests and metrics).
  int connections() const;

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtm

#endif  // DTM_SERVER_HTTP_HTTP_SERVER_H_
