// HttpBranchCaller: calls HTTP branches the way DTM does, asynchronously, with libcurl's multi
// interface on one thread: no thread per call and none blocked while a call is out. HTTPS is
// verified against the system's CAs (or `ca_file`).
//
// Every address of a name: a target's host name is resolved by an AddressBook (its own
// threads, never the calling nor the libcurl thread) to all its addresses, re-resolved while
// in use every `addresses.refresh_interval`, and each call connects to the next address in
// turn (libcurl's CURLOPT_CONNECT_TO; the URL, the Host header and TLS's name checks keep the
// name). Connections are kept alive and reused per address (at most `max_host_connections`
// each), so calls to a Kubernetes headless Service spread over its pods. A call whose
// connection is refused (nothing was sent) is made again at once on another address of the
// name, within its timeout, and that address is passed over for a while. IP literals are
// called as they are.
//
// The request (DTM's HTTP branch protocol): POST when the payload is not empty, GET when it is
// (a msg's back-check; DTM does the same, and services written for it route accordingly), to
// the target URL with gid, trans_type, branch_id, op and dtm appended to its query string;
// Content-Type: application/json; the payload as the body, unchanged; the branch_headers as
// headers. Redirects are not followed.
//
// The answer: 425, or a body containing ONGOING -> ongoing; 409, or a body containing FAILURE ->
// failure; another 2xx -> success; anything else (another status, no connection, a reset, a
// TLS error, request_timeout) -> a transient error. Only the first `max_kept_bytes` of a body
// are kept (for last_error), all of it is searched, and a body larger than
// `max_response_bytes` fails the call (a retry would get the same answer, after the branch
// acted again).
//
// Thread-safe. `done` runs on the libcurl thread and must not block.
#ifndef DTM_SERVER_BRANCH_HTTP_HTTP_BRANCH_CALLER_H_
#define DTM_SERVER_BRANCH_HTTP_HTTP_BRANCH_CALLER_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/branch/branch_caller.h"
#include "server/branch/http/address_book.h"

namespace dtm {

struct HttpBranchCallerOptions {
  long max_host_connections = 64;  // per address and port; more calls queue for a connection
  long max_total_connections = 1024;
  std::string ca_file;  // PEM CAs for https:// branches; empty: the system's
  size_t max_response_bytes = 4 << 20;
  size_t max_kept_bytes = 256;
  // Keep libcurl's words for a failed connection in last_error ("Connection refused", "Empty
  // reply from server", ...). Off, every such failure reads the same, so that a client cannot
  // use last_error to learn what listens where.
  bool verbose_errors = false;
  // How names are resolved and re-resolved (AddressBook).
  AddressBookOptions addresses{};
};

class HttpBranchCaller final : public BranchCaller {
 public:
  // `resolver`: how names are resolved (null: getaddrinfo; tests give their own).
  explicit HttpBranchCaller(HttpBranchCallerOptions options = {},
                            AddressBook::Resolver resolver = nullptr);
  ~HttpBranchCaller() override;  // Calls Shutdown().

  void Call(BranchCall call, std::function<void(BranchResult)> done) override;
  void Shutdown() override;

  // What an HTTP answer means (see above); `body` is what was kept of it, `marker` the word
  // found in the whole body ("ONGOING", "FAILURE" or ""). The body goes into the message of
  // an answer in DTM's protocol (409, 425, or a marker); for any other status only with
  // `verbose`, so that a client cannot read, through last_error, what some other HTTP service
  // at an address it named answers.
  static BranchResult Classify(long status, absl::string_view body, absl::string_view marker,
                               bool verbose = true);

 private:
  struct Request;
  void Run();
  void Finish(Request* r, int curl_code);
  // Asks the book for an address of the request's host, then queues the request.
  void Route(std::unique_ptr<Request> r);
  // Hands a request to the libcurl thread (or fails it if shutting down).
  void Enqueue(std::unique_ptr<Request> r);

  const HttpBranchCallerOptions options_;
  void* const multi_;  // CURLM*
  AddressBook book_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Request>> queue_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_HTTP_HTTP_BRANCH_CALLER_H_
