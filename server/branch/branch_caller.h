// BranchCaller: how the engine calls business services. An interface of our own so the
// engine is tested without sockets (FakeBranchCaller in tests).
#ifndef DTM_SERVER_BRANCH_BRANCH_CALLER_H_
#define DTM_SERVER_BRANCH_BRANCH_CALLER_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/engine/machine.h"

namespace dtm {

struct BranchCall {
  std::string target;   // validated "host:port/pkg.Service/Method" (grpc:// allowed)
  std::string payload;  // raw request bytes
  std::vector<std::pair<std::string, std::string>> metadata;
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
