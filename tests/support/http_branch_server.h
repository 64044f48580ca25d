// TestHttpBranchServer: the HTTP twin of TestBranchServer, for DTM's HTTP branch protocol. A
// real HTTP server (dtmd's own HttpServer) that accepts GET and POST on any /busi/<name>,
// records every call (DTM's query parameters as dtm-* metadata, the headers, the body) and
// answers as the test's behavior says: any status and body, or hang until the caller gives up.
// Thread-safe.
#ifndef DTM_TESTS_SUPPORT_HTTP_BRANCH_SERVER_H_
#define DTM_TESTS_SUPPORT_HTTP_BRANCH_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/http/http_server.h"
#include "tests/support/branch_server.h"

namespace dtm::test {

struct HttpReply {
  int status = 200;
  std::string body = "{\"dtm_result\":\"SUCCESS\"}";
  bool hang = false;  // never answer (the caller gives up at its request_timeout)
};

// What a scripted gRPC reply means in DTM's HTTP protocol: OK 200 SUCCESS, ABORTED 409
// FAILURE, FAILED_PRECONDITION 425 ONGOING, another code 503 with its message, a hang a hang;
// so the same Script drives both kinds of branches.
HttpReply ToHttp(const BranchReply& reply);

class TestHttpBranchServer : public CallLog {
 public:
  using Behavior = std::function<HttpReply(const BranchCallRecord&)>;

  // Starts on 127.0.0.1 with an ephemeral port. `record` false: count calls only (bench).
  explicit TestHttpBranchServer(bool record = true);
  ~TestHttpBranchServer();

  // "http://127.0.0.1:port/busi/<name>"
  std::string Target(const std::string& name) const;
  void SetBehavior(Behavior behavior);
  // Answers the hanging calls and stops.
  void Shutdown();

 private:
  void Handle(HttpRequest req, HttpResponder respond);

  HttpRouter router_;
  std::unique_ptr<HttpServer> server_;
  absl::Mutex mu_;
  Behavior behavior_ ABSL_GUARDED_BY(mu_);
  std::vector<HttpResponder> hanging_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_HTTP_BRANCH_SERVER_H_
