// Validation of incoming requests. Every error is INVALID_ARGUMENT (or RESOURCE_EXHAUSTED
// for sizes, UNIMPLEMENTED for modes not built yet) with a message naming the field and the
// offending value. Pure functions.
#ifndef DTM_SERVER_API_VALIDATION_H_
#define DTM_SERVER_API_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dtm/v1/coordinator.pb.h"
#include "storage/store.h"
#include "storage/transaction.h"

namespace dtm {

struct ApiLimits {
  size_t max_payload_bytes = 1 << 20;  // per step
  int max_steps = 1000;
  int max_page_size = 1000;
};

inline constexpr size_t kMaxGidLength = 128;

absl::Status ValidateGid(const std::string& gid, const char* field = "gid");

// Turns a Submit request into a new domain transaction (status SUBMITTED, times unset).
absl::StatusOr<Transaction> SubmitToTransaction(const v1::SubmitRequest& req,
                                                const ApiLimits& limits);
absl::StatusOr<ListQuery> ListToQuery(const v1::ListRequest& req, const ApiLimits& limits);

}  // namespace dtm

#endif  // DTM_SERVER_API_VALIDATION_H_
