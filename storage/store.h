// The Store interface: durable state of global transactions and their branches.
//
// Writes are asynchronous and group-committed: `Write` queues an operation and returns at
// once; a single writer applies everything pending in one database transaction with one
// durable commit, then runs every `done` callback (in commit order, on the committer's
// completion thread; a claim's on the writer thread itself, before the next commit and so
// possibly before earlier callbacks still queued: callbacks must be short and must not block;
// hand real work to another executor). Reads are synchronous and
// may be called from any thread. All methods are thread-safe.
#ifndef DTM_STORAGE_STORE_H_
#define DTM_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"

namespace dtm {

// Inserts a transaction with all its branches. Fails with ALREADY_EXISTS (and fills
// WriteResult::existing) when the gid is taken.
struct CreateOp {
  Transaction txn;
};

// Compare-and-set of a transaction's global state plus new values for some branches.
// FAILED_PRECONDITION if the stored status is not `expected_status`; ABORTED if `owner` is set
// and another coordinator owns the transaction now (it claimed it after our lease ran out);
// NOT_FOUND if no such gid.
struct UpdateOp {
  std::string gid;
  std::string owner;  // fence: empty writes whoever owns it (ForceStop from any replica)
  GlobalStatus expected_status = GlobalStatus::kUnspecified;
  GlobalStatus new_status = GlobalStatus::kUnspecified;
  std::string rollback_reason;
  absl::Time update_time = absl::InfinitePast();
  absl::Time finish_time = absl::InfinitePast();
  absl::Time next_retry_time = absl::InfinitePast();
  // When set: a stored next_retry_time earlier than this (the one the writer last wrote, or
  // read) is kept instead of `next_retry_time`. It was moved back by a touch (RetryNow through
  // another replica) since then; the owner acts on it at its next renewal.
  absl::Time keep_earlier_than = absl::InfinitePast();
  // (index in Transaction::branches, new values). Only status, attempts, last_error and
  // finish_time are written.
  std::vector<std::pair<int, Branch>> branches;
  // When set, also hands the transaction to `new_owner` with a lease until
  // `new_lease_expire` (a client's Submit or Abort of a PREPARED transaction takes it over on
  // whichever replica it arrives; an empty owner releases it).
  bool reassign = false;
  std::string new_owner;
  absl::Time new_lease_expire = absl::InfinitePast();
};

// Registers a tcc branch: appends its confirm and cancel rows (same payload). NOT_FOUND if
// unknown; ALREADY_EXISTS if the gid is not a tcc, or `branch_id` is registered with other
// targets; FAILED_PRECONDITION unless the tcc is PREPARED. Registering the same branch id
// with the same targets again changes nothing and succeeds.
struct RegisterOp : BranchRegistration {
  absl::Time update_time = absl::InfinitePast();
};

// Sets next_retry_time of a SUBMITTED or ABORTING transaction, or of a PREPARED msg (its
// back-check) (RetryNow), to `next_retry_time` or, if that is not earlier than the stored one,
// to a microsecond before the stored one: a touch always moves it back, so the coordinator
// that owns the transaction tells the touch from its own writes (a call it is making leaves
// a past next_retry_time in place). NOT_FOUND if unknown, FAILED_PRECONDITION otherwise.
struct TouchOp {
  std::string gid;
  absl::Time next_retry_time;
};

// Touches (as TouchOp does, at `now`) every SUBMITTED or ABORTING transaction that waits for a
// later retry (next_retry_time > now) or is leased (lease_expire > now: its owner may be
// calling a branch) and is not in `except` (bulk RetryNow; the coordinator asking makes its
// own work due itself). WriteResult::touched counts them.
struct TouchAllOp {
  absl::Time now;
  std::vector<std::string> except;
};

// Claims up to `limit` non-terminal transactions that are due (next_retry_time <= now) and not
// leased (lease_expire <= now), skipping rows another claimer holds locked: sets owner and
// lease_expire = now + lease, and returns them in WriteResult::claimed. `now` is the
// database's clock (Store::Now).
struct ClaimOp {
  std::string owner;
  absl::Time now;
  int limit = 100;
  absl::Duration lease = absl::Seconds(10);
};

// Extends to now + lease the lease of each of `gids` still owned by `owner` and not terminal;
// WriteResult::renewed lists those renewed with their stored next_retry_time. A gid missing
// from it is no longer ours (claimed by another coordinator after our lease ran out) or ended.
struct RenewOp {
  std::string owner;
  std::vector<std::string> gids;
  absl::Time now;
  absl::Duration lease = absl::Seconds(10);
};

// Deletes up to `limit` terminal transactions finished before `finished_before`.
struct PurgeOp {
  absl::Time finished_before;
  int limit = 1000;
};

using WriteOp =
    std::variant<CreateOp, UpdateOp, RegisterOp, TouchOp, TouchAllOp, ClaimOp, RenewOp, PurgeOp>;

struct WriteResult {
  absl::Status status;
  std::optional<Transaction> existing;  // CreateOp: the stored transaction on ALREADY_EXISTS
  std::vector<Transaction> claimed;     // ClaimOp
  std::vector<std::pair<std::string, absl::Time>> renewed;  // RenewOp: gid, next_retry_time
  int64_t purged = 0;                                       // PurgeOp
  int64_t touched = 0;                                      // TouchAllOp
  // UpdateOp that changed the row: the next_retry_time now stored. Not the op's when
  // `keep_earlier_than` kept a touch; the writer then knows at once that it was made due.
  absl::Time next_retry_time = absl::InfinitePast();
};

class Store {
 public:
  using Done = std::function<void(WriteResult)>;
  virtual ~Store() = default;

  // Queues `op` for the next group commit; `done` runs once it is durable (or failed).
  virtual void Write(WriteOp op, Done done) = 0;
  // Returns the transaction with its branches, or NOT_FOUND.
  virtual absl::StatusOr<Transaction> Get(const std::string& gid) = 0;
  // Returns one page of transactions matching `query`, newest first.
  virtual absl::StatusOr<ListPage> List(const ListQuery& query) = 0;
  // Waits until every queued write is committed and stops the writer. Idempotent.
  virtual void Close() = 0;
  // How many transactions are PREPARED, SUBMITTED and ABORTING (statuses with none are
  // absent), over every replica's work: for the pending gauge. Reads every unfinished row (the
  // partial index of unfinished rows finds them), so call it seldom.
  virtual absl::StatusOr<std::map<GlobalStatus, int64_t>> CountUnfinished() = 0;
  // `observer` runs on the writer thread after each group commit with the time the batch
  // took (applying and committing it, and a claim's callback; the other callbacks run after,
  // on the completion thread) and the number of writes in it. Set it before the first write.
  using CommitObserver = std::function<void(absl::Duration, size_t)>;
  virtual void set_commit_observer(CommitObserver observer) = 0;
  // What waits inside the store at this moment: writes not yet taken into a commit, and
  // finished writes (committed or failed) whose `done` has not run yet, a claim's excepted
  // (see GroupCommitter). Either growing means the store's writer, or what runs after each
  // commit, is what transactions wait for.
  struct Backlog {
    int64_t writes = 0;
    int64_t completions = 0;
  };
  virtual Backlog backlog() const = 0;
  // The database's clock. Every time the coordinator stores or compares (next_retry_time,
  // leases, timeouts) comes from here, so replicas whose own clocks disagree still agree on
  // what is due. SQLite: the local clock as it read at open, carried forward by the monotonic
  // clock. PostgreSQL: the server's clock as read at each connect and every few seconds,
  // carried forward by the monotonic clock in between. So a step of the local wall clock
  // moves nothing while dtmd runs.
  virtual absl::Time Now() { return absl::Now(); }

  // Runs `op` and blocks until it is committed. Not for gRPC or engine threads. From a write's
  // callback (the store's own threads) it would wait for the very thread that is to complete
  // it: there it fails at once with INTERNAL instead, and writes nothing.
  WriteResult WriteSync(WriteOp op);
  // Whether the calling thread is one of the store's own (its writer, or the thread that runs
  // the writes' callbacks).
  virtual bool OnStoreThread() const = 0;
};

}  // namespace dtm

#endif  // DTM_STORAGE_STORE_H_
