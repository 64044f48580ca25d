// BranchCaller: the port through which the engine calls business services, with the types
// of a call and of its result. An interface of our own so the engine is tested without
// sockets (tests/fakes/fake_branch_caller.h); the gRPC implementation is in server/branch/grpc.
#ifndef DTM_SERVER_BRANCH_BRANCH_CALLER_H_
#define DTM_SERVER_BRANCH_BRANCH_CALLER_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace dtm {

// How a branch answered, in DTM's terms.
enum class CallOutcome {
  kSuccess,  // done (or done before)
  kFailure,  // the business refuses: roll back (for a saga action)
  kOngoing,  // not done yet: ask again after retry_interval
  kError,    // transient: retry with backoff
};

struct BranchResult {
  CallOutcome outcome = CallOutcome::kError;
  std::string message;  // e.g. "ABORTED: insufficient funds"
};

// One call of a branch. The coordinator never decodes the payload: it is a step's bytes, sent
// as the gRPC request message or as the HTTP body.
struct BranchCall {
  std::string target;   // validated: "host:port/pkg.Service/Method" (grpc:// allowed) or a URL
  std::string payload;  // raw request bytes
  // Which branch of which transaction, and why, in DTM's words: dtm-* metadata over gRPC,
  // query parameters over HTTP, so services written for DTM understand them.
  std::string gid;
  std::string trans_type;  // "saga", "tcc", "msg"
  std::string branch_id;   // "01", ...; "00" for a msg's back-check
  std::string op;          // "action", "compensate", "try", "confirm", "cancel", "msg"
  std::string dtm;         // the coordinator's address
  // The transaction's branch_headers: extra metadata / HTTP headers.
  std::vector<std::pair<std::string, std::string>> headers;
  absl::Duration timeout = absl::Seconds(3);
};

// Thread-safe. `done` runs exactly once, on an arbitrary thread, and must not block.
class BranchCaller {
 public:
  virtual ~BranchCaller() = default;
  virtual void Call(BranchCall call, std::function<void(BranchResult)> done) = 0;
  // Cancels calls in flight and waits for their callbacks; later calls fail at once.
  virtual void Shutdown() = 0;
};

}  // namespace dtm

#endif  // DTM_SERVER_BRANCH_BRANCH_CALLER_H_
