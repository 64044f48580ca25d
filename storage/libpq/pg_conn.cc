#include "storage/libpq/pg_conn.h"

#include <poll.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace dtm {

using pg::OneLine;

PgParams& PgParams::Add(std::string v) {
  storage_.push_back(std::move(v));
  values_.push_back(storage_.back().c_str());
  lengths_.push_back(static_cast<int>(storage_.back().size()));
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::AddTime(absl::Time t) {
  if (t != absl::InfinitePast()) return Add(absl::ToUnixMicros(t));
  values_.push_back(nullptr);
  lengths_.push_back(0);
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::AddBytes(std::string v) {
  Add(std::move(v));
  formats_.back() = 1;
  return *this;
}

PgParams& PgParams::AddArray(const std::vector<std::string>& items) {
  std::string lit = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) lit += ',';
    lit += '"';
    lit += absl::StrReplaceAll(items[i], {{"\\", "\\\\"}, {"\"", "\\\""}});
    lit += '"';
  }
  lit += '}';
  return Add(std::move(lit));
}

std::string PgRow::Text(int col) const {
  return std::string(PQgetvalue(r_, row_, col), PQgetlength(r_, row_, col));
}

int64_t PgRow::Int(int col) const {
  int64_t v = 0;
  if (!absl::SimpleAtoi(PQgetvalue(r_, row_, col), &v)) {
    // Booleans come back as "t"/"f".
    v = PQgetvalue(r_, row_, col)[0] == 't' ? 1 : 0;
  }
  return v;
}

absl::Time PgRow::Time(int col) const {
  if (IsNull(col)) return absl::InfinitePast();
  return absl::FromUnixMicros(Int(col));
}

std::string PgRow::Bytes(int col) const {
  size_t n = 0;
  unsigned char* p =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row_, col)), &n);
  if (p == nullptr) return std::string();
  std::string out(reinterpret_cast<char*>(p), n);
  PQfreemem(p);
  return out;
}

std::string PgHostOf(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    if (err) PQfreemem(err);
    return "(unparsable connection string)";
  }
  std::string host, hostaddr, port;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (o->val == nullptr) continue;
    std::string k = o->keyword;
    if (k == "host") host = o->val;
    if (k == "hostaddr") hostaddr = o->val;
    if (k == "port") port = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = hostaddr;
  if (host.empty()) host = "localhost (default unix socket)";
  return port.empty() ? host : absl::StrCat(host, " port ", port);
}

absl::StatusOr<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& conninfo,
                                                        const std::string& schema,
                                                        absl::Duration timeout) {
  // Our defaults first: keywords in the user's string (expanded from "dbname") win.
  std::string connect_timeout = std::to_string(std::max<int64_t>(2, absl::ToInt64Seconds(timeout)));
  const char* keys[] = {"connect_timeout",
                        "application_name",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "dbname",
                        nullptr};
  const char* values[] = {connect_timeout.c_str(), "dtmd", "5", "2", "3",
                          conninfo.c_str(),        nullptr};
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = OneLine(PQerrorMessage(c));
    PQfinish(c);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL at ", PgHostOf(conninfo), ": ", msg));
  }
  auto conn = std::unique_ptr<PgConn>(new PgConn(c, timeout));
  if (PQsetnonblocking(c, 1) != 0) return conn->Fail("PQsetnonblocking");
  if (!schema.empty()) {
    char* ident = PQescapeIdentifier(c, schema.c_str(), schema.size());
    if (ident == nullptr) return conn->Fail("escape schema");
    std::string sql = absl::StrCat("SET search_path TO ", ident);
    PQfreemem(ident);
    auto r = conn->Exec(sql);
    if (!r.ok()) return r.status();
  }
  return conn;
}

PgConn::~PgConn() { PQfinish(conn_); }

absl::Status PgConn::Fail(const std::string& what) {
  broken_ = true;
  return absl::UnavailableError(absl::StrCat(what, ": ", OneLine(PQerrorMessage(conn_))));
}

absl::Status PgConn::FlushOutput() {
  absl::Time deadline = absl::Now() + timeout_;
  for (;;) {
    int rc = PQflush(conn_);
    if (rc == 0) return absl::OkStatus();
    if (rc < 0) return Fail("send to PostgreSQL");
    // The server may be blocked sending us results: read them while we wait to write.
    pollfd pfd{PQsocket(conn_), POLLIN | POLLOUT, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return Fail("send to PostgreSQL timed out");
    if (poll(&pfd, 1, ms) < 0) return Fail("poll");
    if ((pfd.revents & POLLIN) && !PQconsumeInput(conn_)) return Fail("read from PostgreSQL");
  }
}

absl::StatusOr<pg::Result> PgConn::NextResult() {
  absl::Time deadline = absl::Now() + timeout_;
  while (PQisBusy(conn_)) {
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) {
      broken_ = true;
      return absl::UnavailableError(
          absl::StrCat("PostgreSQL did not answer within ", absl::FormatDuration(timeout_)));
    }
    if (poll(&pfd, 1, ms) < 0) return Fail("poll");
    if (!PQconsumeInput(conn_)) return Fail("read from PostgreSQL");
  }
  return pg::Result(PQgetResult(conn_));
}

absl::StatusOr<pg::Result> PgConn::FinishOne(bool sent, const std::string& what) {
  if (!sent) return Fail(absl::StrCat("send ", what));
  absl::Status st = FlushOutput();
  if (!st.ok()) return st;
  // A script sent by the simple protocol has several results: keep the first, or the error.
  pg::Result first;
  for (;;) {
    auto r = NextResult();
    if (!r.ok()) return r.status();
    if (*r == nullptr) break;
    ExecStatusType t = PQresultStatus(r->get());
    bool failed = t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK;
    if (!first || (failed && PQresultStatus(first.get()) != PGRES_FATAL_ERROR)) {
      first = std::move(*r);
    }
  }
  ExecStatusType t = first ? PQresultStatus(first.get()) : PGRES_FATAL_ERROR;
  if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
    if (PQstatus(conn_) != CONNECTION_OK) broken_ = true;
    return pg::Error(first.get(), conn_, what);
  }
  return first;
}

absl::StatusOr<pg::Result> PgConn::Exec(const std::string& sql, const PgParams& p) {
  if (p.size() == 0) return FinishOne(PQsendQuery(conn_, sql.c_str()), "query");
  return FinishOne(PQsendQueryParams(conn_, sql.c_str(), p.size(), nullptr, p.values(), p.lengths(),
                                     p.formats(), 0),
                   "query");
}

absl::StatusOr<pg::Result> PgConn::ExecPrepared(const std::string& name, const PgParams& p) {
  return FinishOne(
      PQsendQueryPrepared(conn_, name.c_str(), p.size(), p.values(), p.lengths(), p.formats(), 0),
      name);
}

absl::Status PgConn::Prepare(const std::string& name, const std::string& sql) {
  return FinishOne(PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr),
                   absl::StrCat("prepare ", name))
      .status();
}

absl::Status PgConn::BeginPipeline() {
  if (!PQenterPipelineMode(conn_)) return Fail("enter pipeline mode");
  queued_ = 0;
  return absl::OkStatus();
}

absl::Status PgConn::EndPipeline() {
  if (!PQexitPipelineMode(conn_)) return Fail("exit pipeline mode");
  return absl::OkStatus();
}

absl::Status PgConn::SendPrepared(const std::string& name, const PgParams& p) {
  if (!PQsendQueryPrepared(conn_, name.c_str(), p.size(), p.values(), p.lengths(), p.formats(),
                           0)) {
    return Fail("send query");
  }
  ++queued_;
  return absl::OkStatus();
}

absl::Status PgConn::SendSql(const std::string& sql) {
  if (!PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0)) {
    return Fail("send query");
  }
  ++queued_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pg::Result>> PgConn::Flush() {
  absl::Status st = SendSync();
  if (!st.ok()) return st;
  return ReadResults();
}

absl::Status PgConn::SendSync() {
  failed_statement_ = -1;  // a failure to send names no statement
  if (!PQpipelineSync(conn_)) return Fail("pipeline sync");
  return FlushOutput();
}

absl::StatusOr<std::vector<pg::Result>> PgConn::ReadResults() {
  std::vector<pg::Result> out;
  absl::Status first_error;
  int expected = queued_;
  int failed = -1;
  queued_ = 0;
  failed_statement_ = -1;
  for (int i = 0; i < expected; ++i) {
    auto r = NextResult();
    if (!r.ok()) return r.status();
    if (*r == nullptr) return Fail("pipeline ended early");
    ExecStatusType t = PQresultStatus(r->get());
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK && first_error.ok()) {
      first_error = pg::Error(r->get(), conn_, "statement");
      failed = i;
    }
    out.push_back(std::move(*r));
    auto end = NextResult();  // each statement's results end with a null
    if (!end.ok()) return end.status();
  }
  auto sync = NextResult();
  if (!sync.ok()) return sync.status();
  if (*sync == nullptr || PQresultStatus(sync->get()) != PGRES_PIPELINE_SYNC) {
    return Fail("pipeline sync missing");
  }
  if (!first_error.ok()) {
    failed_statement_ = failed;
    return first_error;
  }
  return out;
}

}  // namespace dtm
