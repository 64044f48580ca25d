#include "server/branch/http/http_branch_caller.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/runtime/thread_name.h"

namespace dtm {
namespace {

constexpr absl::string_view kOngoing = "ONGOING";
constexpr absl::string_view kFailure = "FAILURE";

CURLM* Multi(void* m) { return static_cast<CURLM*>(m); }

void* NewMulti(const HttpBranchCallerOptions& o) {
  static const bool initialized = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == 0; }();
  (void)initialized;
  CURLM* m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, o.max_host_connections);
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, o.max_total_connections);
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, o.max_total_connections);
  return m;
}

// An IP literal ("10.0.0.1", "[fd00::1]"): connected to as it is.
bool IpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  if (host.size() > 2 && host.front() == '[') {
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) == 1;
  }
  return inet_pton(AF_INET, host.c_str(), buf) == 1;
}

// The host (lowercased; IPv6 in brackets) and port libcurl connects to for `url`; host "" if
// libcurl cannot parse it (the transfer then fails as it would have).
void HostAndPort(const std::string& url, std::string* host, int* port) {
  CURLU* u = curl_url();
  char* h = nullptr;
  char* p = nullptr;
  if (u != nullptr && curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK &&
      absl::SimpleAtoi(p, port)) {
    *host = absl::AsciiStrToLower(h);
  }
  curl_free(h);
  curl_free(p);
  curl_url_cleanup(u);
}

std::string Escape(CURL* easy, const std::string& s) {
  char* e = curl_easy_escape(easy, s.data(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

}  // namespace

struct HttpBranchCaller::Request {
  Request() : easy(curl_easy_init()) { error[0] = '\0'; }
  ~Request() {
    curl_slist_free_all(headers);
    curl_slist_free_all(connect_to);
    curl_easy_cleanup(easy);
  }

  // Connects this request to `a` (an address of `host`) instead of whatever `host` resolves to
  // in libcurl; the URL, Host header and TLS checks keep the name.
  void ConnectTo(std::string a) {
    address = std::move(a);
    std::string ip =
        address.find(':') == std::string::npos ? address : absl::StrCat("[", address, "]");
    curl_slist* list =
        curl_slist_append(nullptr, absl::StrCat(host, ":", port, ":", ip, ":", port).c_str());
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, list);
    curl_slist_free_all(connect_to);
    connect_to = list;
  }

  // libcurl's write callback: keeps the start of the body and looks for the markers in all
  // of it, across chunk boundaries.
  static size_t OnBody(char* data, size_t size, size_t n, void* self) {
    auto* r = static_cast<Request*>(self);
    const size_t len = size * n;
    r->received += len;
    if (r->received > r->max_bytes) {
      r->too_big = true;
      return 0;  // aborts the transfer
    }
    absl::string_view chunk(data, len);
    if (r->kept.size() < r->max_kept) {
      r->kept.append(data, std::min(len, r->max_kept - r->kept.size()));
    }
    std::string seam = r->tail;  // a marker split between the previous chunk and this one
    seam.append(data, std::min(len, kOngoing.size() - 1));
    auto found = [&](absl::string_view word) {
      return absl::StrContains(chunk, word) || absl::StrContains(seam, word);
    };
    if (found(kOngoing)) {
      r->marker = kOngoing;  // wins over FAILURE, as in DTM
    } else if (r->marker.empty() && found(kFailure)) {
      r->marker = kFailure;
    }
    r->tail.append(data, len);
    if (r->tail.size() > kOngoing.size() - 1) {
      r->tail.erase(0, r->tail.size() - (kOngoing.size() - 1));
    }
    return len;
  }

  CURL* const easy;
  curl_slist* headers = nullptr;
  curl_slist* connect_to = nullptr;
  std::string url;
  std::string payload;
  absl::Duration timeout;
  absl::Time deadline;
  std::string host;  // what the URL names, lowercased ("": as libcurl likes)
  int port = 0;
  std::string address;             // the address of `host` connected to ("": libcurl's choice)
  std::vector<std::string> tried;  // addresses that refused the connection
  // Set when the request ends without (another) transfer: the CURLcode to finish with.
  int finish_code = -1;
  std::function<void(BranchResult)> done;
  size_t max_bytes = 0;
  size_t max_kept = 0;
  size_t received = 0;
  bool too_big = false;
  bool verbose_errors = false;
  std::string kept;
  std::string tail;
  absl::string_view marker;
  char error[CURL_ERROR_SIZE];
};

HttpBranchCaller::HttpBranchCaller(HttpBranchCallerOptions options, AddressBook::Resolver resolver)
    : options_(std::move(options)),
      multi_(NewMulti(options_)),
      book_(options_.addresses, std::move(resolver)) {
  thread_ = std::thread([this] {
    NameThisThread("dtm-http-call");
    Run();
  });
}

HttpBranchCaller::~HttpBranchCaller() {
  Shutdown();
  curl_multi_cleanup(Multi(multi_));
}

BranchResult HttpBranchCaller::Classify(long status, absl::string_view body,
                                        absl::string_view marker, bool verbose) {
  BranchResult r;
  std::string what = absl::StrCat("HTTP ", status, body.empty() ? "" : ": ", body);
  if (status == 425 || marker == kOngoing) {
    r.outcome = CallOutcome::kOngoing;
    r.message = std::move(what);
  } else if (status == 409 || marker == kFailure) {
    r.outcome = CallOutcome::kFailure;
    r.message = std::move(what);
  } else if (status >= 200 && status <= 299) {
    r.outcome = CallOutcome::kSuccess;
  } else {
    r.outcome = CallOutcome::kError;
    r.message = verbose ? std::move(what) : absl::StrCat("HTTP ", status);
  }
  return r;
}

void HttpBranchCaller::Call(BranchCall call, std::function<void(BranchResult)> done) {
  auto r = std::make_unique<Request>();
  CURL* e = r->easy;
  HostAndPort(call.target, &r->host, &r->port);
  r->payload = std::move(call.payload);
  r->timeout = call.timeout;
  r->deadline = absl::Now() + call.timeout;
  r->done = std::move(done);
  r->max_bytes = options_.max_response_bytes;
  r->verbose_errors = options_.verbose_errors;
  r->max_kept = options_.max_kept_bytes;
  // DTM's parameters after the URL's own; alphabetical, as DTM's HTTP client sends them.
  r->url = std::move(call.target);
  char last = r->url.back();
  if (last != '?' && last != '&') r->url += r->url.find('?') == std::string::npos ? '?' : '&';
  absl::StrAppend(&r->url, "branch_id=", Escape(e, call.branch_id), "&dtm=", Escape(e, call.dtm),
                  "&gid=", Escape(e, call.gid), "&op=", Escape(e, call.op),
                  "&trans_type=", Escape(e, call.trans_type));
  r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
  r->headers = curl_slist_append(r->headers, "Accept: application/json");
  r->headers = curl_slist_append(r->headers, "Expect:");  // no 100-continue round trip
  for (const auto& [k, v] : call.headers) {
    r->headers = curl_slist_append(r->headers, absl::StrCat(k, ": ", v).c_str());
  }
  curl_easy_setopt(e, CURLOPT_URL, r->url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "dtmd");
  if (r->payload.empty()) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->payload.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r->payload.size()));
  }
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Request::OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r.get());
  if (r->host.empty() || IpLiteral(r->host)) {
    Enqueue(std::move(r));
  } else {
    Route(std::move(r));
  }
}

void HttpBranchCaller::Route(std::unique_ptr<Request> r) {
  Request* raw = r.release();  // owned by the callback, which runs exactly once
  const std::string host = raw->host;
  const int port = raw->port;
  book_.Pick(host, port, raw->tried, [this, raw](absl::StatusOr<std::string> address) {
    std::unique_ptr<Request> r(raw);
    if (address.ok()) {
      r->ConnectTo(*std::move(address));
    } else if (absl::IsCancelled(address.status())) {
      r->finish_code = CURLE_ABORTED_BY_CALLBACK;  // shutting down
    } else if (!r->tried.empty()) {
      r->finish_code = CURLE_COULDNT_CONNECT;  // every address refused: the last one's words
    } else {
      r->finish_code = CURLE_COULDNT_RESOLVE_HOST;
      std::snprintf(r->error, sizeof(r->error), "%s",
                    std::string(address.status().message()).c_str());
    }
    Enqueue(std::move(r));
  });
}

void HttpBranchCaller::Enqueue(std::unique_ptr<Request> r) {
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      queue_.push_back(std::move(r));
      curl_multi_wakeup(Multi(multi_));
      return;
    }
  }
  r->done(BranchResult{CallOutcome::kError, "coordinator is shutting down"});
}

void HttpBranchCaller::Finish(Request* r, int curl_code) {
  BranchResult result;
  if (curl_code == CURLE_ABORTED_BY_CALLBACK) {
    result = {CallOutcome::kError, "coordinator is shutting down"};
  } else if (r->too_big) {
    // The same answer would come back on every retry, and the branch would act each time:
    // the call fails, as for a gRPC answer over the receive limit.
    result = {CallOutcome::kFailure,
              absl::StrCat("HTTP response larger than ", r->max_bytes, " bytes")};
  } else if (curl_code == CURLE_OPERATION_TIMEDOUT) {
    result = {CallOutcome::kError,
              absl::StrCat("HTTP request timed out after ", absl::FormatDuration(r->timeout),
                           " (request_timeout)")};
  } else if (curl_code == CURLE_PEER_FAILED_VERIFICATION && !r->verbose_errors) {
    // The operator's to fix (a CA missing), so said even without verbose errors.
    result = {CallOutcome::kError,
              "HTTP request failed: the branch's TLS (SSL) certificate could not be verified "
              "against --branch_ca_file or the system's CAs"};
  } else if (curl_code != CURLE_OK && !r->verbose_errors) {
    result = {CallOutcome::kError,
              "HTTP request failed: no HTTP answer from the branch (dtmd --verbose_errors says "
              "why)"};
  } else if (curl_code != CURLE_OK) {
    result = {
        CallOutcome::kError,
        absl::StrCat("HTTP request failed: ", curl_easy_strerror(static_cast<CURLcode>(curl_code)),
                     r->error[0] ? absl::StrCat(" (", r->error, ")") : "")};
  } else {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    result = Classify(status, r->kept, r->marker, r->verbose_errors);
  }
  std::function<void(BranchResult)> done = std::move(r->done);
  done(std::move(result));
}

void HttpBranchCaller::Run() {
  CURLM* m = Multi(multi_);
  absl::flat_hash_map<Request*, std::unique_ptr<Request>> in_flight;
  for (;;) {
    std::deque<std::unique_ptr<Request>> incoming;
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      incoming.swap(queue_);
      stop = shutdown_;
    }
    for (auto& r : incoming) {
      if (stop) {
        r->done(BranchResult{CallOutcome::kError, "coordinator is shutting down"});
        continue;
      }
      if (r->finish_code >= 0) {
        Finish(r.get(), r->finish_code);
        continue;
      }
      // The deadline counts from Call: the time a first resolution took is part of it.
      const int64_t left = absl::ToInt64Milliseconds(r->deadline - absl::Now());
      if (left <= 0) {
        Finish(r.get(), CURLE_OPERATION_TIMEDOUT);
        continue;
      }
      curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, static_cast<long>(left));
      curl_multi_add_handle(m, r->easy);
      Request* raw = r.get();
      in_flight.emplace(raw, std::move(r));
    }
    if (stop) break;
    int running = 0;
    curl_multi_perform(m, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Request* r = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &r);
      CURLcode code = msg->data.result;
      curl_multi_remove_handle(m, msg->easy_handle);
      auto owned = in_flight.find(r);
      std::unique_ptr<Request> request = std::move(owned->second);
      in_flight.erase(owned);
      if (code == CURLE_COULDNT_CONNECT && !request->address.empty()) {
        // Refused before anything was sent: another address of the name may take it.
        book_.MarkDown(request->host, request->port, request->address);
        request->tried.push_back(request->address);
        request->address.clear();
        if (absl::Now() < request->deadline) {
          Route(std::move(request));
          continue;
        }
      }
      Finish(request.get(), code);
    }
    curl_multi_poll(m, nullptr, 0, 1000, nullptr);  // woken by Call and Shutdown
  }
  for (auto& [raw, r] : in_flight) {
    curl_multi_remove_handle(m, r->easy);
    r->done(BranchResult{CallOutcome::kError, "coordinator is shutting down"});
  }
}

void HttpBranchCaller::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    curl_multi_wakeup(Multi(multi_));
  }
  thread_.join();
  book_.Shutdown();  // calls waiting for a name fail (Enqueue sees shutdown_)
}

}  // namespace dtm
