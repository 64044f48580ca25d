// PgConn: one libpq connection with the few things the PostgreSQL store needs: prepared
// statements, pipeline mode (many statements sent before any answer is read), and waits
// bounded by a deadline so that a database that vanished is noticed instead of hanging.
//
// Not thread-safe: one thread uses a PgConn at a time.
#ifndef DTM_STORAGE_LIBPQ_PG_CONN_H_
#define DTM_STORAGE_LIBPQ_PG_CONN_H_

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/libpq/pg_exec.h"

namespace dtm {

// Parameters of one statement: text, except bytes sent in binary (bytea).
class PgParams {
 public:
  PgParams& Add(std::string v);
  PgParams& Add(int64_t v) { return Add(std::to_string(v)); }
  PgParams& AddTime(absl::Time t);  // unix micros; InfinitePast is NULL
  PgParams& AddBytes(std::string v);
  // A text[] literal of `items`.
  PgParams& AddArray(const std::vector<std::string>& items);

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  std::deque<std::string> storage_;  // stable addresses for values_
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// Reading a text-format result.
class PgRow {
 public:
  PgRow(const PGresult* r, int row) : r_(r), row_(row) {}
  bool IsNull(int col) const { return PQgetisnull(r_, row_, col); }
  std::string Text(int col) const;
  int64_t Int(int col) const;
  absl::Time Time(int col) const;    // NULL: InfinitePast
  std::string Bytes(int col) const;  // bytea

 private:
  const PGresult* r_;
  int row_;
};

class PgConn {
 public:
  // Connects and sets the search_path to `schema` (if not empty). `timeout` bounds the
  // connect and every later wait for the server.
  static absl::StatusOr<std::unique_ptr<PgConn>> Connect(const std::string& conninfo,
                                                         const std::string& schema,
                                                         absl::Duration timeout);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  bool broken() const { return broken_ || PQstatus(conn_) != CONNECTION_OK; }
  int backend_pid() const { return PQbackendPID(conn_); }
  PGconn* raw() { return conn_; }

  // One statement outside pipeline mode (without parameters: a script of several). An
  // error result becomes the status.
  absl::StatusOr<pg::Result> Exec(const std::string& sql, const PgParams& params = {});
  absl::StatusOr<pg::Result> ExecPrepared(const std::string& name, const PgParams& params);
  absl::Status Prepare(const std::string& name, const std::string& sql);

  // Pipeline: Send* queue statements; Flush sends a sync point and returns one result per
  // statement sent since the last Flush, in order. The first failing statement's error is
  // the status (later ones were skipped by the server), and failed_statement() its position
  // among them.
  absl::Status BeginPipeline();
  absl::Status SendPrepared(const std::string& name, const PgParams& params);
  absl::Status SendSql(const std::string& sql);
  absl::StatusOr<std::vector<pg::Result>> Flush();
  // Flush in two halves: everything sent, then the answers read.
  absl::Status SendSync();
  absl::StatusOr<std::vector<pg::Result>> ReadResults();
  absl::Status EndPipeline();
  // After a Flush or ReadResults that failed with a statement's error: that statement's
  // index among the ones it read (0 is the first sent after the previous Flush); -1 if the
  // failure was not a statement's (the connection).
  int failed_statement() const { return failed_statement_; }

 private:
  PgConn(PGconn* conn, absl::Duration timeout) : conn_(conn), timeout_(timeout) {}
  absl::Status FlushOutput();
  absl::StatusOr<pg::Result> NextResult();
  // Completes one statement sent outside pipeline mode (`sent`: libpq accepted it).
  absl::StatusOr<pg::Result> FinishOne(bool sent, const std::string& what);
  absl::Status Fail(const std::string& what);

  PGconn* conn_;
  const absl::Duration timeout_;
  int queued_ = 0;
  int failed_statement_ = -1;
  bool broken_ = false;
};

// The host(s) a connection string names, for error messages ("db1:5432,db2:5432").
std::string PgHostOf(const std::string& conninfo);

}  // namespace dtm

#endif  // DTM_STORAGE_LIBPQ_PG_CONN_H_
