// TestBranchServer: a real gRPC server that accepts any /Service/Method (the client library's
// GenericBranchServer), records every call (method, metadata, payload, order) and answers as
// the test's Behavior says: any status, or hang until the caller gives up. Used by the e2e
// tests and, with the default behavior (OK), as the no-op branch service of dtm-bench.
// Thread-safe.
#ifndef DTM_TESTS_SUPPORT_BRANCH_SERVER_H_
#define DTM_TESTS_SUPPORT_BRANCH_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/branch.h"
#include "client/generic_branch_server.h"

namespace dtm::test {

struct BranchCallRecord {
  int64_t seq = 0;          // global order of arrival
  std::string method;       // "/test.Branch/A1" (gRPC), "/busi/A1" (HTTP)
  std::string http_method;  // "POST" or "GET" for an HTTP call
  std::map<std::string, std::string> metadata;
  std::string payload;
  absl::Time time;
  // The dtm-* metadata as the client library's branch helper reads it.
  BranchContext branch;

  std::string Meta(const std::string& key) const;
  std::string gid() const { return Meta("dtm-gid"); }
  std::string op() const { return Meta("dtm-op"); }
  std::string branch_id() const { return Meta("dtm-branch_id"); }
  // The method's last path element: "/test.Branch/A1" -> "A1".
  std::string name() const;
};

using BranchReply = BranchAnswer;

// The calls a test branch server received, in order of arrival. Thread-safe.
class CallLog {
 public:
  // `record` false: count calls only (the benchmark's no-op services).
  explicit CallLog(bool record) : record_(record) {}

  std::vector<BranchCallRecord> Calls() const;
  std::vector<BranchCallRecord> CallsFor(const std::string& gid) const;
  // Names ("A1", "C2", ...) of the calls for `gid`, in arrival order.
  std::vector<std::string> NamesFor(const std::string& gid) const;
  int64_t call_count() const;
  // Waits until `pred(CallsFor(gid))` holds; false on timeout.
  bool WaitFor(const std::string& gid,
               const std::function<bool(const std::vector<BranchCallRecord>&)>& pred,
               absl::Duration timeout = absl::Seconds(20)) const;

 protected:
  // Numbers, timestamps and keeps `call`; returns it as kept.
  BranchCallRecord Record(BranchCallRecord call);

 private:
  const bool record_;
  mutable absl::Mutex mu_;
  std::vector<BranchCallRecord> calls_ ABSL_GUARDED_BY(mu_);
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

class TestBranchServer : public CallLog {
 public:
  using Behavior = std::function<BranchReply(const BranchCallRecord&)>;

  // Starts on 127.0.0.1 with an ephemeral port. `record` false: count calls only (bench).
  explicit TestBranchServer(bool record = true);
  ~TestBranchServer();

  std::string address() const;  // "127.0.0.1:port"
  // "127.0.0.1:port/test.Branch/<name>"
  std::string Target(const std::string& name) const;
  void SetBehavior(Behavior behavior);
  void Shutdown();

 private:
  BranchReply Handle(const IncomingBranchCall& in);

  std::unique_ptr<GenericBranchServer> server_;
  absl::Mutex mu_;
  Behavior behavior_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_BRANCH_SERVER_H_
