// Barrier: DTM's sub-transaction barrier for branch services that keep their data in
// PostgreSQL (libpq).
//
// The coordinator calls branches at least once, so a branch handler sees duplicates, a
// compensation whose action never ran (null compensation) and an action that arrives after
// its compensation (hanging). The barrier handles all three with one table in the business
// database, written in the same local transaction as the business change:
//
//   grpc::Status Bank::TransOut(grpc::ServerContext* ctx, const Req* req, Reply*) {
//     absl::StatusOr<dtm::Barrier> barrier = dtm::Barrier::From(*ctx);
//     if (!barrier.ok()) return dtm::ToGrpcStatus(barrier.status());
//     return dtm::ToGrpcStatus(barrier->Call(conn, [&](PGconn* tx) {
//       return Debit(tx, req->user_id(), req->amount());  // ABORTED: the business refuses
//     }));
//   }
//
// Call opens a local transaction on `conn`, records (gid, branch_id, op, barrier_id) in
// dtm_barrier.barrier and runs the business function only if that row is new; a
// compensate/cancel first records the row of its action/try, so when the action never ran
// the compensation is a successful no-op and the late action finds its row taken and does
// nothing. The business function's changes commit together with the barrier rows, or not at
// all. The table has DTM's layout, so services using DTM's SDKs can share it.
#ifndef DTM_CLIENT_PG_BARRIER_H_
#define DTM_CLIENT_PG_BARRIER_H_

#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/branch.h"
#include "client/msg.h"

namespace dtm {

// Creates schema dtm_barrier, its sequence and table dtm_barrier.barrier if missing (DTM's
// layout; never drops anything). Safe to call concurrently from several processes.
absl::Status CreateBarrierTable(PGconn* conn);

class Barrier {
 public:
  // What Call did.
  enum class Outcome {
    kRan,               // the business function ran (and committed if it returned OK)
    kDuplicate,         // the same call had already committed: nothing done, success
    kNullCompensation,  // compensate/cancel whose action/try never ran: nothing done, success
    kHanging,           // action/try arriving after its compensate/cancel: nothing done, success
  };
  // Runs inside the local transaction Call opened; ABORTED means the business refuses
  // (FAILURE), any error rolls the transaction back.
  using Business = std::function<absl::Status(PGconn* tx)>;

  // From the metadata of an incoming branch call. INVALID_ARGUMENT naming the dtm-* key
  // when gid, branch_id or op is missing, or op is not one DTM sends.
  static absl::StatusOr<Barrier> From(const BranchContext& branch);
  static absl::StatusOr<Barrier> From(const grpc::ServerContextBase& ctx);
  // The barrier a two-phase message's local transaction writes (branch "00", op "msg"),
  // the one QueryPrepared reads.
  static Barrier ForMsg(const std::string& gid);

  // Runs `business` at most once per (gid, branch_id, op) in a local transaction on `conn`,
  // which must be idle (no transaction open): FAILED_PRECONDITION otherwise. Returns the
  // business function's error, UNAVAILABLE when the database fails (the call may be retried:
  // the barrier makes that safe), and for op "msg" ALREADY_EXISTS when the local transaction
  // had already committed. An exception from `business` rolls back and propagates.
  absl::Status Call(PGconn* conn, const Business& business, Outcome* outcome = nullptr);

  // The back-check of a two-phase message, run by the service that did the message's local
  // transaction: OK when that transaction committed; otherwise it records a "rollback"
  // marker, so a local transaction still in flight can no longer commit, and returns ABORTED
  // (the coordinator drops the message). UNAVAILABLE when the database fails.
  absl::Status QueryPrepared(PGconn* conn);

  const std::string& gid() const { return gid_; }
  const std::string& branch_id() const { return branch_id_; }
  const std::string& op() const { return op_; }

 private:
  Barrier(std::string trans_type, std::string gid, std::string branch_id, std::string op);

  std::string trans_type_;
  std::string gid_;
  std::string branch_id_;
  std::string op_;
  int calls_ = 0;  // barrier_id of the next Call: "01", "02", ...
};

// A two-phase message whose local transaction runs in `conn`'s database behind the msg
// barrier: prepares `msg`, runs `business` in a local transaction, then submits the message
// if it committed or aborts it if it did not. When the outcome of the local transaction is
// unknown (e.g. the connection broke during COMMIT) it asks the barrier (QueryPrepared) and
// submits or aborts accordingly; if even that fails the message stays PREPARED and the
// coordinator's back-check decides. Returns Submit's answer, or the local transaction's error.
absl::StatusOr<v1::SubmitResponse> DoAndSubmitDb(Msg& msg, const std::string& query_prepared,
                                                 PGconn* conn, const Barrier::Business& business);

}  // namespace dtm

#endif  // DTM_CLIENT_PG_BARRIER_H_
