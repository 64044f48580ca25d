// Helpers shared by the SQL stores: how list-valued fields are encoded in one column, the
// List page token, and the error a conditional write that changed nothing reports.
#ifndef DTM_STORAGE_CODEC_H_
#define DTM_STORAGE_CODEC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/transaction.h"

namespace dtm {

// The columns of trans_global, in the order both stores read and write them.
inline constexpr char kGlobalColumns[] =
    "gid, trans_type, status, wait_result, timeout_to_fail_us, retry_interval_us, "
    "max_retry_interval_us, request_timeout_us, retry_limit, concurrent, branch_headers, "
    "create_time, update_time, finish_time, next_retry_time, rollback_reason, query_prepared, "
    "owner, lease_expire";
inline constexpr int kGlobalColumnCount = 19;

// branch_headers: "key=value" lines. gRPC metadata keys hold no '=' and ASCII values no '\n'.
std::string EncodeHeaders(const std::map<std::string, std::string>& h);
std::map<std::string, std::string> DecodeHeaders(const std::string& s);
// Saga `after` edges: "0,2".
std::string EncodeAfter(const std::vector<int32_t>& a);
std::vector<int32_t> DecodeAfter(const std::string& s);

// List's page token: the (create_time, gid) of the last row returned.
struct PageCursor {
  int64_t create_time_us = 0;
  std::string gid;
};
std::string EncodePageToken(const Transaction& last);
absl::StatusOr<PageCursor> DecodePageToken(const std::string& token);

// Why a write conditioned on `expected` status (kUnspecified: any non-terminal) and `owner`
// (empty: anyone) matched nothing, given the row's `status` and `row_owner`.
absl::Status NoChangeError(const std::string& gid, GlobalStatus status,
                           const std::string& row_owner, GlobalStatus expected,
                           const std::string& owner);

}  // namespace dtm

#endif  // DTM_STORAGE_CODEC_H_
