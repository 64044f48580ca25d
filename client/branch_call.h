// Calls a branch the way the coordinator does: a unary gRPC call of "host:port/pkg.Svc/Method"
// (optional "grpc://" prefix) with raw request bytes and the given metadata. Used by the Tcc
// helper to call each branch's Try. Channels are cached per host for the process.
#ifndef DTM_CLIENT_BRANCH_CALL_H_
#define DTM_CLIENT_BRANCH_CALL_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace dtm {

absl::Status CallTarget(const std::string& target, const std::string& payload,
                        const std::vector<std::pair<std::string, std::string>>& metadata,
                        absl::Duration timeout, std::string* response = nullptr);

}  // namespace dtm

#endif  // DTM_CLIENT_BRANCH_CALL_H_
