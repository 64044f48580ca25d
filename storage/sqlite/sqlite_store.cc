#include "storage/sqlite/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/common/status_macros.h"
#include "storage/codec.h"

namespace dtm {

// One connection plus its prepared statements (SQLite re-parses SQL on every prepare, which
// was the writer's largest CPU cost). Used by one thread at a time.
struct SQLiteConn {
  sqlite3* db = nullptr;
  absl::flat_hash_map<std::string, sqlite3_stmt*> cache;
  ~SQLiteConn() {
    for (auto& [sql, stmt] : cache) sqlite3_finalize(stmt);
    sqlite3_close(db);
  }
};

namespace {

// The payload key under which an SQLite error carries its (extended) result code.
constexpr char kResultCodeUrl[] = "type.dtm.dev/sqlite.result_code";

// An SQLite failure as INTERNAL "<what>: <SQLite's message>", carrying `rc`.
absl::Status SqliteError(absl::string_view what, const char* message, int rc) {
  absl::Status st =
      absl::InternalError(absl::StrCat(what, ": ", message ? message : "unknown error"));
  st.SetPayload(kResultCodeUrl, absl::Cord(absl::StrCat(rc)));
  return st;
}

// Whether `st` is SQLite refusing one statement's data (a constraint, including a trigger's
// RAISE; a value too big or of the wrong type) rather than a failure of the database (I/O, a
// full disk, a lock, corruption, a schema problem). The same op would fail again; its
// neighbours in a batch would not.
bool RefusedOp(const absl::Status& st) {
  auto payload = st.GetPayload(kResultCodeUrl);
  int rc = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &rc)) return false;
  int primary = rc & 0xff;
  return primary == SQLITE_CONSTRAINT || primary == SQLITE_TOOBIG || primary == SQLITE_MISMATCH;
}

// A cached prepared statement, reset for reuse when this handle goes away.
class Stmt {
 public:
  Stmt(SQLiteConn& conn, const std::string& sql) : db_(conn.db) {
    auto it = conn.cache.find(sql);
    if (it != conn.cache.end()) {
      stmt_ = it->second;
      rc_ = SQLITE_OK;
      return;
    }
    rc_ = sqlite3_prepare_v3(conn.db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc_ == SQLITE_OK) conn.cache.emplace(sql, stmt_);
  }
  ~Stmt() { Reset(); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void Reset() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  absl::Status status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("sqlite prepare: ", sqlite3_errmsg(db_)));
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindTime(int i, absl::Time t) {
    if (t == absl::InfinitePast()) {
      sqlite3_bind_null(stmt_, i);
    } else {
      sqlite3_bind_int64(stmt_, i, absl::ToUnixMicros(t));
    }
    return *this;
  }
  // Returns true on a row, false when done; errors become a status.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError("sqlite", sqlite3_errmsg(db_), sqlite3_extended_errcode(db_));
  }
  absl::Status Exec() {
    auto r = Step();
    return r.ok() ? absl::OkStatus() : r.status();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), n) : std::string();
  }
  std::string Bytes(int col) const { return Text(col); }
  absl::Time Time(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return absl::InfinitePast();
    return absl::FromUnixMicros(sqlite3_column_int64(stmt_, col));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status ExecSql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = absl::StrCat(err ? err : "unknown error", " in: ", sql);
    sqlite3_free(err);
    return SqliteError("sqlite", msg.c_str(), sqlite3_extended_errcode(db));
  }
  return absl::OkStatus();
}

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

Transaction ReadGlobal(const Stmt& s) { return ReadGlobalRow(s); }

absl::StatusOr<Transaction> LoadTransaction(SQLiteConn& conn, const std::string& gid) {
  Transaction t;
  {
    Stmt s(conn, absl::StrCat("SELECT ", kGlobalColumns, " FROM trans_global WHERE gid = ?"));
    RETURN_IF_ERROR(s.status());
    s.Bind(1, gid);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("transaction gid '", gid, "' not found"));
    t = ReadGlobal(s);
  }
  Stmt b(conn,
         absl::StrCat("SELECT ", kBranchColumns, " FROM trans_branch WHERE gid = ? ORDER BY idx"));
  RETURN_IF_ERROR(b.status());
  b.Bind(1, gid);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, b.Step());
    if (!row) break;
    t.branches.push_back(ReadBranchRow(b, 0));
  }
  return t;
}

absl::Status InsertBranches(SQLiteConn& conn, const std::string& gid,
                            const std::vector<Branch>& branches, int64_t first_idx = 0) {
  static const std::string* sql =
      new std::string(absl::StrCat("INSERT INTO trans_branch (gid, idx, ", kBranchColumns,
                                   ") VALUES (", SqlPlaceholders(2 + kBranchColumnCount), ")"));
  Stmt s(conn, *sql);
  RETURN_IF_ERROR(s.status());
  for (size_t i = 0; i < branches.size(); ++i) {
    const Branch& b = branches[i];
    s.Reset();
    s.Bind(1, gid)
        .Bind(2, first_idx + static_cast<int64_t>(i))
        .Bind(3, b.branch_id)
        .Bind(4, static_cast<int64_t>(b.op))
        .Bind(5, b.target)
        .BindBlob(6, b.payload)
        .Bind(7, static_cast<int64_t>(b.status))
        .Bind(8, static_cast<int64_t>(b.attempts))
        .Bind(9, b.last_error)
        .BindTime(10, b.finish_time)
        .Bind(11, EncodeAfter(b.after));
    RETURN_IF_ERROR(s.Exec());
  }
  return absl::OkStatus();
}

// Each Apply* returns a non-OK status only for SQL errors (which abort the transaction: see
// ApplyBatch); per-op outcomes (exists, CAS mismatch) go into `out.status`.
absl::Status ApplyCreate(SQLiteConn& conn, const CreateOp& op, WriteResult& out) {
  const Transaction& t = op.txn;
  static const std::string* sql = new std::string(
      absl::StrCat("INSERT INTO trans_global (", kGlobalColumns, ") VALUES (",
                   SqlPlaceholders(kGlobalColumnCount), ") ON CONFLICT DO NOTHING"));
  Stmt s(conn, *sql);
  RETURN_IF_ERROR(s.status());
  s.Bind(1, t.gid)
      .Bind(2, static_cast<int64_t>(t.trans_type))
      .Bind(3, static_cast<int64_t>(t.status))
      .Bind(4, t.options.wait_result ? 1 : 0)
      .Bind(5, Micros(t.options.timeout_to_fail))
      .Bind(6, Micros(t.options.retry_interval))
      .Bind(7, Micros(t.options.max_retry_interval))
      .Bind(8, Micros(t.options.request_timeout))
      .Bind(9, t.options.retry_limit)
      .Bind(10, t.options.concurrent ? 1 : 0)
      .Bind(11, EncodeHeaders(t.options.branch_headers))
      .BindTime(12, t.create_time)
      .BindTime(13, t.update_time)
      .BindTime(14, t.finish_time)
      .BindTime(15, t.next_retry_time)
      .Bind(16, t.rollback_reason)
      .Bind(17, t.query_prepared)
      .Bind(18, t.owner)
      .BindTime(19, t.lease_expire)
      .Bind(20, Micros(t.options.delay))
      .Bind(21, t.creator)
      .Bind(22, t.traceparent)
      .Bind(23, t.tracestate);
  RETURN_IF_ERROR(s.Exec());
  if (sqlite3_changes(conn.db) == 0) {
    ASSIGN_OR_RETURN(Transaction existing, LoadTransaction(conn, t.gid));
    out.existing = std::move(existing);
    out.status = absl::AlreadyExistsError(absl::StrCat("gid '", t.gid, "' already exists"));
    return absl::OkStatus();
  }
  return InsertBranches(conn, t.gid, t.branches);
}

// A conditional UPDATE changed nothing: tells the writer why (NOT_FOUND, or
// FAILED_PRECONDITION with the status found and `expectation`).
absl::Status ExplainNoChange(SQLiteConn& conn, const std::string& gid, GlobalStatus expected,
                             const std::string& owner, WriteResult& out) {
  Stmt q(conn, "SELECT status, owner FROM trans_global WHERE gid = ?");
  RETURN_IF_ERROR(q.status());
  q.Bind(1, gid);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) {
    out.status = absl::NotFoundError(absl::StrCat("transaction gid '", gid, "' not found"));
  } else {
    out.status =
        NoChangeError(gid, static_cast<GlobalStatus>(q.Int(0)), q.Text(1), expected, owner);
  }
  return absl::OkStatus();
}

absl::Status ApplyUpdate(SQLiteConn& conn, const UpdateOp& op, WriteResult& out) {
  // Two forms, so that the common write costs one plain UPDATE: the first writes
  // next_retry_time unless the stored one is earlier than `keep_earlier_than` (?12); only
  // when it changed nothing does the second keep such a time and read it back (RETURNING
  // builds a temporary table in SQLite: a cost every write would pay otherwise).
  static constexpr char kSet[] =
      "UPDATE trans_global SET status = ?1, rollback_reason = ?2, update_time = ?3, "
      "finish_time = ?4, owner = CASE WHEN ?5 THEN ?6 ELSE owner END, lease_expire = CASE "
      "WHEN ?5 THEN ?7 ELSE lease_expire END";
  static constexpr char kWhere[] = " WHERE gid = ?8 AND status = ?9 AND (?10 = '' OR owner = ?10)";
  auto bind = [&](Stmt& st) {
    st.Bind(1, static_cast<int64_t>(op.new_status))
        .Bind(2, op.rollback_reason)
        .BindTime(3, op.update_time)
        .BindTime(4, op.finish_time)
        .Bind(5, op.reassign ? 1 : 0)
        .Bind(6, op.new_owner)
        .BindTime(7, op.new_lease_expire)
        .Bind(8, op.gid)
        .Bind(9, static_cast<int64_t>(op.expected_status))
        .Bind(10, op.owner)
        .BindTime(12, op.keep_earlier_than);
  };
  bool written = false;
  {
    static const std::string* sql = new std::string(absl::StrCat(
        kSet, ", next_retry_time = ?11", kWhere, " AND NOT coalesce(next_retry_time < ?12, 0)"));
    Stmt s(conn, *sql);
    RETURN_IF_ERROR(s.status());
    bind(s);
    s.BindTime(11, op.next_retry_time);
    RETURN_IF_ERROR(s.Exec());
    written = sqlite3_changes(conn.db) > 0;
    if (written) out.next_retry_time = op.next_retry_time;
  }
  if (!written) {
    static const std::string* sql = new std::string(
        absl::StrCat(kSet, kWhere, " AND next_retry_time < ?12 RETURNING next_retry_time"));
    Stmt s(conn, *sql);
    RETURN_IF_ERROR(s.status());
    bind(s);
    // The gid is the key: one row back when the update applied, none when it did not.
    ASSIGN_OR_RETURN(bool kept, s.Step());
    if (!kept) return ExplainNoChange(conn, op.gid, op.expected_status, op.owner, out);
    out.next_retry_time = s.Time(0);
    RETURN_IF_ERROR(s.Exec());  // runs the statement to its end
  }
  if (op.branches.empty()) return absl::OkStatus();
  Stmt u(conn,
         "UPDATE trans_branch SET status = ?, attempts = ?, last_error = ?, finish_time = ? "
         "WHERE gid = ? AND idx = ?");
  RETURN_IF_ERROR(u.status());
  for (const auto& [idx, b] : op.branches) {
    u.Reset();
    u.Bind(1, static_cast<int64_t>(b.status))
        .Bind(2, b.attempts)
        .Bind(3, b.last_error)
        .BindTime(4, b.finish_time)
        .Bind(5, op.gid)
        .Bind(6, idx);
    RETURN_IF_ERROR(u.Exec());
  }
  return absl::OkStatus();
}

absl::Status ApplyTouch(SQLiteConn& conn, const TouchOp& op, WriteResult& out) {
  static const std::string* sql = new std::string(
      absl::StrCat("UPDATE trans_global SET next_retry_time = min(?1, coalesce(next_retry_time - "
                   "1, ?1)) WHERE gid = ?2 AND (",
                   SqliteRunning(), " OR ", SqlPrepared(TransType::kMsg), ")"));
  Stmt s(conn, *sql);
  RETURN_IF_ERROR(s.status());
  s.BindTime(1, op.next_retry_time).Bind(2, op.gid);
  RETURN_IF_ERROR(s.Exec());
  if (sqlite3_changes(conn.db) == 0) {
    return ExplainNoChange(conn, op.gid, GlobalStatus::kUnspecified, "", out);
  }
  return absl::OkStatus();
}

absl::Status ApplyTouchAll(SQLiteConn& conn, const TouchAllOp& op, WriteResult& out) {
  // The gids left alone go through a temporary table: the connection's own, outside the WAL.
  RETURN_IF_ERROR(ExecSql(conn.db,
                          "CREATE TEMP TABLE IF NOT EXISTS touch_except (gid TEXT PRIMARY KEY); "
                          "DELETE FROM touch_except"));
  if (!op.except.empty()) {
    Stmt ins(conn, "INSERT OR IGNORE INTO touch_except (gid) VALUES (?)");
    RETURN_IF_ERROR(ins.status());
    for (const std::string& gid : op.except) {
      ins.Reset();
      ins.Bind(1, gid);
      RETURN_IF_ERROR(ins.Exec());
    }
  }
  static const std::string* sql = new std::string(absl::StrCat(
      "UPDATE trans_global SET next_retry_time = min(?1, coalesce(next_retry_time - 1, ?1)) "
      "WHERE ",
      SqliteRunning(),
      " AND (next_retry_time > ?1 OR lease_expire > ?1) AND gid NOT IN (SELECT gid FROM "
      "temp.touch_except) AND NOT ",
      SqlDelayedMsg("?1")));
  Stmt s(conn, *sql);
  RETURN_IF_ERROR(s.status());
  s.BindTime(1, op.now);
  RETURN_IF_ERROR(s.Exec());
  out.touched = sqlite3_changes(conn.db);
  return absl::OkStatus();
}

absl::Status ApplyRegister(SQLiteConn& conn, const RegisterOp& op, WriteResult& out) {
  {
    Stmt q(conn, "SELECT trans_type, status, creator FROM trans_global WHERE gid = ?");
    RETURN_IF_ERROR(q.status());
    q.Bind(1, op.gid);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) {
      out.status = absl::NotFoundError(absl::StrCat("transaction gid '", op.gid, "' not found"));
      return absl::OkStatus();
    }
    out.status = RegisterRefusal(op, static_cast<TransType>(q.Int(0)),
                                 static_cast<GlobalStatus>(q.Int(1)), q.Text(2));
    if (!out.status.ok()) return absl::OkStatus();
  }
  std::vector<std::pair<BranchOp, std::string>> stored;
  bool same_payload = true;
  {
    Stmt q(conn,
           "SELECT op, target, CAST(payload AS BLOB) = CAST(? AS BLOB) FROM trans_branch WHERE "
           "gid = ? AND branch_id = ?");
    RETURN_IF_ERROR(q.status());
    q.BindBlob(1, op.payload).Bind(2, op.gid).Bind(3, op.branch_id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      stored.emplace_back(static_cast<BranchOp>(q.Int(0)), q.Text(1));
      same_payload = same_payload && q.Int(2) == 1;
    }
  }
  if (!stored.empty()) {
    out.status = CompareRegistered(op, stored, same_payload);
    return absl::OkStatus();
  }
  int64_t next = 0;
  {
    Stmt q(conn,
           "SELECT COALESCE(MAX(idx) + 1, 0), COALESCE(SUM(length(CAST(payload AS BLOB)) + "
           "length(CAST(target AS BLOB))), 0) FROM trans_branch WHERE gid = ?");
    RETURN_IF_ERROR(q.status());
    q.Bind(1, op.gid);
    RETURN_IF_ERROR(q.Step().status());
    next = q.Int(0);
    out.status = RegisterLimitRefusal(op, next, q.Int(1));
    if (!out.status.ok()) return absl::OkStatus();
  }
  RETURN_IF_ERROR(InsertBranches(conn, op.gid, RegisteredBranches(op), next));
  Stmt u(conn, "UPDATE trans_global SET update_time = ? WHERE gid = ?");
  RETURN_IF_ERROR(u.status());
  u.BindTime(1, op.update_time).Bind(2, op.gid);
  return u.Exec();
}

absl::Status ApplyClaim(SQLiteConn& conn, const ClaimOp& op, WriteResult& out) {
  std::vector<std::string> gids;
  {
    static const std::string* sql = new std::string(
        absl::StrCat("SELECT gid FROM trans_global WHERE ", SqliteNotTerminal(),
                     " AND next_retry_time <= ? AND (lease_expire IS NULL OR lease_expire <= ?) "
                     "ORDER BY next_retry_time LIMIT ?"));
    Stmt s(conn, *sql);
    RETURN_IF_ERROR(s.status());
    s.BindTime(1, op.now).BindTime(2, op.now).Bind(3, op.limit);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      gids.push_back(s.Text(0));
    }
  }
  for (const std::string& gid : gids) {
    Stmt u(conn, "UPDATE trans_global SET owner = ?, lease_expire = ? WHERE gid = ?");
    RETURN_IF_ERROR(u.status());
    u.Bind(1, op.owner).BindTime(2, op.now + op.lease).Bind(3, gid);
    RETURN_IF_ERROR(u.Exec());
    ASSIGN_OR_RETURN(Transaction t, LoadTransaction(conn, gid));
    out.claimed.push_back(std::move(t));
  }
  return absl::OkStatus();
}

absl::Status ApplyRenew(SQLiteConn& conn, const RenewOp& op, WriteResult& out) {
  static const std::string* sql = new std::string(
      absl::StrCat("UPDATE trans_global SET lease_expire = ? WHERE gid = ? AND owner = ? AND ",
                   SqliteNotTerminal(), " RETURNING next_retry_time"));
  Stmt s(conn, *sql);
  RETURN_IF_ERROR(s.status());
  for (const std::string& gid : op.gids) {
    s.Reset();
    s.BindTime(1, op.now + op.lease).Bind(2, gid).Bind(3, op.owner);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) out.renewed.emplace_back(gid, s.Time(0));
    s.Reset();
  }
  return absl::OkStatus();
}

absl::Status ApplyPurge(SQLiteConn& conn, const PurgeOp& op, WriteResult& out) {
  RETURN_IF_ERROR(ExecSql(conn.db, "CREATE TEMP TABLE IF NOT EXISTS purge_gids (gid TEXT)"));
  RETURN_IF_ERROR(ExecSql(conn.db, "DELETE FROM purge_gids"));
  static const std::string* sql =
      new std::string(absl::StrCat("INSERT INTO purge_gids SELECT gid FROM trans_global WHERE ",
                                   SqliteTerminal(), " AND finish_time < ? LIMIT ?"));
  Stmt s(conn, *sql);
  RETURN_IF_ERROR(s.status());
  s.BindTime(1, op.finished_before).Bind(2, op.limit);
  RETURN_IF_ERROR(s.Exec());
  out.purged = sqlite3_changes(conn.db);
  RETURN_IF_ERROR(
      ExecSql(conn.db, "DELETE FROM trans_branch WHERE gid IN (SELECT gid FROM purge_gids)"));
  return ExecSql(conn.db, "DELETE FROM trans_global WHERE gid IN (SELECT gid FROM purge_gids)");
}

absl::StatusOr<sqlite3*> OpenConnection(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open sqlite database '", path, "': ", msg));
  }
  sqlite3_busy_timeout(db, 10000);
  // Every commit is fsynced (synchronous=FULL). A checkpoint copies the WAL's pages back into
  // the database file: every 10,000 pages (about 40 MB of WAL) rather than SQLite's 1,000,
  // so that a page the workload rewrites all the time (an index's right edge, a busy leaf) is
  // copied back once per checkpoint instead of ten times as often. Temporary tables (a bulk
  // RetryNow's list of gids to leave alone) and sorts stay in memory: nothing is written
  // beside the database, whose directory may be the only writable one (a read-only root).
  absl::Status st = ExecSql(db,
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                            "PRAGMA wal_autocheckpoint=10000; PRAGMA temp_store=MEMORY;");
  if (!st.ok()) {
    sqlite3_close(db);
    return absl::UnavailableError(
        absl::StrCat("cannot use sqlite database '", path, "': ", st.message()));
  }
  return db;
}

absl::Status Migrate(SQLiteConn& conn) {
  RETURN_IF_ERROR(ExecSql(conn.db, "BEGIN IMMEDIATE"));
  auto fail = [&conn](absl::Status st) {
    ExecSql(conn.db, "ROLLBACK").IgnoreError();
    return st;
  };
  absl::Status st =
      ExecSql(conn.db, "CREATE TABLE IF NOT EXISTS dtm_schema_version (version INTEGER)");
  if (!st.ok()) return fail(st);
  int64_t version = 0;
  {
    Stmt s(conn, "SELECT MAX(version) FROM dtm_schema_version");
    if (!s.status().ok()) return fail(s.status());
    auto row = s.Step();
    if (!row.ok()) return fail(row.status());
    version = s.Int(0);
  }
  if (version > SQLiteStore::kSchemaVersion) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("database schema version ", version, " is newer than this dtmd supports (",
                     SQLiteStore::kSchemaVersion, "); upgrade dtmd")));
  }
  if (version < 1) {
    // The partial indexes' predicates are the same text the queries use (see codec.h).
    std::string v1 = absl::StrCat(R"sql(
      CREATE TABLE trans_global (
        gid TEXT PRIMARY KEY,
        trans_type INTEGER NOT NULL,
        status INTEGER NOT NULL,
        wait_result INTEGER NOT NULL,
        timeout_to_fail_us INTEGER NOT NULL,
        retry_interval_us INTEGER NOT NULL,
        max_retry_interval_us INTEGER NOT NULL,
        request_timeout_us INTEGER NOT NULL,
        retry_limit INTEGER NOT NULL,
        concurrent INTEGER NOT NULL,
        branch_headers TEXT NOT NULL,
        create_time INTEGER,
        update_time INTEGER,
        finish_time INTEGER,
        next_retry_time INTEGER,
        rollback_reason TEXT NOT NULL,
        query_prepared TEXT NOT NULL);
      CREATE INDEX trans_global_due ON trans_global (next_retry_time) WHERE )sql",
                                  SqliteNotTerminal(), R"sql(;
      CREATE INDEX trans_global_created ON trans_global (create_time, gid);
      CREATE INDEX trans_global_finished ON trans_global (finish_time) WHERE )sql",
                                  SqliteTerminal(), R"sql(;
      CREATE TABLE trans_branch (
        gid TEXT NOT NULL,
        idx INTEGER NOT NULL,
        branch_id TEXT NOT NULL,
        op INTEGER NOT NULL,
        target TEXT NOT NULL,
        payload BLOB NOT NULL,
        status INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        finish_time INTEGER,
        after TEXT NOT NULL,
        PRIMARY KEY (gid, idx)) WITHOUT ROWID;
      INSERT INTO dtm_schema_version VALUES (1);)sql");
    st = ExecSql(conn.db, v1.c_str());
    if (!st.ok()) return fail(st);
  }
  if (version < 2) {
    // v2: owner and lease for work claiming.
    st = ExecSql(conn.db, R"sql(
      ALTER TABLE trans_global ADD COLUMN owner TEXT NOT NULL DEFAULT '';
      ALTER TABLE trans_global ADD COLUMN lease_expire INTEGER;
      INSERT INTO dtm_schema_version VALUES (2);)sql");
    if (!st.ok()) return fail(st);
  }
  if (version < 3) {
    // v3: msg delivery delay.
    st = ExecSql(conn.db, R"sql(
      ALTER TABLE trans_global ADD COLUMN delay_us INTEGER NOT NULL DEFAULT 0;
      INSERT INTO dtm_schema_version VALUES (3);)sql");
    if (!st.ok()) return fail(st);
  }
  if (version < 4) {
    // v4: the authenticated identity that created each transaction.
    st = ExecSql(conn.db, R"sql(
      ALTER TABLE trans_global ADD COLUMN creator TEXT NOT NULL DEFAULT '';
      INSERT INTO dtm_schema_version VALUES (4);)sql");
    if (!st.ok()) return fail(st);
  }
  if (version < 5) {
    // v5: the partial indexes' predicates as ranges (codec.h says why), in step with the
    // queries' text again.
    st = ExecSql(conn.db, absl::StrCat(R"sql(
      DROP INDEX trans_global_due;
      CREATE INDEX trans_global_due ON trans_global (next_retry_time) WHERE )sql",
                                       SqliteNotTerminal(), R"sql(;
      DROP INDEX trans_global_finished;
      CREATE INDEX trans_global_finished ON trans_global (finish_time) WHERE )sql",
                                       SqliteTerminal(), R"sql(;
      INSERT INTO dtm_schema_version VALUES (5);)sql")
                              .c_str());
    if (!st.ok()) return fail(st);
  }
  if (version < 6) {
    // v6: the W3C trace context a transaction's client sent (columns of their own: a dtmd
    // that predates them, still running during a rolling update, never reads them).
    st = ExecSql(conn.db, R"sql(
      ALTER TABLE trans_global ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
      ALTER TABLE trans_global ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';
      INSERT INTO dtm_schema_version VALUES (6);)sql");
    if (!st.ok()) return fail(st);
  }
  return ExecSql(conn.db, "COMMIT");
}

}  // namespace

namespace {

absl::Status CheckExistingFile(SQLiteConn& conn, const std::string& path, bool init) {
  const std::string restore =
      "restore it from a backup, or start dtmd with --init_store to create a new, empty store "
      "in it";
  {
    Stmt s(conn, "SELECT count(*) FROM sqlite_master WHERE name = 'dtm_schema_version'");
    RETURN_IF_ERROR(s.status());
    RETURN_IF_ERROR(s.Step().status());
    if (s.Int(0) == 0 && !init) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sqlite database '", path,
          "' exists but holds no dtm store (empty, truncated, or another program's file): ",
          restore));
    }
  }
  Stmt q(conn, "PRAGMA quick_check(5)");
  RETURN_IF_ERROR(q.status());
  std::vector<std::string> problems;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (q.Text(0) != "ok") problems.push_back(q.Text(0));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "sqlite database '", path,
      "' is damaged (PRAGMA quick_check: ", absl::StrJoin(problems, "; "), "): ", restore));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SQLiteStore>> SQLiteStore::Open(const std::string& path, bool init) {
  struct stat st {};
  const bool existed = ::stat(path.c_str(), &st) == 0;
  auto writer = std::make_unique<SQLiteConn>();
  ASSIGN_OR_RETURN(writer->db, OpenConnection(path));
  if (existed) {
    // (A file that is not a database at all already failed in OpenConnection.)
    RETURN_IF_ERROR(CheckExistingFile(*writer, path, init));
  }
  RETURN_IF_ERROR(Migrate(*writer));
  auto reader = std::make_unique<SQLiteConn>();
  ASSIGN_OR_RETURN(reader->db, OpenConnection(path));
  return std::unique_ptr<SQLiteStore>(new SQLiteStore(path, std::move(writer), std::move(reader)));
}

absl::Time SQLiteStore::Now() { return opened_wall_ + (BootTime() - opened_boot_); }

absl::Duration SQLiteStore::BootTime() {
  timespec t;
  clock_gettime(CLOCK_BOOTTIME, &t);
  return absl::DurationFromTimespec(t);
}

SQLiteStore::SQLiteStore(std::string path, std::unique_ptr<SQLiteConn> writer,
                         std::unique_ptr<SQLiteConn> reader)
    : writer_(std::move(writer)), reader_(std::move(reader)), path_(std::move(path)) {
  committer_ = std::make_unique<GroupCommitter>(
      [this](std::vector<PendingWrite>& batch) {
        if (!batch.empty()) ApplyBatch(batch);
      },
      1024);
}

SQLiteStore::~SQLiteStore() { Close(); }

void SQLiteStore::Close() { committer_->Stop(); }

void SQLiteStore::Write(WriteOp op, Done done) {
  committer_->Submit(std::move(op), std::move(done));
}

void SQLiteStore::ApplyBatch(std::vector<PendingWrite>& batch) {
  // Normally one transaction for the whole batch. An op the database refuses (RefusedOp) fails
  // alone and the others run again without it; after a few such ops, the rest go one per
  // transaction (a bound on re-running a large batch once per bad op).
  int refused = 0;
  std::vector<PendingWrite> rest = std::move(batch);
  batch.clear();
  while (!rest.empty()) {
    const size_t n = refused < kRefusalsBeforeOneByOne ? rest.size() : 1;
    std::vector<WriteResult> results(n);
    size_t failed_op = n;
    absl::Status st = RunBatch(rest, n, results, failed_op);
    if (st.ok()) {
      for (size_t i = 0; i < n; ++i) rest[i].done(std::move(results[i]));
      rest.erase(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(n));
      continue;
    }
    ExecSql(writer_->db, "ROLLBACK").IgnoreError();
    if (n == 1) failed_op = 0;
    if (RefusedOp(st)) {
      if (failed_op < n) {
        // That op alone gets the error; the others go again without it.
        WriteResult r;
        r.status = st;
        rest[failed_op].done(std::move(r));
        rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(failed_op));
        ++refused;
      } else {
        // Refused, but at no op's statement (at COMMIT): one op per transaction finds it.
        refused = kRefusalsBeforeOneByOne;
      }
      continue;
    }
    // The database itself: every op still here fails. Of a failed COMMIT that means "not
    // known to be durable", not "not written". In WAL mode SQLite appends the transaction's
    // frames to the -wal file, then syncs it; when the sync fails (SQLITE_IOERR_FSYNC) it
    // leaves the wal-index as it was, so this connection and the readers go on without the
    // transaction, and the next one writes its frames over the same place in the file. But
    // should the process die before anything overwrites them, the frames are still in the
    // file (a failed fsync does not take back what write() put in the page cache), and the
    // next open, which rebuilds the wal-index from the file, finds a complete commit there
    // and keeps it: after a restart the store may hold the last write it reported failed.
    // That is the outcome of a COMMIT whose answer is lost on PostgreSQL, which callers
    // treat as unknown already (a client submits the same gid again; the engine writes the
    // same state again). The reverse cannot happen: SQLite reports no commit done whose sync
    // failed. The ROLLBACK above ends the transaction, SQLite leaves its error state when
    // the pager is next unlocked, and the same connection serves the next batch as soon as
    // the disk does (tests/faults/disk_faults_test.py runs all of this).
    for (PendingWrite& w : rest) {
      WriteResult r;
      r.status = absl::UnavailableError(absl::StrCat("database unavailable: ", st.message()));
      w.done(std::move(r));
    }
    return;
  }
}

absl::Status SQLiteStore::RunBatch(std::vector<PendingWrite>& ops, size_t n,
                                   std::vector<WriteResult>& results, size_t& failed_op) {
  RETURN_IF_ERROR(ExecSql(writer_->db, "BEGIN IMMEDIATE"));
  for (size_t i = 0; i < n; ++i) {
    WriteResult& out = results[i];
    absl::Status st = std::visit(
        [&](auto& op) -> absl::Status {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, CreateOp>) return ApplyCreate(*writer_, op, out);
          if constexpr (std::is_same_v<T, UpdateOp>) return ApplyUpdate(*writer_, op, out);
          if constexpr (std::is_same_v<T, TouchOp>) return ApplyTouch(*writer_, op, out);
          if constexpr (std::is_same_v<T, TouchAllOp>) return ApplyTouchAll(*writer_, op, out);
          if constexpr (std::is_same_v<T, RegisterOp>) return ApplyRegister(*writer_, op, out);
          if constexpr (std::is_same_v<T, ClaimOp>) return ApplyClaim(*writer_, op, out);
          if constexpr (std::is_same_v<T, RenewOp>) return ApplyRenew(*writer_, op, out);
          if constexpr (std::is_same_v<T, PurgeOp>) return ApplyPurge(*writer_, op, out);
        },
        ops[i].op);
    if (!st.ok()) {
      failed_op = i;
      return st;
    }
  }
  return ExecSql(writer_->db, "COMMIT");
}

absl::StatusOr<Transaction> SQLiteStore::Get(const std::string& gid) {
  absl::MutexLock lock(&reader_mu_);
  return LoadTransaction(*reader_, gid);
}

absl::StatusOr<ListPage> SQLiteStore::List(const ListQuery& q) {
  std::string sql = absl::StrCat("SELECT ", kGlobalColumns,
                                 " FROM trans_global WHERE create_time > ? AND create_time < ?");
  PageCursor cursor;
  if (!q.page_token.empty()) {
    ASSIGN_OR_RETURN(cursor, DecodePageToken(q.page_token));
    sql += " AND (create_time < ? OR (create_time = ? AND gid < ?))";
  }
  if (q.status != GlobalStatus::kUnspecified) sql += " AND status = ?";
  if (q.trans_type != TransType::kUnspecified) sql += " AND trans_type = ?";
  if (!q.gid_prefix.empty()) sql += " AND substr(gid, 1, ?) = ?";
  if (!q.creator.empty()) sql += " AND creator = ?";
  sql += " ORDER BY create_time DESC, gid DESC LIMIT ?";

  absl::MutexLock lock(&reader_mu_);
  Stmt s(*reader_, sql);
  RETURN_IF_ERROR(s.status());
  int i = 1;
  s.Bind(i++,
         q.created_after == absl::InfinitePast() ? INT64_MIN : absl::ToUnixMicros(q.created_after));
  s.Bind(i++, q.created_before == absl::InfiniteFuture() ? INT64_MAX
                                                         : absl::ToUnixMicros(q.created_before));
  if (!q.page_token.empty()) {
    s.Bind(i++, cursor.create_time_us);
    s.Bind(i++, cursor.create_time_us);
    s.Bind(i++, cursor.gid);
  }
  if (q.status != GlobalStatus::kUnspecified) s.Bind(i++, static_cast<int64_t>(q.status));
  if (q.trans_type != TransType::kUnspecified) s.Bind(i++, static_cast<int64_t>(q.trans_type));
  if (!q.gid_prefix.empty()) {
    s.Bind(i++, static_cast<int64_t>(q.gid_prefix.size()));
    s.Bind(i++, q.gid_prefix);
  }
  if (!q.creator.empty()) s.Bind(i++, q.creator);
  s.Bind(i++, q.page_size + 1);
  std::vector<Transaction> rows;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    rows.push_back(ReadGlobal(s));
  }
  return FinishPage(std::move(rows), q);
}

absl::StatusOr<std::map<GlobalStatus, int64_t>> SQLiteStore::CountUnfinished() {
  absl::MutexLock lock(&counter_mu_);
  if (counter_ == nullptr) {
    auto conn = std::make_unique<SQLiteConn>();
    ASSIGN_OR_RETURN(conn->db, OpenConnection(path_));
    counter_ = std::move(conn);
  }
  Stmt s(*counter_, absl::StrCat("SELECT status, count(*) FROM trans_global WHERE ",
                                 SqliteNotTerminal(), " GROUP BY status"));
  RETURN_IF_ERROR(s.status());
  std::map<GlobalStatus, int64_t> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[static_cast<GlobalStatus>(s.Int(0))] = s.Int(1);
  }
  return out;
}

void SQLiteStore::set_commit_observer(CommitObserver observer) {
  committer_->set_observer(std::move(observer));
}

Store::Backlog SQLiteStore::backlog() const { return committer_->backlog(); }

bool SQLiteStore::OnStoreThread() const { return committer_->OnOwnThread(); }

}  // namespace dtm
