// SQLiteStore: the embedded Store. One file, WAL journal, synchronous=FULL (every commit is
// durable), a schema version table. One writer connection owned by the GroupCommitter
// thread, one reader connection for Get/List. Single-process use only.
//
// Each batch of writes is one transaction. An op the database refuses (a constraint, a value
// too big) fails alone, INTERNAL; the rest of its batch is applied again without it. Any other
// failure fails the batch, UNAVAILABLE; a COMMIT that failed at its sync may still be found
// after a crash and restart (ApplyBatch says why).
#ifndef DTM_STORAGE_SQLITE_SQLITE_STORE_H_
#define DTM_STORAGE_SQLITE_SQLITE_STORE_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/group_commit.h"
#include "storage/store.h"

namespace dtm {

struct SQLiteConn;

class SQLiteStore final : public Store {
 public:
  // Opens (creating if needed) the database at `path` and applies schema migrations.
  //
  // A file that exists is checked first, because starting on a damaged or emptied file as if
  // it were new would lose every transaction it held without a word: an empty file, or one
  // without dtm's tables, is refused (FAILED_PRECONDITION) unless `init` says to create a new
  // store in it; a file failing SQLite's PRAGMA quick_check is refused (DATA_LOSS).
  static absl::StatusOr<std::unique_ptr<SQLiteStore>> Open(const std::string& path,
                                                           bool init = false);
  ~SQLiteStore() override;

  void Write(WriteOp op, Done done) override;
  absl::StatusOr<Transaction> Get(const std::string& gid) override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  void Close() override;
  absl::StatusOr<std::map<GlobalStatus, int64_t>> CountUnfinished() override;
  void set_commit_observer(CommitObserver observer) override;
  Backlog backlog() const override;
  bool OnStoreThread() const override;
  // The local wall clock as it read when the store opened, carried forward by the monotonic
  // clock: a step of the wall clock (NTP, an operator) while dtmd runs moves no retry, lease
  // or timeout. The next start reads the wall clock again.
  absl::Time Now() override;
  // CLOCK_BOOTTIME: monotonic, and counting the time the machine was suspended.
  static absl::Duration BootTime();

  const GroupCommitter& committer() const { return *committer_; }

  static constexpr int kSchemaVersion = 6;
  // Ops the database refuses in one batch before the rest of it goes one op per transaction.
  static constexpr int kRefusalsBeforeOneByOne = 4;

 private:
  SQLiteStore(std::string path, std::unique_ptr<SQLiteConn> writer,
              std::unique_ptr<SQLiteConn> reader);
  // Applies `batch` and completes each op.
  void ApplyBatch(std::vector<PendingWrite>& batch);
  // Applies ops[0, n) in one transaction, filling `results`; on an error, `failed_op` is the
  // op that raised it (n if none did: BEGIN or COMMIT). The caller rolls back.
  absl::Status RunBatch(std::vector<PendingWrite>& ops, size_t n, std::vector<WriteResult>& results,
                        size_t& failed_op);

  const absl::Time opened_wall_ = absl::Now();
  const absl::Duration opened_boot_ = BootTime();
  const std::unique_ptr<SQLiteConn> writer_;  // used only by the committer thread
  absl::Mutex reader_mu_;
  const std::unique_ptr<SQLiteConn> reader_ ABSL_GUARDED_BY(reader_mu_);
  // CountUnfinished's own connection: a count over a large backlog takes long enough that it
  // must not hold up Get and List. Opened on first use.
  const std::string path_;
  absl::Mutex counter_mu_;
  std::unique_ptr<SQLiteConn> counter_ ABSL_GUARDED_BY(counter_mu_);
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace dtm

#endif  // DTM_STORAGE_SQLITE_SQLITE_STORE_H_
