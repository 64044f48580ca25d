// OpenStore: the Store named by a URL, SQLite or PostgreSQL. The one place that knows every
// implementation, so that users of the Store interface (the engine, recovery) link neither
// database driver; only the binary that wires them together (dtmd) links this.
#ifndef DTM_STORAGE_OPEN_OPEN_STORE_H_
#define DTM_STORAGE_OPEN_OPEN_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace dtm {

struct StoreOptions {
  // PostgreSQL: the schema holding dtm's tables (created if missing). Empty: "public".
  std::string schema;
  // SQLite: create a new store in an existing file that holds none (SQLiteStore::Open).
  bool init = false;
  // PostgreSQL: dtmd's --lease. The server ends a store session idle inside a transaction for
  // half of it (at least 1 s), so a replica cut off mid-batch does not hold row locks past its
  // lease (PgStoreOptions::idle_in_transaction_timeout). Zero: the server's setting.
  absl::Duration lease = absl::ZeroDuration();
};

// Opens the store named by a URL: "sqlite:///path/to/file.db", "sqlite://relative.db", a
// bare path ending in ".db", or a PostgreSQL URL ("postgresql://...", "postgres://...") or
// libpq key=value connection string ("host=... dbname=...").
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& url,
                                                 const StoreOptions& options = {});

// The store for logs: the SQLite path, or PostgreSQL's host(s) without credentials.
std::string DescribeStore(const std::string& url);

}  // namespace dtm

#endif  // DTM_STORAGE_OPEN_OPEN_STORE_H_
