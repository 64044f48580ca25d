#include "storage/libpq/pg_exec.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace dtm::pg {
namespace {

// The payload key under which an error carries its SQLSTATE.
constexpr char kSqlStateUrl[] = "type.dtm.dev/postgresql.sqlstate";

}  // namespace

std::string OneLine(const char* message) {
  std::string s = absl::StrReplaceAll(message ? message : "", {{"\n", " "}, {"\t", " "}});
  return std::string(absl::StripAsciiWhitespace(s));
}

absl::Status Error(const PGresult* r, PGconn* conn, const std::string& what) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = OneLine(r ? PQresultErrorMessage(r) : nullptr);
  if (msg.empty()) msg = OneLine(PQerrorMessage(conn));
  if (state == nullptr || PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat(what, ": ", msg));
  }
  absl::Status s = absl::InternalError(absl::StrCat(what, ": ", msg, " (SQLSTATE ", state, ")"));
  s.SetPayload(kSqlStateUrl, absl::Cord(state));
  return s;
}

std::string SqlState(const absl::Status& s) {
  auto state = s.GetPayload(kSqlStateUrl);  // an absl::optional<absl::Cord>
  return state ? std::string(*state) : std::string();
}

absl::StatusOr<Result> Exec(PGconn* conn, const std::string& what, const std::string& sql,
                            const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::string& p : params) values.push_back(p.c_str());
  Result r(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0));
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  absl::Status e = Error(r.get(), conn, what);
  if (absl::IsUnavailable(e)) return e;
  absl::Status unavailable = absl::UnavailableError(e.message());
  e.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    unavailable.SetPayload(url, payload);
  });
  return unavailable;
}

}  // namespace dtm::pg
