// PgStore: the Store on PostgreSQL, for production and for several dtmd replicas sharing one
// database (docs/adr/0007).
//
// - Writes are group-committed like SQLite's: the writer thread takes everything queued and
//   sends it in pipeline mode, BEGIN + every op's statements + a sync, reads the answers, then
//   sends the statements that depend on them (branch rows of created transactions, rows of
//   claimed ones), then COMMIT: one database transaction and one durable commit per batch.
//   When no outcome is read from those dependent statements (they only write), they go out
//   in the same sync as the COMMIT: two round trips per batch instead of three.
// - A COMMIT whose answer is lost (connection dropped) is not guessed: the batch's writers
//   wait while the store reconnects and reads whether it committed from the commit marker the
//   batch stamped (a row per writer), which also answers right on a promoted standby.
// - An op the database refuses (a constraint, a value it cannot store: see RefusedOp) fails
//   alone, INTERNAL with its SQLSTATE; the rest of its batch is applied again without it.
// - While the database is unreachable, writes fail fast with UNAVAILABLE; the writer
//   reconnects with backoff. Reads use a small pool of connections and reconnect on demand.
// - Schema: versioned migrations applied at Open under an advisory lock, in `schema`.
// - Now() is the database server's clock: read over a round trip at each connect and every
//   10 s, and carried forward in between by the local monotonic clock, so that a step of the
//   local wall clock (NTP, an operator, a resumed VM) changes nothing.
//
// Thread-safe.
#ifndef DTM_STORAGE_POSTGRES_PG_STORE_H_
#define DTM_STORAGE_POSTGRES_PG_STORE_H_

#include <libpq-fe.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/group_commit.h"
#include "storage/store.h"

namespace dtm {

class PgConn;

struct PgStoreOptions {
  std::string schema = "public";
  int readers = 2;                               // connections for Get/List
  absl::Duration io_timeout = absl::Seconds(5);  // connect and each wait for an answer
  absl::Duration max_reconnect_backoff = absl::Seconds(2);
  // The server ends a session of this store that sits idle inside a transaction this long
  // (idle_in_transaction_session_timeout); zero leaves the server's setting. A dtmd cut off
  // from the database in the middle of a batch leaves its session open on the server, holding
  // row locks that keep the other replicas from the work for as long as the server keeps it
  // (TCP keepalive: hours); dtmd sets this below its lease.
  absl::Duration idle_in_transaction_timeout = absl::ZeroDuration();
  // Tests only: runs on the writer thread after a batch's COMMIT went out, before its answer
  // is read (to cut the connection there and make the outcome unknown).
  std::function<void(PGconn*)> after_commit_sent_for_test;
  // Tests only: the monotonic clock (time since any fixed start) that Now(), the clock's
  // re-reading and the reconnect backoff count on; empty: CLOCK_BOOTTIME.
  std::function<absl::Duration()> monotonic_for_test;
};

class PgStore final : public Store {
 public:
  // Connects, applies migrations and prepares statements. Errors name the host and carry
  // libpq's message; a newer schema is FAILED_PRECONDITION; missing rights PERMISSION_DENIED.
  static absl::StatusOr<std::unique_ptr<PgStore>> Open(const std::string& conninfo,
                                                       const PgStoreOptions& options);
  ~PgStore() override;

  void Write(WriteOp op, Done done) override;
  absl::StatusOr<Transaction> Get(const std::string& gid) override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  void Close() override;
  absl::StatusOr<std::map<GlobalStatus, int64_t>> CountUnfinished() override;
  void set_commit_observer(CommitObserver observer) override;
  Backlog backlog() const override;
  bool OnStoreThread() const override;
  absl::Time Now() override;

  // How many commits whose answer was lost have been resolved by asking the database.
  int64_t unknown_commits_resolved() const { return unknown_commits_resolved_.load(); }

  static constexpr int kSchemaVersion = 5;
  // Ops the database refuses in one batch before the rest of it goes one op per transaction.
  static constexpr int kRefusalsBeforeOneByOne = 4;

 private:
  struct Reader;
  struct Unresolved;
  PgStore(std::string conninfo, PgStoreOptions options, std::unique_ptr<PgConn> writer);

  // Writer thread only.
  void ApplyBatch(std::vector<PendingWrite>& batch);
  bool EnsureWriter();
  void ResolveUnknownCommits();
  // Remembers the new writer session's start time (with its pid, it names the session).
  void NoteWriterSession();
  // Creates this writer's row of dtm_commit_marker unless it exists; false if it cannot.
  bool EnsureMarkerRow();
  void MeasureClockOffset(PgConn& conn);
  // Runs a batch in one transaction; returns the per-op results, or the error (and moves the
  // batch to unresolved_ if its COMMIT went out unanswered). `failed_op`: the index of the op
  // whose statement failed, or batch.size() if the error was no op's.
  absl::StatusOr<std::vector<WriteResult>> RunBatch(std::vector<PendingWrite>& batch,
                                                    size_t& failed_op);
  // Sends the statement that stamps this writer's commit marker with `batch_number`.
  absl::Status SendCommitMarker(PgConn& c, int64_t batch_number);

  absl::StatusOr<std::unique_ptr<PgConn>> Connect();
  // The monotonic clock: CLOCK_BOOTTIME, or options_.monotonic_for_test.
  absl::Duration Monotonic() const;
  // Runs `fn` on a pooled reader connection, reconnecting once if it was broken.
  template <typename T, typename Fn>
  absl::StatusOr<T> WithReader(Fn fn);

  const std::string conninfo_;
  const PgStoreOptions options_;
  const std::string writer_id_;     // this process's row in dtm_commit_marker
  std::unique_ptr<PgConn> writer_;  // null while disconnected
  int writer_pid_ = 0;              // the writer session's backend pid ...
  std::string writer_start_;        // ... and backend_start
  int64_t batches_ = 0;             // the number of the last batch sent
  bool marker_row_ = false;         // this writer's row of dtm_commit_marker exists
  // Writer sessions (pid, backend_start) that broke while a batch's outcome was unknown.
  std::vector<std::pair<int, std::string>> orphans_;
  absl::Duration next_connect_ = -absl::InfiniteDuration();  // on the monotonic clock
  absl::Duration backoff_ = absl::ZeroDuration();
  std::string last_error_;
  std::vector<std::unique_ptr<Unresolved>> unresolved_;
  absl::Duration next_clock_check_ = -absl::InfiniteDuration();  // on the monotonic clock
  // The database's clock minus the monotonic clock, as last measured (Now()).
  std::atomic<int64_t> clock_offset_us_{0};
  std::atomic<int64_t> unknown_commits_resolved_{0};

  std::vector<std::unique_ptr<Reader>> readers_;
  std::atomic<unsigned> next_reader_{0};
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace dtm

#endif  // DTM_STORAGE_POSTGRES_PG_STORE_H_
