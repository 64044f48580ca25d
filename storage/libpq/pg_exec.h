// The libpq basics every PostgreSQL user in dtm-cpp shares (the store, the branch barrier, the
// bank example): owning handles, the error of a failed statement with its SQLSTATE, and one
// statement run with text parameters.
#ifndef DTM_STORAGE_LIBPQ_PG_EXEC_H_
#define DTM_STORAGE_LIBPQ_PG_EXEC_H_

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dtm::pg {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

// The error of a failed statement `r` (or of the connection, when `r` is null): UNAVAILABLE
// "<what>: <server's message>" when the connection is gone, otherwise INTERNAL carrying the
// SQLSTATE (see SqlState).
absl::Status Error(const PGresult* r, PGconn* conn, const std::string& what);
// The SQLSTATE ("42501", ...) an error from Error carries, or "" if it carries none.
std::string SqlState(const absl::Status& s);
// libpq's message as one line (its messages end with a newline and may span several).
std::string OneLine(const char* message);

// Runs `sql` with text parameters ($1, $2, ...). Any failure is UNAVAILABLE "<what>: <server's
// message>" (with its SQLSTATE, if the server sent one): to a branch service, a database that
// refuses a statement is a reason to be asked again, not a business answer.
absl::StatusOr<Result> Exec(PGconn* conn, const std::string& what, const std::string& sql,
                            const std::vector<std::string>& params = {});

}  // namespace dtm::pg

#endif  // DTM_STORAGE_LIBPQ_PG_EXEC_H_
