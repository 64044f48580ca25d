#include "storage/open/open_store.h"

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/libpq/pg_conn.h"
#include "storage/postgres/pg_store.h"
#include "storage/sqlite/sqlite_store.h"

namespace dtm {

namespace {

bool IsPostgres(const std::string& url) {
  return absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://") ||
         absl::StrContains(url, "host=") || absl::StrContains(url, "dbname=");
}

}  // namespace

std::string DescribeStore(const std::string& url) {
  if (IsPostgres(url)) return absl::StrCat("PostgreSQL at ", PgHostOf(url));
  return url;
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& url,
                                                 const StoreOptions& options) {
  std::string path;
  if (absl::StartsWith(url, "sqlite://")) {
    path = url.substr(9);  // "sqlite:///abs/path" -> "/abs/path", "sqlite://rel" -> "rel"
  } else if (absl::EndsWith(url, ".db") && url.find("://") == std::string::npos) {
    path = url;
  } else if (IsPostgres(url)) {
    PgStoreOptions o;
    o.schema = options.schema;
    if (options.lease > absl::ZeroDuration()) {
      o.idle_in_transaction_timeout = std::max(options.lease / 2, absl::Seconds(1));
    }
    auto store = PgStore::Open(url, o);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(*store));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--store '", url,
                     "' is not a store URL (expected sqlite:///path/to/dtm.db or "
                     "postgresql://user@host/db)"));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--store '", url, "' names no file"));
  }
  auto store = SQLiteStore::Open(path, options.init);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace dtm
