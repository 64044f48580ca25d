#include "server/http/http_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "server/runtime/log.h"
#include "server/runtime/monotonic_wait.h"
#include "server/runtime/thread_name.h"

namespace dtm {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding of a path or (`plus_is_space`) a query component; a malformed escape is
// kept as it is.
std::string Decode(absl::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

absl::Duration Clamp(absl::Duration d) { return std::max(d, absl::Milliseconds(1)); }

// A server TLS context from `files`: TLS 1.2 or later, the certificate chain and key (checked
// to match), and with a client CA, a client certificate required and verified.
absl::StatusOr<std::shared_ptr<net::ssl::context>> MakeTlsContext(const TlsFiles& files) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  beast::error_code ec;
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use,
                   ec);
  auto bad = [&](const char* flag, const std::string& file) {
    // OpenSSL's reason ("no start line", "key values mismatch"), not Asio's "asio.ssl error".
    const char* reason = ec.category() == net::error::get_ssl_category()
                             ? ERR_reason_error_string(static_cast<unsigned long>(ec.value()))
                             : nullptr;
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " '", file, "': ", reason != nullptr ? reason : ec.message().c_str()));
  };
  for (const auto& [flag, file] :
       {std::pair<const char*, const std::string*>{"tls_cert", &files.cert_file},
        {"tls_key", &files.key_file},
        {"tls_client_ca", &files.client_ca_file}}) {
    if (!file->empty() && access(file->c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " '", *file, "' cannot be read: ", std::strerror(errno)));
    }
  }
  ctx->use_certificate_chain_file(files.cert_file, ec);
  if (ec) return bad("tls_cert", files.cert_file);
  ctx->use_private_key_file(files.key_file, net::ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(bad("tls_key", files.key_file).message(),
                                                   " (is it the key of --tls_cert '",
                                                   files.cert_file, "'?)"));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_key '", files.key_file, "' is not the key of --tls_cert '", files.cert_file, "'"));
  }
  if (!files.client_ca_file.empty()) {
    ctx->load_verify_file(files.client_ca_file, ec);
    if (ec) return bad("tls_client_ca", files.client_ca_file);
    ctx->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return bad("tls_client_ca", files.client_ca_file);
    // Resumed TLS 1.2 sessions of verified clients need a session id context.
    static const unsigned char kContext[] = "dtmd";
    SSL_CTX_set_session_id_context(ctx->native_handle(), kContext, sizeof(kContext) - 1);
  }
  return ctx;
}

// What identifies the files' current versions: inode, size, modification and change times of
// each (a copy that keeps an old modification time still changes the inode or ctime).
std::string FilesVersion(const TlsFiles& files) {
  std::string version;
  for (const std::string* f : {&files.cert_file, &files.key_file, &files.client_ca_file}) {
    struct stat st {};
    if (!f->empty() && stat(f->c_str(), &st) == 0) {
      absl::StrAppend(&version, st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, ":", st.st_ctim.tv_sec, ".", st.st_ctim.tv_nsec, ";");
    } else {
      absl::StrAppend(&version, "-;");
    }
  }
  return version;
}

}  // namespace

absl::Status CheckServerTlsFiles(const TlsFiles& files) { return MakeTlsContext(files).status(); }

std::string HttpRequest::Param(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? std::string() : it->second;
}

std::string HttpRequest::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

HttpResponse JsonError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"message", message}}.dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace);
  return r;
}

void HttpRouter::Handle(const std::string& method, const std::string& path, HttpHandler handler) {
  routes_[path][method] = std::move(handler);
}

void HttpRouter::HandlePrefix(const std::string& prefix, HttpHandler handler) {
  prefixes_.emplace_back(prefix, std::move(handler));
}

HttpResponder HttpRouter::Observed(std::string route, HttpResponder respond) const {
  if (!observer_) return respond;
  return [observer = &observer_, route = std::move(route),
          respond = std::move(respond)](HttpResponse r) {
    (*observer)(route, r.status);
    respond(std::move(r));
  };
}

void HttpRouter::Dispatch(HttpRequest request, HttpResponder respond) const {
  auto route = routes_.find(request.path);
  if (route == routes_.end()) {
    for (const auto& [prefix, handler] : prefixes_) {
      if (absl::StartsWith(request.path, prefix)) {
        handler(std::move(request), Observed(prefix + "*", std::move(respond)));
        return;
      }
    }
    respond = Observed("unmatched", std::move(respond));
    respond(JsonError(404, absl::StrCat("no such path: ", request.path)));
    return;
  }
  respond = Observed(route->first, std::move(respond));
  auto handler = route->second.find(request.method);
  if (handler == route->second.end()) {
    std::vector<std::string> allowed;
    for (const auto& [method, h] : route->second) allowed.push_back(method);
    HttpResponse r =
        JsonError(405, absl::StrCat(request.path, " takes ", absl::StrJoin(allowed, " or "),
                                    ", not ", request.method));
    r.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    respond(std::move(r));
    return;
  }
  handler->second(std::move(request), std::move(respond));
}

class HttpServer::Impl {
 public:
  class Session;

  Impl(const HttpServerOptions& options, const HttpRouter* router)
      : options_(options), router_(router), ioc_(std::max(1, options.threads)), acceptor_(ioc_) {}
  ~Impl();

  absl::Status Listen();
  void Run();
  void Shutdown(absl::Duration grace);
  int port() const { return port_; }
  int connections() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(sessions_.size());
  }

  const HttpServerOptions& options() const { return options_; }
  // The TLS context for a new connection (null without TLS), read again from the files when
  // they changed since the last look (at most every tls_reload_interval); a failed read keeps
  // the old one.
  std::shared_ptr<net::ssl::context> TlsContext();
  const HttpRouter& router() const { return *router_; }
  bool draining() const { return draining_.load(); }
  // A request was handed to its handler / answered: Shutdown waits for none to be left.
  void RequestStarted() {
    absl::MutexLock lock(&mu_);
    ++busy_;
  }
  void RequestAnswered() {
    absl::MutexLock lock(&mu_);
    if (--busy_ == 0) idle_.Notify();
  }
  // The session closed its connection: the server lets go of it.
  void Forget(Session* s) {
    std::shared_ptr<Session> last;  // destroyed after the lock is released
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(s);
    if (it == sessions_.end()) return;
    last = std::move(it->second);
    sessions_.erase(it);
  }

 private:
  void Accept();

  const HttpServerOptions options_;
  const HttpRouter* const router_;
  std::atomic<bool> draining_{false};
  bool shut_down_ = false;
  int port_ = 0;

  mutable absl::Mutex mu_;
  // The server owns its sessions until they close; a request's responder only holds a weak
  // reference, so an answer that comes after the connection is gone is dropped.
  absl::flat_hash_map<Session*, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  MonotonicWait idle_;  // Shutdown's wait for busy_ to reach 0
  std::shared_ptr<net::ssl::context> tls_ ABSL_GUARDED_BY(mu_);
  std::string tls_version_ ABSL_GUARDED_BY(mu_);
  absl::Time tls_next_check_ ABSL_GUARDED_BY(mu_);

  net::io_context ioc_;
  // Keeps the I/O threads running while no operation is pending: at shutdown, a request whose
  // handler is still working has none, and its answer must still be written.
  net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
  tcp::acceptor acceptor_;
  // After a failed accept, the wait before the next one; and when that was last logged. Both
  // used only by the accept chain (one accept outstanding at a time).
  net::steady_timer accept_retry_{ioc_};
  absl::Time accept_failure_logged_ = absl::InfinitePast();
  std::vector<std::thread> threads_;
};

// One connection: reads a request, hands it to the router, writes the answer, and reads the
// next one (keep-alive). Its handlers run on its own strand.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl* server, tcp::socket socket, std::shared_ptr<net::ssl::context> tls)
      : server_(server), tls_context_(std::move(tls)) {
    beast::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) peer_ = absl::StrCat(ep.address().to_string(), ":", ep.port());
    if (tls_context_) {
      tls_.emplace(std::move(socket), *tls_context_);
    } else {
      plain_.emplace(std::move(socket));
    }
  }
  void Start() {
    if (!tls_) return ReadHeader(/*first=*/true);
    tcp().expires_after(absl::ToChronoMilliseconds(Clamp(server_->options().header_timeout)));
    tls_->async_handshake(net::ssl::stream_base::server,
                          [self = shared_from_this()](beast::error_code ec) {
                            if (ec) return self->Close();  // not TLS, or no valid client cert
                            self->ReadHeader(/*first=*/true);
                          });
  }
  auto get_executor() { return tcp().get_executor(); }

  // On the strand: the server stops. An idle connection is closed now, a busy one after its
  // answer.
  void Drain() {
    if (!busy_) Close();
  }

 private:
  beast::tcp_stream& tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  // Runs `f` on the connection's stream, TLS or plain.
  template <typename F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  void ReadHeader(bool first) {
    if (server_->draining()) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options().max_header_bytes));
    parser_->body_limit(server_->options().max_body_bytes);
    const HttpServerOptions& o = server_->options();
    tcp().expires_after(absl::ToChronoMilliseconds(
        Clamp(first || buffer_.size() > 0 ? o.header_timeout : o.idle_timeout)));
    WithStream([this](auto& stream) {
      http::async_read_header(
          stream, buffer_, *parser_,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
    });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      Fail(ec);
      return;
    }
    tcp().expires_after(absl::ToChronoMilliseconds(Clamp(server_->options().body_timeout)));
    WithStream([this](auto& stream) {
      http::async_read(
          stream, buffer_, *parser_,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
    });
  }

  // A read that ended without a request: answer what the client got wrong, or just close.
  void Fail(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      Answer(JsonError(413, absl::StrCat("the request body is larger than ",
                                         server_->options().max_body_bytes, " bytes")),
             /*keep_alive=*/false);
    } else if (ec == http::error::header_limit) {
      Answer(JsonError(431, absl::StrCat("the request headers are larger than ",
                                         server_->options().max_header_bytes, " bytes")),
             /*keep_alive=*/false);
    } else if (ec.category() == beast::error_code(http::error::bad_method).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      Answer(JsonError(400, absl::StrCat("malformed HTTP request: ", ec.message())),
             /*keep_alive=*/false);
    } else {
      Close();  // the client left, or was too slow (timeout)
    }
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      Fail(ec);
      return;
    }
    http::request<http::string_body> msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    absl::string_view target(msg.target().data(), msg.target().size());
    size_t q = target.find('?');
    req.path = Decode(target.substr(0, q), /*plus_is_space=*/false);
    if (q != absl::string_view::npos) {
      for (absl::string_view kv : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
        std::pair<absl::string_view, absl::string_view> p =
            absl::StrSplit(kv, absl::MaxSplits('=', 1));
        req.query.emplace(Decode(p.first, true), Decode(p.second, true));
      }
    }
    for (const auto& field : msg) {
      req.headers.emplace(absl::AsciiStrToLower(absl::string_view(field.name_string().data(),
                                                                  field.name_string().size())),
                          std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.peer = peer_;
    busy_ = true;
    server_->RequestStarted();
    tcp().expires_never();  // the handler may take long (wait_result)
    auto answered = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<Session> weak = shared_from_this();
    server_->router().Dispatch(std::move(req), [weak, answered](HttpResponse r) {
      if (answered->exchange(true)) return;  // exactly once
      std::shared_ptr<Session> self = weak.lock();
      if (!self) return;  // the connection is gone
      net::post(self->get_executor(),
                [self, r = std::move(r)]() mutable { self->Respond(std::move(r)); });
    });
  }

  void Respond(HttpResponse r) { Answer(std::move(r), keep_alive_ && !server_->draining()); }

  void Answer(HttpResponse r, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version_ ? version_ : 11);
    res->set(http::field::server, "dtmd");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    tcp().expires_after(absl::ToChronoMilliseconds(Clamp(server_->options().body_timeout)));
    WithStream([this, &res, keep_alive](auto& stream) {
      http::async_write(stream, *res,
                        [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                          if (self->busy_) {  // the answer is out: Shutdown may stop waiting
                            self->busy_ = false;
                            self->server_->RequestAnswered();
                          }
                          if (ec || !keep_alive) {
                            self->Close();
                            return;
                          }
                          self->ReadHeader(/*first=*/false);
                        });
    });
  }

  // Closes the connection and lets the server forget the session (callers hold a reference).
  void Close() {
    if (closed_) return;
    closed_ = true;
    if (busy_) {
      busy_ = false;
      server_->RequestAnswered();
    }
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().socket().close(ec);
    server_->Forget(this);
  }

  Impl* const server_;
  const std::shared_ptr<net::ssl::context> tls_context_;  // outlives tls_
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  std::optional<beast::tcp_stream> plain_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string peer_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  bool busy_ = false;  // a request is with its handler
  bool closed_ = false;
};

absl::Status HttpServer::Impl::Listen() {
  const std::string& listen = options_.listen;
  size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen '", listen, "' is not host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen '", listen, "': '", host, "' is not an IP address"));
  }
  tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on '", listen, "': ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  return absl::OkStatus();
}

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!acceptor_.is_open()) return;  // shut down
      // Out of file descriptors (EMFILE, ENFILE) or of memory: accepting again at once would
      // fail again at once, a busy loop taking a core. Wait a little; closed connections
      // free descriptors meanwhile. Any other failure (a client that reset its connection
      // before it was accepted) concerns that connection only: accept the next one at once.
      const bool exhausted = ec == net::error::no_descriptors || ec.value() == ENFILE ||
                             ec == net::error::no_buffer_space || ec == net::error::no_memory;
      if (exhausted) {
        if (absl::Now() - accept_failure_logged_ >= absl::Seconds(10)) {
          accept_failure_logged_ = absl::Now();
          Log(LogLevel::kWarning, "HTTP listener cannot accept a connection, trying again")
              .Field("error", ec.message());
        }
        accept_retry_.expires_after(std::chrono::milliseconds(100));
        accept_retry_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec && !draining()) Accept();
        });
        return;
      }
    } else if (connections() >= options_.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);  // over the limit: no room, no answer
    } else {
      std::shared_ptr<net::ssl::context> tls = TlsContext();
      if (options_.tls.enabled() && tls == nullptr) {
        beast::error_code ignored;
        socket.close(ignored);  // never plaintext on a TLS listener
        if (!draining()) Accept();
        return;
      }
      auto s = std::make_shared<Session>(this, std::move(socket), std::move(tls));
      {
        absl::MutexLock lock(&mu_);
        sessions_.emplace(s.get(), s);
      }
      s->Start();
    }
    if (!draining()) Accept();
  });
}

std::shared_ptr<net::ssl::context> HttpServer::Impl::TlsContext() {
  if (!options_.tls.enabled()) return nullptr;
  absl::MutexLock lock(&mu_);
  absl::Time now = absl::Now();
  if (tls_ != nullptr && now < tls_next_check_) return tls_;
  tls_next_check_ = now + options_.tls_reload_interval;
  std::string version = FilesVersion(options_.tls);
  if (tls_ != nullptr && version == tls_version_) return tls_;
  absl::StatusOr<std::shared_ptr<net::ssl::context>> fresh = MakeTlsContext(options_.tls);
  if (!fresh.ok()) {
    // A certificate and key written one after the other may disagree for a moment: keep
    // serving with the previous pair, and look again after tls_reload_interval.
    Log(LogLevel::kWarning, "HTTP TLS files not (re)loaded, keeping the previous ones")
        .Field("error", fresh.status().message());
    return tls_;
  }
  if (tls_ != nullptr) LogLine(LogLevel::kInfo, "HTTP TLS files reloaded");
  tls_version_ = std::move(version);
  tls_ = *std::move(fresh);
  return tls_;
}

void HttpServer::Impl::Run() {
  Accept();
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] {
      NameThisThread("dtm-http");
      ioc_.run();
    });
  }
}

void HttpServer::Impl::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  draining_ = true;
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  std::vector<std::shared_ptr<Session>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [raw, s] : sessions_) live.push_back(s);
  }
  for (const auto& s : live) {
    // Runs on the session's strand (its stream's executor).
    net::dispatch(s->get_executor(), [s] { s->Drain(); });
  }
  live.clear();
  {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return busy_ == 0; };
    idle_.For(mu_, grace, idle);
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

HttpServer::Impl::~Impl() {
  Shutdown(absl::ZeroDuration());
  // Destroyed while the io_context they belong to still exists.
  absl::flat_hash_map<Session*, std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&mu_);
    sessions.swap(sessions_);
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              const HttpRouter* router) {
  auto impl = std::make_unique<Impl>(options, router);
  if (options.tls.enabled()) {
    absl::Status tls = CheckServerTlsFiles(options.tls);
    if (!tls.ok()) return tls;
    // The first read, before any connection; never serve plaintext on a TLS listener.
    if (impl->TlsContext() == nullptr) {
      return absl::InvalidArgumentError("the TLS files changed while dtmd read them: start again");
    }
  }
  absl::Status listening = impl->Listen();
  if (!listening.ok()) return listening;
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port(); }

int HttpServer::connections() const { return impl_->connections(); }

void HttpServer::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

}  // namespace dtm
