// A query over the stored transactions (List) and one page of its answer.
#ifndef DTM_SERVER_MODEL_LIST_QUERY_H_
#define DTM_SERVER_MODEL_LIST_QUERY_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/model/transaction.h"

namespace dtm {

struct ListQuery {
  int page_size = 50;
  std::string page_token;                            // opaque, from ListPage::next_page_token
  GlobalStatus status = GlobalStatus::kUnspecified;  // unspecified: any
  TransType trans_type = TransType::kUnspecified;    // unspecified: any
  std::string gid_prefix;
  std::string creator{};  // non-empty: only transactions this identity created
  absl::Time created_after = absl::InfinitePast();
  absl::Time created_before = absl::InfiniteFuture();
  // The page ends early, with a next_page_token, once its transactions add up to this many
  // bytes (TransactionBytes; 0: no bound). At least one transaction is always returned.
  size_t max_bytes = 0;
};

struct ListPage {
  std::vector<Transaction> transactions;  // newest first, without branches
  std::string next_page_token;            // empty: no more pages
};

}  // namespace dtm

#endif  // DTM_SERVER_MODEL_LIST_QUERY_H_
