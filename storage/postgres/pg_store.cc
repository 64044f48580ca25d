#include "storage/postgres/pg_store.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <random>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/common/status_macros.h"
#include "server/runtime/log.h"
#include "storage/codec.h"
#include "storage/libpq/pg_conn.h"

namespace dtm {

struct PgStore::Reader {
  absl::Mutex mu;
  std::unique_ptr<PgConn> conn ABSL_GUARDED_BY(mu);
};

// A batch whose COMMIT was sent but whose answer was lost: its writers wait until the commit
// marker says whether it committed (see ResolveUnknownCommits).
struct PgStore::Unresolved {
  int64_t batch = 0;  // the number the batch wrote into its writer's commit marker
  std::vector<PendingWrite> batch_ops;
  std::vector<WriteResult> results;  // what each op did, if the commit happened
};

namespace {

// pg_advisory_xact_lock key for migrations: "dtm" in ASCII.
constexpr int64_t kMigrationLock = 0x64746d;
constexpr absl::Duration kIdleTick = absl::Milliseconds(250);
constexpr absl::Duration kClockCheckEvery = absl::Seconds(10);

std::vector<std::pair<std::string, std::string>> Statements() {
  return {
      // Every batch stamps its writer's row with its own number; see ResolveUnknownCommits.
      {"mark_commit",
       "INSERT INTO dtm_commit_marker (writer, batch, at) VALUES ($1, $2, now()) "
       "ON CONFLICT (writer) DO UPDATE SET batch = EXCLUDED.batch, at = EXCLUDED.at"},
      {"now_us", "SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint"},
      {"create_global",
       absl::StrCat("INSERT INTO trans_global (", kGlobalColumns, ") VALUES (",
                    PgPlaceholders(kGlobalColumnCount), ") ON CONFLICT (gid) DO NOTHING")},
      {"insert_branch", absl::StrCat("INSERT INTO trans_branch (gid, idx, ", kBranchColumns,
                                     ") VALUES (", PgPlaceholders(2 + kBranchColumnCount), ")")},
      {"get_global", absl::StrCat("SELECT ", kGlobalColumns, " FROM trans_global WHERE gid = $1")},
      {"get_branches",
       absl::StrCat("SELECT ", kBranchColumns, " FROM trans_branch WHERE gid = $1 ORDER BY idx")},
      {"get_branches_many",
       absl::StrCat("SELECT gid, ", kBranchColumns,
                    " FROM trans_branch WHERE gid = ANY($1::text[]) ORDER BY gid, idx")},
      {"update_global",
       "UPDATE trans_global SET status = $1, rollback_reason = $2, update_time = $3, "
       "finish_time = $4, "
       "next_retry_time = CASE WHEN next_retry_time < $12::bigint THEN next_retry_time "
       "ELSE $5::bigint END, "
       "owner = CASE WHEN $9::int = 1 THEN $10::text ELSE owner END, "
       "lease_expire = CASE WHEN $9::int = 1 THEN $11::bigint ELSE lease_expire END "
       "WHERE gid = $6 AND status = $7 AND ($8::text = '' OR owner = $8::text) "
       "RETURNING next_retry_time"},
      {"update_branch",
       "UPDATE trans_branch SET status = $1, attempts = $2, last_error = $3, finish_time = $4 "
       "WHERE gid = $5 AND idx = $6"},
      {"status_owner", "SELECT status, owner FROM trans_global WHERE gid = $1"},
      {"touch", absl::StrCat("UPDATE trans_global SET next_retry_time = "
                             "LEAST($1, next_retry_time - 1) WHERE gid = $2 AND (",
                             SqlRunning(), " OR ", SqlPrepared(TransType::kMsg), ")")},
      // The gids left out go through a hashed subplan (NOT IN a subquery): one probe per row,
      // however long the list (`<> ALL($2)` would compare each row with every gid in it).
      {"touch_all",
       absl::StrCat("UPDATE trans_global SET next_retry_time = LEAST($1, next_retry_time - 1) "
                    "WHERE ",
                    SqlRunning(),
                    " AND (next_retry_time > $1 OR lease_expire > $1) "
                    "AND gid NOT IN (SELECT unnest($2::text[])) AND NOT ",
                    SqlDelayedMsg("$1"))},
      // RegisterOp: lock the PREPARED tcc's (or xa's) row (concurrent registrations of one
      // gid queue here, so each sees the rows of the one before), append both rows unless the
      // branch id is taken, then read what the branch id holds.
      // ($3: the registering identity, '' for anyone; $4: the type registered into.)
      {"register_lock",
       absl::StrCat("UPDATE trans_global SET update_time = $2 WHERE gid = $1 AND status = ",
                    SqlValue(GlobalStatus::kPrepared),
                    " AND trans_type = $4::int AND ($3::text = '' OR creator = $3::text)")},
      {"type_status", "SELECT trans_type, status, creator FROM trans_global WHERE gid = $1"},
      {"register_insert",
       absl::StrCat("INSERT INTO trans_branch (gid, idx, ", kBranchColumns,
                    ") SELECT $1::text, m.n + v.k, $2::text, v.op, v.target, $3::bytea, ",
                    SqlValue(BranchStatus::kPrepared),
                    ", 0, '', NULL, '' FROM (SELECT COALESCE(MAX(idx) + 1, 0) AS n, "
                    "COALESCE(SUM(octet_length(payload) + octet_length(target)), 0) AS b FROM "
                    "trans_branch WHERE gid = $1::text) m, (VALUES (0, $9::int, $4::text), "
                    "(1, $10::int, $5::text)) AS v(k, op, target) WHERE NOT EXISTS (SELECT 1 FROM "
                    "trans_branch WHERE gid = $1::text AND branch_id = $2::text) AND "
                    // the bounds (RegisterLimitRefusal says which one refused)
                    "m.n < 2 * $6::bigint AND m.b + $7::bigint <= $8::bigint")},
      {"branch_usage",
       "SELECT COALESCE(MAX(idx) + 1, 0), COALESCE(SUM(octet_length(payload) + "
       "octet_length(target)), 0) FROM trans_branch WHERE gid = $1"},
      {"branch_targets",
       "SELECT op, target, (payload = $3::bytea)::int FROM trans_branch WHERE gid = $1 AND "
       "branch_id = $2"},
      {"claim", absl::StrCat("UPDATE trans_global SET owner = $1, lease_expire = $2 WHERE gid IN "
                             "(SELECT gid FROM trans_global WHERE ",
                             SqlNotTerminal(),
                             " AND next_retry_time <= $3 AND (lease_expire IS NULL OR "
                             "lease_expire <= $3) ORDER BY next_retry_time LIMIT $4 FOR UPDATE "
                             "SKIP LOCKED) RETURNING ",
                             kGlobalColumns)},
      {"renew",
       absl::StrCat("UPDATE trans_global SET lease_expire = $1 WHERE gid = ANY($2::text[]) "
                    "AND owner = $3 AND ",
                    SqlNotTerminal(), " RETURNING gid, next_retry_time")},
      {"purge", absl::StrCat("WITH d AS (SELECT gid FROM trans_global WHERE ", SqlTerminal(),
                             " AND finish_time < $1 ORDER BY finish_time LIMIT $2 FOR UPDATE SKIP "
                             "LOCKED), b AS (DELETE FROM trans_branch WHERE gid IN (SELECT gid "
                             "FROM d)) DELETE FROM trans_global WHERE gid IN (SELECT gid FROM d)")},
  };
}

absl::Status PrepareAll(PgConn& c) {
  for (const auto& [name, sql] : Statements()) RETURN_IF_ERROR(c.Prepare(name, sql));
  return absl::OkStatus();
}

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

PgParams GlobalParams(const Transaction& t) {
  PgParams p;
  p.Add(t.gid)
      .Add(static_cast<int64_t>(t.trans_type))
      .Add(static_cast<int64_t>(t.status))
      .Add(t.options.wait_result ? 1 : 0)
      .Add(Micros(t.options.timeout_to_fail))
      .Add(Micros(t.options.retry_interval))
      .Add(Micros(t.options.max_retry_interval))
      .Add(Micros(t.options.request_timeout))
      .Add(static_cast<int64_t>(t.options.retry_limit))
      .Add(t.options.concurrent ? 1 : 0)
      .Add(EncodeHeaders(t.options.branch_headers))
      .AddTime(t.create_time)
      .AddTime(t.update_time)
      .AddTime(t.finish_time)
      .AddTime(t.next_retry_time)
      .Add(t.rollback_reason)
      .Add(t.query_prepared)
      .Add(t.owner)
      .AddTime(t.lease_expire)
      .Add(Micros(t.options.delay))
      .Add(t.creator)
      .Add(t.traceparent)
      .Add(t.tracestate);
  return p;
}

Transaction ReadGlobal(const PgRow& r) { return ReadGlobalRow(r); }
Branch ReadBranch(const PgRow& r, int c) { return ReadBranchRow(r, c); }

void ReadBranches(const PGresult* res, Transaction& t) {
  for (int i = 0; i < PQntuples(res); ++i) t.branches.push_back(ReadBranch(PgRow(res, i), 0));
}

int64_t Changed(const pg::Result& r) {
  int64_t n = 0;
  const char* s = PQcmdTuples(r.get());
  for (; s && *s; ++s) n = n * 10 + (*s - '0');
  return n;
}

// Whether round 2 of a batch (PgStore::RunBatch) reads something `op`'s outcome is computed
// from, given the op's answer in round 1: the stored transaction (a create whose gid exists), a
// refusal's reason (an update or touch that changed nothing; every registration), or the
// branches of the transactions a claim took.
bool Round2Reads(const WriteOp& op, const pg::Result& res) {
  if (std::holds_alternative<CreateOp>(op) || std::holds_alternative<UpdateOp>(op) ||
      std::holds_alternative<TouchOp>(op)) {
    return Changed(res) == 0;
  }
  if (std::holds_alternative<RegisterOp>(op)) return true;
  if (std::holds_alternative<ClaimOp>(op)) return PQntuples(res.get()) > 0;
  return false;
}

absl::Status NoChange(const pg::Result& r, const std::string& gid, GlobalStatus expected,
                      const std::string& owner) {
  if (PQntuples(r.get()) == 0) {
    return absl::NotFoundError(absl::StrCat("transaction gid '", gid, "' not found"));
  }
  PgRow row(r.get(), 0);
  return NoChangeError(gid, static_cast<GlobalStatus>(row.Int(0)), row.Text(1), expected, owner);
}

// Whether `st`, a statement's error, is the database refusing that statement's data rather
// than a failure of the database or the session: the SQLSTATE classes of data exceptions
// (22: a value it cannot store, e.g. a NUL byte in text), integrity constraints (23), program
// limits (54: e.g. a key too long for its index), triggered data change and check option
// violations (27, 44) and exceptions raised by PL/pgSQL (P0: e.g. a trigger's RAISE). The same
// op would fail again; its neighbours in a batch would not. Anything else (a lost session,
// the server shutting down, a deadlock, missing rights) fails the whole batch, UNAVAILABLE.
bool RefusedOp(const absl::Status& st) {
  if (st.code() != absl::StatusCode::kInternal) return false;
  std::string state = pg::SqlState(st);
  if (state.size() != 5) return false;
  std::string cls = state.substr(0, 2);
  return cls == "22" || cls == "23" || cls == "27" || cls == "44" || cls == "54" || cls == "P0";
}

// Completes every op of `batch` with UNAVAILABLE "database unavailable: <why>".
void FailAll(std::vector<PendingWrite>& batch, absl::string_view why) {
  std::vector<WriteResult> failed(batch.size());
  for (auto& r : failed) {
    r.status = absl::UnavailableError(absl::StrCat("database unavailable: ", why));
  }
  GroupCommitter::Complete(batch, std::move(failed));
  batch.clear();
}

// Session settings every connection of the store starts with.
absl::Status ConfigureSession(PgConn& c, const PgStoreOptions& o) {
  if (o.idle_in_transaction_timeout <= absl::ZeroDuration()) return absl::OkStatus();
  const int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(o.idle_in_transaction_timeout));
  return c.Exec(absl::StrCat("SET idle_in_transaction_session_timeout = ", ms)).status();
}

// A writer's name in dtm_commit_marker: random, so that no two processes share one.
std::string NewWriterId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}

absl::Status Migrate(PgConn& c, const std::string& schema, const std::string& conninfo) {
  auto step = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(pg::Result unused, c.Exec("BEGIN"));
    PgParams lock;
    lock.Add(kMigrationLock);
    ASSIGN_OR_RETURN(unused, c.Exec("SELECT pg_advisory_xact_lock($1::bigint)", lock));
    PgParams ns;
    ns.Add(schema);
    ASSIGN_OR_RETURN(pg::Result exists,
                     c.Exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", ns));
    if (PQntuples(exists.get()) == 0) {
      char* ident = PQescapeIdentifier(c.raw(), schema.c_str(), schema.size());
      std::string sql = absl::StrCat("CREATE SCHEMA ", ident ? ident : "\"?\"");
      PQfreemem(ident);
      ASSIGN_OR_RETURN(unused, c.Exec(sql));
    }
    ASSIGN_OR_RETURN(
        unused, c.Exec("CREATE TABLE IF NOT EXISTS dtm_schema_version (version INT NOT NULL)"));
    ASSIGN_OR_RETURN(pg::Result v,
                     c.Exec("SELECT COALESCE(MAX(version), 0) FROM dtm_schema_version"));
    int64_t version = PgRow(v.get(), 0).Int(0);
    if (version > PgStore::kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL schema '", schema, "' has dtm schema version ", version,
          ", newer than this dtmd supports (", PgStore::kSchemaVersion, "); upgrade dtmd"));
    }
    if (version < 1) {
      // The partial indexes' predicates are the same text the queries use (see codec.h).
      ASSIGN_OR_RETURN(unused, c.Exec(absl::StrCat(R"sql(
        CREATE TABLE trans_global (
          gid TEXT PRIMARY KEY,
          trans_type SMALLINT NOT NULL,
          status SMALLINT NOT NULL,
          wait_result SMALLINT NOT NULL,
          timeout_to_fail_us BIGINT NOT NULL,
          retry_interval_us BIGINT NOT NULL,
          max_retry_interval_us BIGINT NOT NULL,
          request_timeout_us BIGINT NOT NULL,
          retry_limit INT NOT NULL,
          concurrent SMALLINT NOT NULL,
          branch_headers TEXT NOT NULL,
          create_time BIGINT,
          update_time BIGINT,
          finish_time BIGINT,
          next_retry_time BIGINT,
          rollback_reason TEXT NOT NULL,
          query_prepared TEXT NOT NULL,
          owner TEXT NOT NULL DEFAULT '',
          lease_expire BIGINT);
        CREATE INDEX trans_global_due ON trans_global (next_retry_time) WHERE )sql",
                                                   SqlNotTerminal(), R"sql(;
        CREATE INDEX trans_global_created ON trans_global (create_time, gid);
        CREATE INDEX trans_global_finished ON trans_global (finish_time) WHERE )sql",
                                                   SqlTerminal(), R"sql(;
        CREATE TABLE trans_branch (
          gid TEXT NOT NULL,
          idx INT NOT NULL,
          branch_id TEXT NOT NULL,
          op SMALLINT NOT NULL,
          target TEXT NOT NULL,
          payload BYTEA NOT NULL,
          status SMALLINT NOT NULL,
          attempts INT NOT NULL,
          last_error TEXT NOT NULL,
          finish_time BIGINT,
          after TEXT NOT NULL,
          PRIMARY KEY (gid, idx));
        INSERT INTO dtm_schema_version VALUES (1);)sql")));
    }
    if (version < 2) {
      // v2: msg delivery delay.
      ASSIGN_OR_RETURN(unused, c.Exec(R"sql(
        ALTER TABLE trans_global ADD COLUMN delay_us BIGINT NOT NULL DEFAULT 0;
        INSERT INTO dtm_schema_version VALUES (2);)sql"));
    }
    if (version < 3) {
      // v3: the authenticated identity that created each transaction.
      ASSIGN_OR_RETURN(unused, c.Exec(R"sql(
        ALTER TABLE trans_global ADD COLUMN creator TEXT NOT NULL DEFAULT '';
        INSERT INTO dtm_schema_version VALUES (3);)sql"));
    }
    if (version < 4) {
      // v4: the W3C trace context a transaction's client sent (columns of their own: a dtmd
      // that predates them, still running during a rolling update, never reads them). Adding
      // a column with a constant default rewrites no row.
      ASSIGN_OR_RETURN(unused, c.Exec(R"sql(
        ALTER TABLE trans_global ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
        ALTER TABLE trans_global ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';
        INSERT INTO dtm_schema_version VALUES (4);)sql"));
    }
    if (version < 5) {
      // v5: one row per writer (a dtmd process), stamped by each of its commits: how the
      // outcome of a COMMIT whose answer was lost is read, even on another server after a
      // failover (see ResolveUnknownCommits).
      ASSIGN_OR_RETURN(unused, c.Exec(R"sql(
        CREATE TABLE dtm_commit_marker (
          writer TEXT PRIMARY KEY,
          batch BIGINT NOT NULL,
          at TIMESTAMPTZ NOT NULL);
        INSERT INTO dtm_schema_version VALUES (5);)sql"));
    }
    // The rows of writers gone for a week (each process has its own).
    ASSIGN_OR_RETURN(unused, c.Exec("DELETE FROM dtm_commit_marker WHERE at < now() - interval "
                                    "'7 days'"));
    ASSIGN_OR_RETURN(unused, c.Exec("COMMIT"));
    return absl::OkStatus();
  };
  absl::Status st = step();
  if (st.ok()) return st;
  if (!c.broken()) c.Exec("ROLLBACK").status().IgnoreError();
  // 42501: insufficient privilege; 3F000: no usable schema (no USAGE on it).
  if (pg::SqlState(st) == "42501" || pg::SqlState(st) == "3F000") {
    return absl::PermissionDeniedError(absl::StrCat(
        "PostgreSQL user '", PQuser(c.raw()), "' at ", PgHostOf(conninfo),
        " lacks the rights dtmd needs in schema '", schema,
        "' (USAGE and CREATE on the schema, or CREATE on the database for a new schema): ",
        st.message()));
  }
  return st;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgStore>> PgStore::Open(const std::string& conninfo,
                                                       const PgStoreOptions& options) {
  PgStoreOptions o = options;
  if (o.schema.empty()) o.schema = "public";
  ASSIGN_OR_RETURN(std::unique_ptr<PgConn> c, PgConn::Connect(conninfo, o.schema, o.io_timeout));
  RETURN_IF_ERROR(ConfigureSession(*c, o));
  RETURN_IF_ERROR(Migrate(*c, o.schema, conninfo));
  RETURN_IF_ERROR(PrepareAll(*c));
  return std::unique_ptr<PgStore>(new PgStore(conninfo, o, std::move(c)));
}

PgStore::PgStore(std::string conninfo, PgStoreOptions options, std::unique_ptr<PgConn> writer)
    : conninfo_(std::move(conninfo)),
      options_(std::move(options)),
      writer_id_(NewWriterId()),
      writer_(std::move(writer)) {
  NoteWriterSession();
  // Until the database's clock is read (should that fail), the local wall clock stands in.
  clock_offset_us_.store(absl::ToInt64Microseconds((absl::Now() - absl::UnixEpoch()) - Monotonic()),
                         std::memory_order_relaxed);
  MeasureClockOffset(*writer_);
  for (int i = 0; i < std::max(1, options_.readers); ++i) {
    readers_.push_back(std::make_unique<Reader>());
  }
  committer_ = std::make_unique<GroupCommitter>(
      [this](std::vector<PendingWrite>& batch) { ApplyBatch(batch); }, 1024, kIdleTick);
}

PgStore::~PgStore() { Close(); }

void PgStore::Close() {
  committer_->Stop();
  // The writer thread is gone: finish what it left undecided, as far as the database lets us.
  if (!unresolved_.empty() && EnsureWriter()) ResolveUnknownCommits();
  for (auto& u : unresolved_) {
    std::vector<WriteResult> failed(u->batch_ops.size());
    for (auto& r : failed) {
      r.status = absl::UnavailableError("closed before the commit's outcome could be read");
    }
    GroupCommitter::Complete(u->batch_ops, std::move(failed));
  }
  unresolved_.clear();
}

// The database's clock as last read, carried forward by the monotonic clock. The local wall
// clock plays no part: "wall clock + the offset last measured" would be wrong by a whole step
// of it (an hour, say) until the next measurement, long enough to write leases and retry
// times that far off, and with the next measurement itself due by the wall clock, a backward
// step would have put that off by as much again.
absl::Time PgStore::Now() {
  return absl::UnixEpoch() + Monotonic() +
         absl::Microseconds(clock_offset_us_.load(std::memory_order_relaxed));
}

absl::Duration PgStore::Monotonic() const {
  if (options_.monotonic_for_test) return options_.monotonic_for_test();
  // CLOCK_BOOTTIME: monotonic like steady_clock, but it also counts the time the machine
  // was suspended, so a resumed VM's store clock is not behind by the pause.
  timespec t;
  clock_gettime(CLOCK_BOOTTIME, &t);
  return absl::DurationFromTimespec(t);
}

void PgStore::Write(WriteOp op, Done done) { committer_->Submit(std::move(op), std::move(done)); }

absl::StatusOr<std::unique_ptr<PgConn>> PgStore::Connect() {
  ASSIGN_OR_RETURN(std::unique_ptr<PgConn> c,
                   PgConn::Connect(conninfo_, options_.schema, options_.io_timeout));
  RETURN_IF_ERROR(ConfigureSession(*c, options_));
  RETURN_IF_ERROR(PrepareAll(*c));
  return c;
}

void PgStore::MeasureClockOffset(PgConn& conn) {
  absl::Duration before = Monotonic();
  auto r = conn.ExecPrepared("now_us", {});
  absl::Duration after = Monotonic();
  next_clock_check_ = after + kClockCheckEvery;
  if (!r.ok()) return;  // the last measurement, carried forward, stays as good as it was
  absl::Duration db = absl::FromUnixMicros(PgRow(r->get(), 0).Int(0)) - absl::UnixEpoch();
  absl::Duration local = before + (after - before) / 2;
  clock_offset_us_.store(absl::ToInt64Microseconds(db - local), std::memory_order_relaxed);
}

void PgStore::NoteWriterSession() {
  writer_pid_ = writer_->backend_pid();
  auto r = writer_->Exec(
      "SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()");
  writer_start_ = r.ok() && PQntuples(r->get()) == 1 ? PgRow(r->get(), 0).Text(0) : "";
}

bool PgStore::EnsureMarkerRow() {
  // The row exists before any batch stamps it: a batch then updates it, and the resolver's
  // FOR UPDATE waits for a COMMIT in progress (it would not see, nor wait for, the insert of a
  // row that does not exist yet). Before the first batch only: later, the insert would wait
  // for the very COMMIT in progress the resolver is about to ask after.
  if (!marker_row_) {
    PgParams me;
    me.Add(writer_id_);
    marker_row_ = writer_
                      ->Exec(
                          "INSERT INTO dtm_commit_marker (writer, batch, at) VALUES ($1, 0, now()) "
                          "ON CONFLICT (writer) DO NOTHING",
                          me)
                      .ok();
  }
  return marker_row_;
}

bool PgStore::EnsureWriter() {
  if (writer_ && !writer_->broken()) return true;
  if (writer_) {
    // A session that broke while a batch's outcome is unknown may still hold that writer's
    // commit marker on the server: the resolver may have to end it. By pid and start time,
    // noted at connect (libpq reports pid 0 once the connection broke).
    if (!unresolved_.empty()) orphans_.emplace_back(writer_pid_, writer_start_);
    writer_.reset();
    LogLine(LogLevel::kWarning, "lost the PostgreSQL connection; reconnecting");
  }
  absl::Duration now = Monotonic();
  if (now < next_connect_) return false;
  auto c = Connect();
  if (!c.ok()) {
    backoff_ =
        std::min(options_.max_reconnect_backoff, std::max(absl::Milliseconds(100), backoff_ * 2));
    next_connect_ = now + backoff_;
    if (last_error_ != c.status().message()) {
      last_error_ = std::string(c.status().message());
      Log(LogLevel::kWarning, "PostgreSQL unavailable").Field("error", last_error_);
    }
    return false;
  }
  writer_ = std::move(*c);
  NoteWriterSession();
  if (!last_error_.empty()) LogLine(LogLevel::kInfo, "PostgreSQL connection restored");
  last_error_.clear();
  backoff_ = absl::ZeroDuration();
  MeasureClockOffset(*writer_);
  return true;
}

// Whether a batch whose COMMIT answer was lost committed. Every batch stamps this writer's
// row of dtm_commit_marker with its number, and no batch runs while an earlier one is
// unresolved, so the row holds the batch's number if and only if the batch committed. Asking
// PostgreSQL about the transaction id instead (txid_status) is only sound on the very server
// that ran it: after a crash or a failover, an id whose records never reached the disk or the
// standby is handed out again, and its status is some other transaction's.
//
// The row is read FOR UPDATE: if the session that sent the COMMIT is still running on the
// same server (its COMMIT in progress, e.g. waiting for the synchronous standby), the read
// waits for its outcome, up to a lock timeout; after that the session is ended (only if the
// server is the same one: pid and start time must both match; and never while it waits for
// the synchronous standby) and the row read again on the next tick. The answer is taken only
// once the reading transaction itself committed (see below).
void PgStore::ResolveUnknownCommits() {
  for (auto it = unresolved_.begin(); it != unresolved_.end() && writer_;) {
    Unresolved& u = **it;
    PgParams p;
    p.Add(writer_id_);
    absl::StatusOr<pg::Result> r = writer_->Exec("BEGIN");
    if (r.ok()) r = writer_->Exec("SET LOCAL lock_timeout = '2s'");
    if (r.ok()) {
      // Locks the row, and waits for a transaction that is writing it (an insert too, should
      // the row be missing: a SELECT would neither see nor wait for that one).
      r = writer_->Exec(
          "INSERT INTO dtm_commit_marker (writer, batch, at) VALUES ($1, 0, now()) "
          "ON CONFLICT (writer) DO UPDATE SET batch = dtm_commit_marker.batch RETURNING batch",
          p);
    }
    if (!r.ok()) {
      if (writer_->broken()) return;  // try again on the next tick
      writer_->Exec("ROLLBACK").status().IgnoreError();
      if (pg::SqlState(r.status()) == "55P03") {  // lock_not_available: a session has the row
        // The row's holder is one of this writer's earlier sessions (the batch's, or an
        // earlier resolver's), still open on the server. It is ended only if it is idle in
        // its transaction (its COMMIT never arrived) or waiting for a lock: never in the
        // middle of a COMMIT (writing or syncing the WAL, or waiting for the synchronous
        // standby), where ending it would make the commit visible, to every replica, before
        // any standby has it, so that a failover could still take it away.
        for (const auto& [pid, start] : orphans_) {
          PgParams session;
          session.Add(static_cast<int64_t>(pid)).Add(start);
          writer_
              ->Exec(
                  "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE pid = $1::int AND backend_start::text = $2 "
                  "AND (state LIKE 'idle in transaction%' OR wait_event_type = 'Lock')",
                  session)
              .status()
              .IgnoreError();
        }
      }
      return;
    }
    const bool committed = PQntuples(r->get()) == 1 && PgRow(r->get(), 0).Int(0) == u.batch;
    // The answer stands only once this transaction commits: having locked the row, it has WAL
    // of its own, later than the batch's commit, so its COMMIT returns only when the
    // synchronous standby has both. A marker read on a primary that then died before its
    // standby got the batch would otherwise say "committed" about a write the failover lost.
    if (!writer_->Exec("COMMIT").ok()) return;  // try again on the next tick
    unknown_commits_resolved_.fetch_add(1);
    Log(LogLevel::kWarning, "commit with unknown outcome resolved")
        .Field("batch", u.batch)
        .Field("outcome", committed ? "committed" : "not committed");
    if (!committed) {
      for (auto& res : u.results) {
        res = WriteResult();
        res.status = absl::UnavailableError(
            "the database did not keep the write (connection lost before its commit)");
      }
    }
    GroupCommitter::Complete(u.batch_ops, std::move(u.results));
    it = unresolved_.erase(it);
  }
  if (unresolved_.empty()) orphans_.clear();
}

void PgStore::ApplyBatch(std::vector<PendingWrite>& batch) {
  if (!EnsureWriter()) {
    FailAll(batch, last_error_);
    return;
  }
  if (!unresolved_.empty()) ResolveUnknownCommits();
  if (!unresolved_.empty()) {
    // A later batch would overwrite the commit marker the unresolved one is judged by.
    FailAll(batch, "the outcome of an earlier commit is not known yet");
    return;
  }
  if (Monotonic() >= next_clock_check_) MeasureClockOffset(*writer_);
  if (batch.empty() || !writer_) return;
  if (!EnsureMarkerRow()) {
    FailAll(batch, "cannot create this writer's commit marker");
    return;
  }
  // Normally one transaction for the whole batch. An op the database refuses (RefusedOp) fails
  // alone and the others run again without it; after a few such ops, the rest go one per
  // transaction (a bound on re-running a large batch once per bad op).
  int refused = 0;
  std::vector<PendingWrite> rest = std::move(batch);
  batch.clear();
  while (!rest.empty()) {
    std::vector<PendingWrite> part;
    if (refused < kRefusalsBeforeOneByOne) {
      part = std::move(rest);
      rest.clear();
    } else {
      part.push_back(std::move(rest.front()));
      rest.erase(rest.begin());
    }
    size_t failed_op = part.size();
    auto results = RunBatch(part, failed_op);
    if (results.ok()) {
      GroupCommitter::Complete(part, *std::move(results));
      continue;
    }
    if (!writer_->broken()) {
      // The transaction failed but the session lives: roll it back and leave pipeline mode.
      writer_->SendSql("ROLLBACK").IgnoreError();
      writer_->Flush().status().IgnoreError();
      writer_->EndPipeline().IgnoreError();
    }
    if (part.size() == 1) failed_op = 0;
    if (!part.empty() && !writer_->broken() && RefusedOp(results.status())) {
      if (failed_op < part.size()) {
        // That op alone gets the error; the others go again without it.
        WriteResult r;
        r.status = results.status();
        part[failed_op].done(std::move(r));
        part.erase(part.begin() + static_cast<std::ptrdiff_t>(failed_op));
        ++refused;
      } else {
        // Refused, but at no op's statement (at COMMIT): one op per transaction finds it.
        refused = kRefusalsBeforeOneByOne;
      }
      std::move(rest.begin(), rest.end(), std::back_inserter(part));
      rest = std::move(part);
      continue;
    }
    // The connection or the database itself: every op still here fails (a batch whose COMMIT
    // went out was moved to unresolved_ and waits for its outcome instead).
    FailAll(part, results.status().message());
    FailAll(rest, results.status().message());
  }
}

absl::Status PgStore::SendCommitMarker(PgConn& c, int64_t batch_number) {
  PgParams mark;
  mark.Add(writer_id_).Add(batch_number);
  return c.SendPrepared("mark_commit", mark);
}

absl::StatusOr<std::vector<WriteResult>> PgStore::RunBatch(std::vector<PendingWrite>& batch,
                                                           size_t& failed_op) {
  PgConn& c = *writer_;
  const size_t n = batch.size();
  std::vector<WriteResult> out(n);
  failed_op = n;
  RETURN_IF_ERROR(c.BeginPipeline());

  // Round 1: BEGIN, then one statement per op.
  const int64_t batch_number = ++batches_;
  RETURN_IF_ERROR(c.SendSql("BEGIN"));
  for (PendingWrite& w : batch) {
    RETURN_IF_ERROR(std::visit(
        [&](auto& op) -> absl::Status {
          using T = std::decay_t<decltype(op)>;
          PgParams p;
          if constexpr (std::is_same_v<T, CreateOp>) {
            return c.SendPrepared("create_global", GlobalParams(op.txn));
          } else if constexpr (std::is_same_v<T, UpdateOp>) {
            p.Add(static_cast<int64_t>(op.new_status))
                .Add(op.rollback_reason)
                .AddTime(op.update_time)
                .AddTime(op.finish_time)
                .AddTime(op.next_retry_time)
                .Add(op.gid)
                .Add(static_cast<int64_t>(op.expected_status))
                .Add(op.owner)
                .Add(op.reassign ? 1 : 0)
                .Add(op.new_owner)
                .AddTime(op.new_lease_expire)
                .AddTime(op.keep_earlier_than);
            return c.SendPrepared("update_global", p);
          } else if constexpr (std::is_same_v<T, TouchOp>) {
            p.AddTime(op.next_retry_time).Add(op.gid);
            return c.SendPrepared("touch", p);
          } else if constexpr (std::is_same_v<T, TouchAllOp>) {
            p.AddTime(op.now).AddArray(op.except);
            return c.SendPrepared("touch_all", p);
          } else if constexpr (std::is_same_v<T, RegisterOp>) {
            p.Add(op.gid)
                .AddTime(op.update_time)
                .Add(op.actor)
                .Add(static_cast<int64_t>(op.trans_type));
            return c.SendPrepared("register_lock", p);
          } else if constexpr (std::is_same_v<T, ClaimOp>) {
            p.Add(op.owner).AddTime(op.now + op.lease).AddTime(op.now).Add(op.limit);
            return c.SendPrepared("claim", p);
          } else if constexpr (std::is_same_v<T, RenewOp>) {
            p.AddTime(op.now + op.lease).AddArray(op.gids).Add(op.owner);
            return c.SendPrepared("renew", p);
          } else {
            static_assert(std::is_same_v<T, PurgeOp>);
            p.AddTime(op.finished_before).Add(op.limit);
            return c.SendPrepared("purge", p);
          }
        },
        w.op));
  }
  // A statement's error names the op that sent it: round 1's results are BEGIN, then op i's
  // statement at i + 1.
  auto r1 = c.Flush();
  if (!r1.ok()) {
    if (c.failed_statement() >= 1) failed_op = c.failed_statement() - 1;
    return r1.status();
  }

  // Round 2: what depends on round 1's answers. `first[i]`: op i's first result in r2.
  //
  // When no op's outcome is read from round 2's answers, round 2 only writes (a new
  // transaction's branch rows, an update's branch results: the common batch) and goes out
  // with round 3, one round trip fewer: a statement of it that fails aborts the COMMIT behind
  // it all the same. The commit marker then goes first, before round 2: a session still busy
  // with those writes when its answers are lost holds the marker's row, so that the resolver
  // waits for it rather than read the row as not committed (see ResolveUnknownCommits).
  bool reads = false;
  for (size_t i = 0; i < n; ++i) reads = reads || Round2Reads(batch[i].op, (*r1)[i + 1]);
  const bool with_commit = !reads;
  if (with_commit) RETURN_IF_ERROR(SendCommitMarker(c, batch_number));
  std::vector<size_t> first(n, 0);
  std::vector<size_t> sent_by;  // round 2's statement j was sent for op sent_by[j]
  size_t sent = 0;
  bool sent_reads = false;  // must equal `reads`: checked below
  for (size_t i = 0; i < n; ++i) {
    const pg::Result& res = (*r1)[i + 1];
    first[i] = sent;
    RETURN_IF_ERROR(std::visit(
        [&](auto& op) -> absl::Status {
          using T = std::decay_t<decltype(op)>;
          PgParams p;
          if constexpr (std::is_same_v<T, CreateOp>) {
            if (Changed(res) == 0) {  // the gid exists: read the stored transaction
              p.Add(op.txn.gid);
              RETURN_IF_ERROR(c.SendPrepared("get_global", p));
              sent += 2;
              sent_reads = true;
              return c.SendPrepared("get_branches", p);
            }
            for (size_t b = 0; b < op.txn.branches.size(); ++b) {
              const Branch& br = op.txn.branches[b];
              PgParams bp;
              bp.Add(op.txn.gid)
                  .Add(static_cast<int64_t>(b))
                  .Add(br.branch_id)
                  .Add(static_cast<int64_t>(br.op))
                  .Add(br.target)
                  .AddBytes(br.payload)
                  .Add(static_cast<int64_t>(br.status))
                  .Add(static_cast<int64_t>(br.attempts))
                  .Add(br.last_error)
                  .AddTime(br.finish_time)
                  .Add(EncodeAfter(br.after));
              RETURN_IF_ERROR(c.SendPrepared("insert_branch", bp));
              ++sent;
            }
          } else if constexpr (std::is_same_v<T, UpdateOp> || std::is_same_v<T, TouchOp>) {
            if (Changed(res) == 0) {
              p.Add(op.gid);
              ++sent;
              sent_reads = true;
              return c.SendPrepared("status_owner", p);
            }
            if constexpr (std::is_same_v<T, UpdateOp>) {
              for (const auto& [idx, b] : op.branches) {
                PgParams bp;
                bp.Add(static_cast<int64_t>(b.status))
                    .Add(static_cast<int64_t>(b.attempts))
                    .Add(b.last_error)
                    .AddTime(b.finish_time)
                    .Add(op.gid)
                    .Add(static_cast<int64_t>(idx));
                RETURN_IF_ERROR(c.SendPrepared("update_branch", bp));
                ++sent;
              }
            }
          } else if constexpr (std::is_same_v<T, RegisterOp>) {
            sent_reads = true;
            if (Changed(res) == 0) {
              p.Add(op.gid);
              ++sent;
              return c.SendPrepared("type_status", p);
            }
            PgParams ins;
            constexpr int64_t kNone = int64_t{1} << 60;
            ins.Add(op.gid).Add(op.branch_id).AddBytes(op.payload).Add(op.confirm).Add(op.cancel);
            ins.Add(op.max_registrations > 0 ? op.max_registrations : kNone)
                .Add(RegisteredBytes(op))
                .Add(op.max_transaction_bytes > 0 ? op.max_transaction_bytes : kNone)
                .Add(static_cast<int64_t>(CommitOp(op.trans_type)))
                .Add(static_cast<int64_t>(RollbackOp(op.trans_type)));
            RETURN_IF_ERROR(c.SendPrepared("register_insert", ins));
            p.Add(op.gid).Add(op.branch_id).AddBytes(op.payload);
            RETURN_IF_ERROR(c.SendPrepared("branch_targets", p));
            PgParams usage;
            usage.Add(op.gid);
            sent += 3;
            return c.SendPrepared("branch_usage", usage);
          } else if constexpr (std::is_same_v<T, ClaimOp>) {
            if (PQntuples(res.get()) > 0) {
              std::vector<std::string> gids;
              for (int row = 0; row < PQntuples(res.get()); ++row) {
                gids.push_back(PgRow(res.get(), row).Text(0));
              }
              p.AddArray(gids);
              ++sent;
              sent_reads = true;
              return c.SendPrepared("get_branches_many", p);
            }
          }
          return absl::OkStatus();
        },
        batch[i].op));
    sent_by.resize(sent, i);
  }
  if (sent_reads != reads) {  // Round2Reads and the statements above disagree: a bug
    return absl::InternalError("round 2 of a batch read what Round2Reads did not foresee");
  }
  std::vector<pg::Result> r2;
  if (sent > 0 && !with_commit) {
    auto flushed = c.Flush();
    if (!flushed.ok()) {
      int j = c.failed_statement();
      if (j >= 0 && static_cast<size_t>(j) < sent_by.size()) failed_op = sent_by[j];
      return flushed.status();
    }
    r2 = *std::move(flushed);
  }

  // Each op's outcome, as it stands if the transaction commits.
  for (size_t i = 0; i < n; ++i) {
    const pg::Result& res = (*r1)[i + 1];
    WriteResult& o = out[i];
    std::visit(
        [&](auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, CreateOp>) {
            if (Changed(res) == 0) {
              const pg::Result& g = r2[first[i]];
              if (PQntuples(g.get()) == 1) {
                Transaction t = ReadGlobal(PgRow(g.get(), 0));
                ReadBranches(r2[first[i] + 1].get(), t);
                o.existing = std::move(t);
              }
              o.status =
                  absl::AlreadyExistsError(absl::StrCat("gid '", op.txn.gid, "' already exists"));
            }
          } else if constexpr (std::is_same_v<T, UpdateOp>) {
            if (Changed(res) == 0) {
              o.status = NoChange(r2[first[i]], op.gid, op.expected_status, op.owner);
            } else if (PQntuples(res.get()) == 1) {
              o.next_retry_time = PgRow(res.get(), 0).Time(0);
            }
          } else if constexpr (std::is_same_v<T, TouchOp>) {
            if (Changed(res) == 0) {
              o.status = NoChange(r2[first[i]], op.gid, GlobalStatus::kUnspecified, "");
            }
          } else if constexpr (std::is_same_v<T, TouchAllOp>) {
            o.touched = Changed(res);
          } else if constexpr (std::is_same_v<T, RegisterOp>) {
            const pg::Result& r = r2[first[i]];
            if (Changed(res) == 0) {
              if (PQntuples(r.get()) == 0) {
                o.status =
                    absl::NotFoundError(absl::StrCat("transaction gid '", op.gid, "' not found"));
              } else {
                PgRow row(r.get(), 0);
                o.status = RegisterRefusal(op, static_cast<TransType>(row.Int(0)),
                                           static_cast<GlobalStatus>(row.Int(1)), row.Text(2));
              }
            } else if (Changed(r) == 0) {  // the branch id was taken, or a bound refused
              std::vector<std::pair<BranchOp, std::string>> stored;
              bool same_payload = true;
              const PGresult* t = r2[first[i] + 1].get();
              for (int row = 0; row < PQntuples(t); ++row) {
                PgRow br(t, row);
                stored.emplace_back(static_cast<BranchOp>(br.Int(0)), br.Text(1));
                same_payload = same_payload && br.Int(2) == 1;
              }
              if (stored.empty()) {
                PgRow usage(r2[first[i] + 2].get(), 0);
                o.status = RegisterLimitRefusal(op, usage.Int(0), usage.Int(1));
              } else {
                o.status = CompareRegistered(op, stored, same_payload);
              }
            }
          } else if constexpr (std::is_same_v<T, ClaimOp>) {
            absl::flat_hash_map<std::string, size_t> at;
            for (int row = 0; row < PQntuples(res.get()); ++row) {
              o.claimed.push_back(ReadGlobal(PgRow(res.get(), row)));
              at[o.claimed.back().gid] = o.claimed.size() - 1;
            }
            if (!o.claimed.empty()) {
              const PGresult* b = r2[first[i]].get();
              for (int row = 0; row < PQntuples(b); ++row) {
                PgRow br(b, row);
                o.claimed[at[br.Text(0)]].branches.push_back(ReadBranch(br, 1));
              }
            }
          } else if constexpr (std::is_same_v<T, RenewOp>) {
            for (int row = 0; row < PQntuples(res.get()); ++row) {
              PgRow r(res.get(), row);
              o.renewed.emplace_back(r.Text(0), r.Time(1));
            }
          } else {
            o.purged = Changed(res);
          }
        },
        batch[i].op);
  }

  // Round 3: the commit marker (unless it went before a round 2 that only writes), then the
  // durable commit. The marker goes in the last round so that only a transaction about to
  // commit holds this writer's row: a batch cut off earlier (its session left idle in its
  // transaction on the server) must not block the next ones.
  if (!with_commit) RETURN_IF_ERROR(SendCommitMarker(c, batch_number));
  RETURN_IF_ERROR(c.SendSql("COMMIT"));
  absl::StatusOr<std::vector<pg::Result>> committed;
  absl::Status commit_sent = c.SendSync();
  if (commit_sent.ok()) {
    if (options_.after_commit_sent_for_test) options_.after_commit_sent_for_test(c.raw());
    committed = c.ReadResults();
  } else {
    committed = commit_sent;
  }
  if (!committed.ok()) {
    // With round 2 in this round: the marker is statement 0, round 2's statement j is j + 1.
    const int j = c.failed_statement();
    if (with_commit && j >= 1 && static_cast<size_t>(j) <= sent_by.size()) {
      failed_op = sent_by[j - 1];
    }
    if (c.broken()) {
      // COMMIT was sent and its answer lost: it may or may not have happened.
      auto u = std::make_unique<Unresolved>();
      u->batch = batch_number;
      u->batch_ops = std::move(batch);
      batch.clear();
      u->results = std::move(out);
      unresolved_.push_back(std::move(u));
    }
    return committed.status();
  }
  // Committed: whatever happens to the session now, these results stand.
  c.EndPipeline().IgnoreError();
  return out;
}

template <typename T, typename Fn>
absl::StatusOr<T> PgStore::WithReader(Fn fn) {
  Reader& r = *readers_[next_reader_.fetch_add(1, std::memory_order_relaxed) % readers_.size()];
  absl::MutexLock lock(&r.mu);
  for (int attempt = 0;; ++attempt) {
    if (!r.conn || r.conn->broken()) {
      auto c = Connect();
      if (!c.ok()) return absl::UnavailableError(c.status().message());
      r.conn = std::move(*c);
    }
    absl::StatusOr<T> out = fn(*r.conn);
    if (out.ok() || !r.conn->broken() || attempt > 0) return out;
  }
}

absl::StatusOr<Transaction> PgStore::Get(const std::string& gid) {
  return WithReader<Transaction>([&](PgConn& c) -> absl::StatusOr<Transaction> {
    PgParams p;
    p.Add(gid);
    ASSIGN_OR_RETURN(pg::Result g, c.ExecPrepared("get_global", p));
    if (PQntuples(g.get()) == 0) {
      return absl::NotFoundError(absl::StrCat("transaction gid '", gid, "' not found"));
    }
    Transaction t = ReadGlobal(PgRow(g.get(), 0));
    ASSIGN_OR_RETURN(pg::Result b, c.ExecPrepared("get_branches", p));
    ReadBranches(b.get(), t);
    return t;
  });
}

absl::StatusOr<ListPage> PgStore::List(const ListQuery& q) {
  PgParams p;
  int n = 0;
  auto arg = [&n]() { return absl::StrCat("$", ++n); };
  std::string sql = absl::StrCat("SELECT ", kGlobalColumns, " FROM trans_global WHERE TRUE");
  if (q.created_after != absl::InfinitePast()) {
    absl::StrAppend(&sql, " AND create_time > ", arg());
    p.AddTime(q.created_after);
  }
  if (q.created_before != absl::InfiniteFuture()) {
    absl::StrAppend(&sql, " AND create_time < ", arg());
    p.AddTime(q.created_before);
  }
  if (!q.page_token.empty()) {
    ASSIGN_OR_RETURN(PageCursor cursor, DecodePageToken(q.page_token));
    std::string t = arg(), t2 = arg(), g = arg();
    absl::StrAppend(&sql, " AND (create_time < ", t, " OR (create_time = ", t2, " AND gid < ", g,
                    "))");
    p.Add(cursor.create_time_us).Add(cursor.create_time_us).Add(cursor.gid);
  }
  if (q.status != GlobalStatus::kUnspecified) {
    absl::StrAppend(&sql, " AND status = ", arg());
    p.Add(static_cast<int64_t>(q.status));
  }
  if (q.trans_type != TransType::kUnspecified) {
    absl::StrAppend(&sql, " AND trans_type = ", arg());
    p.Add(static_cast<int64_t>(q.trans_type));
  }
  if (!q.gid_prefix.empty()) {
    std::string len = arg(), prefix = arg();
    absl::StrAppend(&sql, " AND left(gid, ", len, "::int) = ", prefix);
    p.Add(static_cast<int64_t>(q.gid_prefix.size())).Add(q.gid_prefix);
  }
  if (!q.creator.empty()) {
    absl::StrAppend(&sql, " AND creator = ", arg());
    p.Add(q.creator);
  }
  absl::StrAppend(&sql, " ORDER BY create_time DESC, gid DESC LIMIT ", arg());
  p.Add(static_cast<int64_t>(q.page_size) + 1);
  return WithReader<ListPage>([&](PgConn& c) -> absl::StatusOr<ListPage> {
    ASSIGN_OR_RETURN(pg::Result r, c.Exec(sql, p));
    std::vector<Transaction> rows;
    for (int i = 0; i < PQntuples(r.get()); ++i) rows.push_back(ReadGlobal(PgRow(r.get(), i)));
    return FinishPage(std::move(rows), q);
  });
}

absl::StatusOr<std::map<GlobalStatus, int64_t>> PgStore::CountUnfinished() {
  return WithReader<std::map<GlobalStatus, int64_t>>(
      [](PgConn& c) -> absl::StatusOr<std::map<GlobalStatus, int64_t>> {
        ASSIGN_OR_RETURN(pg::Result r,
                         c.Exec(absl::StrCat("SELECT status, count(*) FROM trans_global WHERE ",
                                             SqlNotTerminal(), " GROUP BY status"),
                                PgParams()));
        std::map<GlobalStatus, int64_t> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
          PgRow row(r.get(), i);
          out[static_cast<GlobalStatus>(row.Int(0))] = row.Int(1);
        }
        return out;
      });
}

void PgStore::set_commit_observer(CommitObserver observer) {
  committer_->set_observer(std::move(observer));
}

Store::Backlog PgStore::backlog() const { return committer_->backlog(); }

bool PgStore::OnStoreThread() const { return committer_->OnOwnThread(); }

}  // namespace dtm
