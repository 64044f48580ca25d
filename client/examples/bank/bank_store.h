// The example bank's data in PostgreSQL: accounts and a ledger of every change, in one
// schema per bank; the branch barrier's table (dtm_barrier.barrier) beside them.
#ifndef DTM_CLIENT_EXAMPLES_BANK_BANK_STORE_H_
#define DTM_CLIENT_EXAMPLES_BANK_BANK_STORE_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/branch.h"
#include "storage/libpq/pg_exec.h"

namespace bank {

// One leg of a transfer, as the Bank service's methods name it.
enum class Op {
  kTransOut,
  kTransOutCompensate,
  kTransIn,
  kTransInCompensate,
  kTransOutTry,
  kTransOutConfirm,
  kTransOutCancel,
  kTransInTry,
  kTransInConfirm,
  kTransInCancel,
  kTransOutXa,  // XA: the debit, prepared until the coordinator commits or rolls it back
  kTransInXa,   // XA: the credit
};
const char* OpName(Op op);
// Actions, tries and XA legs (their phase 1): the legs a business may refuse. Compensations,
// confirms and cancels must eventually succeed.
bool MayRefuse(Op op);

struct Account {
  std::string user_id;
  int64_t balance = 0;
  int64_t frozen = 0;
};

using Conn = dtm::pg::Conn;

// Idle connections to one database, reused; a connection that broke is dropped. Thread-safe.
class ConnPool {
 public:
  explicit ConnPool(std::string conninfo) : conninfo_(std::move(conninfo)) {}

  class Lease {
   public:
    Lease(ConnPool* pool, Conn conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    ~Lease();
    PGconn* get() const { return conn_.get(); }

   private:
    ConnPool* pool_;
    Conn conn_;
  };
  // UNAVAILABLE when the database cannot be reached.
  absl::StatusOr<Lease> Acquire();

 private:
  const std::string conninfo_;
  absl::Mutex mu_;
  std::vector<Conn> idle_ ABSL_GUARDED_BY(mu_);
};

class BankStore {
 public:
  // INVALID_ARGUMENT unless `schema` is a lower-case SQL identifier.
  static absl::StatusOr<BankStore> ForSchema(const std::string& schema);

  // Creates the schema, its tables and the barrier table when missing.
  absl::Status CreateTables(PGconn* conn) const;
  // Opens `user_id` with `balance` unless it exists.
  absl::Status OpenAccount(PGconn* conn, const std::string& user_id, int64_t balance) const;
  absl::StatusOr<std::vector<Account>> Balances(PGconn* conn) const;

  // Applies `op` for `amount` to `user_id` inside the caller's transaction `tx` and records
  // it in the ledger under `branch`. ABORTED when the business refuses (no such account,
  // available balance short); UNAVAILABLE on database errors.
  absl::Status Apply(PGconn* tx, Op op, const std::string& user_id, int64_t amount,
                     const dtm::BranchContext& branch) const;

  const std::string& schema() const { return schema_; }

 private:
  explicit BankStore(std::string schema) : schema_(std::move(schema)) {}
  std::string schema_;
};

}  // namespace bank

#endif  // DTM_CLIENT_EXAMPLES_BANK_BANK_STORE_H_
