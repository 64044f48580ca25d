// SQLiteStore: the embedded Store. One file, WAL journal, synchronous=FULL (every commit is
// durable), a schema version table. One writer connection owned by the GroupCommitter
// thread, one reader connection for Get/List. Single-process use only.
#ifndef DTM_STORAGE_SQLITE_SQLITE_STORE_H_
#define DTM_STORAGE_SQLITE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/group_commit.h"
#include "storage/store.h"

namespace dtm {

struct SQLiteConn;

class SQLiteStore final : public Store {
 public:
  // Opens (creating if needed) the database at `path` and applies schema migrations.
  static absl::StatusOr<std::unique_ptr<SQLiteStore>> Open(const std::string& path);
  ~SQLiteStore() override;

  void Write(WriteOp op, Done done) override;
  absl::StatusOr<Transaction> Get(const std::string& gid) override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  void Close() override;

  const GroupCommitter& committer() const { return *committer_; }

  static constexpr int kSchemaVersion = 3;

 private:
  SQLiteStore(std::unique_ptr<SQLiteConn> writer, std::unique_ptr<SQLiteConn> reader);
  std::vector<WriteResult> ApplyBatch(std::vector<PendingWrite>& ops);

  const std::unique_ptr<SQLiteConn> writer_;  // used only by the committer thread
  absl::Mutex reader_mu_;
  const std::unique_ptr<SQLiteConn> reader_ ABSL_GUARDED_BY(reader_mu_);
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace dtm

#endif  // DTM_STORAGE_SQLITE_SQLITE_STORE_H_
