// XaBranch: the branch side of an XA transaction (DTM's "RM") for services that keep their
// data in PostgreSQL (libpq). One gRPC method serves all three calls of a branch:
//
//   grpc::Status Bank::TransOutXa(grpc::ServerContext* ctx, const Req* req, Reply*) {
//     absl::StatusOr<dtm::XaBranch> xa = dtm::XaBranch::From(*ctx);
//     if (!xa.ok()) return dtm::ToGrpcStatus(xa.status());
//     return dtm::ToGrpcStatus(xa->Handle(conn, coordinator, [&](PGconn* tx) {
//       return Debit(tx, req->user_id(), req->amount());  // ABORTED: the business refuses
//     }));
//   }
//
// Op "action" (phase 1, called by the client): BEGIN; the barrier row of the action; the
// business function; RegisterBranch with the coordinator (phase2_target = dtm-phase2_url)
// while the local transaction is still open, so that a branch the coordinator does not know
// never prepares; then PREPARE TRANSACTION '<gid>-<branch_id>'. The prepared transaction
// survives crashes of this process and of PostgreSQL and keeps its row locks until phase 2.
//
// Ops "commit" and "rollback" (phase 2, called by the coordinator, body empty): COMMIT
// PREPARED / ROLLBACK PREPARED of that xid, from any session. Both are idempotent: an xid that
// does not exist was already finished (or, for a rollback, never prepared). A commit tells
// the two apart by the action's barrier row, which only a commit makes visible: without it
// the action has not prepared yet, and the commit answers ONGOING (FAILED_PRECONDITION). A rollback
// then records a "rollback" marker on the action's barrier row, so that an action still in flight,
// or delivered late, can no longer prepare: it finds the row taken and answers ABORTED.
//
// The database needs max_prepared_transactions > 0, and the barrier table
// (CreateBarrierTable). Phase 1 holds the row locks of the business change until phase 2:
// keep XA transactions short.
#ifndef DTM_CLIENT_PG_XA_H_
#define DTM_CLIENT_PG_XA_H_

#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/branch.h"
#include "client/coordinator_client.h"
#include "client/pg/barrier.h"

namespace dtm {

class XaBranch {
 public:
  // Registers the branch with the coordinator: RegisterBranch, or a stand-in in tests.
  using Registrar = std::function<absl::Status(const v1::RegisterBranchRequest&)>;

  // PostgreSQL's limit on a transaction identifier: 200 bytes with its terminating NUL.
  static constexpr size_t kMaxXidBytes = 199;

  // From the metadata of an incoming xa call. INVALID_ARGUMENT naming the dtm-* key when
  // gid, branch_id or op is missing, dtm-trans_type is not xa, op is not action, commit or
  // rollback, an action has no dtm-phase2_url, or the xid would be 200 bytes or longer.
  static absl::StatusOr<XaBranch> From(const BranchContext& branch);
  static absl::StatusOr<XaBranch> From(const grpc::ServerContextBase& ctx);

  // Runs the call's phase on `conn`, which must be idle (FAILED_PRECONDITION otherwise); for
  // an action, `business` runs inside the local transaction and the branch registers with
  // `coordinator`. Returns OK (an action prepared, or a phase 2 done or found done), the
  // business function's error (ABORTED: it refuses), ABORTED when the global transaction no
  // longer takes branches or the action finds this branch rolled back already, and
  // UNAVAILABLE when the database or the coordinator fails (phase 2 is then asked again).
  // An exception from `business` rolls back and propagates.
  absl::Status Handle(PGconn* conn, CoordinatorClient* coordinator,
                      const Barrier::Business& business);
  absl::Status Handle(PGconn* conn, const Registrar& registrar, const Barrier::Business& business);

  // The PostgreSQL transaction identifier of this branch: "<gid>-<branch_id>".
  const std::string& XaId() const { return xid_; }
  const std::string& op() const { return branch_.op; }

  // How long a rollback waits for a local transaction still in flight that holds the
  // action's barrier row (1 s): past it the rollback answers UNAVAILABLE and is asked again.
  void set_rollback_wait(absl::Duration d) { rollback_wait_ = d; }
  // How long a statement of phase 1 waits for a row lock (2 s), e.g. one held by another
  // prepared XA transaction until its phase 2. Two XA transactions that lock the same rows in
  // opposite orders wait for each other through their clients, which PostgreSQL's deadlock
  // detector cannot see; past this wait the action answers UNAVAILABLE and its client aborts.
  // Keep it below the client's deadline for the call (Xa's request_timeout, 3 s by default),
  // or the client gives up first while the branch still waits.
  void set_lock_timeout(absl::Duration d) { lock_timeout_ = d; }

 private:
  explicit XaBranch(BranchContext branch);

  absl::Status Prepare(PGconn* conn, const Registrar& registrar, const Barrier::Business& business);
  absl::Status Finish(PGconn* conn, bool commit);
  // The reason of the action's barrier row as this session sees it: "action" once the action
  // committed, "rollback" once a rollback took the row first, "" when there is none (yet).
  absl::StatusOr<std::string> ActionRowReason(PGconn* conn) const;

  BranchContext branch_;
  std::string xid_;
  absl::Duration rollback_wait_ = absl::Seconds(1);
  absl::Duration lock_timeout_ = absl::Seconds(2);
};

}  // namespace dtm

#endif  // DTM_CLIENT_PG_XA_H_
