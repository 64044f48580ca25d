#include "client/pg_exec.h"

#include "absl/strings/str_cat.h"

namespace dtm::pg {

absl::StatusOr<Result> Exec(PGconn* conn, const std::string& what, const std::string& sql,
                            const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  Result r(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0));
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const char* msg = r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn);
    return absl::UnavailableError(absl::StrCat(what, ": ", msg ? msg : "unknown error"));
  }
  return r;
}

}  // namespace dtm::pg
