// What the Engine's callers and its parts share: its options and the shapes of its answers.
#ifndef DTM_SERVER_ENGINE_ENGINE_TYPES_H_
#define DTM_SERVER_ENGINE_ENGINE_TYPES_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/model/transaction.h"

namespace dtm {

class Metrics;

struct EngineOptions {
  // How long this coordinator's claim on a transaction lasts without renewal (RenewLeases),
  // and how far next_retry_time is pushed ahead while a call is in flight: after a crash,
  // another replica (or this one, restarted) picks the work up once both have passed.
  absl::Duration lease = absl::Seconds(10);
  // This coordinator's identity in the store's owner column; unique per process.
  std::string owner = "dtmd";
  // Delay before a write that failed (database unavailable) is tried again.
  absl::Duration write_retry = absl::Seconds(1);
  // A transaction with nothing in flight whose next step is at least this far ahead (a branch
  // that answered ongoing, a backoff, a timeout) leaves memory; it waits in the store, where
  // its next_retry_time says when recovery claims it back. Keeps memory bounded by the work
  // in progress, not by the work waiting. Longer than `lease`, so that the lease it still
  // holds has run out by then and any replica may claim it.
  absl::Duration park_after = absl::Seconds(30);
  // The coordinator's address sent to gRPC branches (dtm-dtm metadata) and to HTTP ones (the
  // dtm query parameter: the base URL of DTM's HTTP API, "http://host:36789/api/dtmsvr", so
  // that a branch can call the coordinator back the way it was called).
  std::string self_address;
  std::string http_self_address;
  // Where the engine counts transactions, branch calls and leases (not owned; outlives the
  // engine). Null: the engine keeps counts of its own that nobody reads.
  Metrics* metrics = nullptr;
};

// The answer to a Submit or an Abort: the transaction's status once the request is durable
// (or, with wait_result, once it ended or stalled).
struct SubmitResult {
  std::string gid;
  GlobalStatus status = GlobalStatus::kUnspecified;
  std::string rollback_reason;
};

using SubmitDone = std::function<void(absl::StatusOr<SubmitResult>)>;
using TxnDone = std::function<void(absl::StatusOr<Transaction>)>;
using StatusDone = std::function<void(absl::Status)>;

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_ENGINE_TYPES_H_
