// Conversions between absl::Status, what every layer of dtm-cpp returns, and grpc::Status,
// what a gRPC handler answers. The codes are the same numbers in both (Abseil defines them
// after gRPC's), so the conversion keeps the code and the message and nothing else.
#ifndef DTM_CLIENT_COMMON_GRPC_STATUS_H_
#define DTM_CLIENT_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace dtm {

grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s);

}  // namespace dtm

#endif  // DTM_CLIENT_COMMON_GRPC_STATUS_H_
