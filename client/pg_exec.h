// Small libpq helpers shared by the barrier and code using it: owning handles and one
// statement run with text parameters.
#ifndef DTM_CLIENT_PG_EXEC_H_
#define DTM_CLIENT_PG_EXEC_H_

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

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

// Runs `sql` with text parameters ($1, $2, ...). UNAVAILABLE "<what>: <server's message>"
// unless it succeeded.
absl::StatusOr<Result> Exec(PGconn* conn, const std::string& what, const std::string& sql,
                            const std::vector<std::string>& params = {});

}  // namespace dtm::pg

#endif  // DTM_CLIENT_PG_EXEC_H_
