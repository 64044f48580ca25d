// Parsing of branch targets: "host:port/package.Service/Method", optionally "grpc://"-prefixed.
#ifndef DTM_CLIENT_COMMON_TARGET_H_
#define DTM_CLIENT_COMMON_TARGET_H_

#include <string>

#include "absl/status/statusor.h"

namespace dtm {

struct GrpcTarget {
  std::string authority;  // "host:port", what a channel is created for
  std::string method;     // "/package.Service/Method"
};

// Parses `target`; INVALID_ARGUMENT naming `field` and the value when malformed.
absl::StatusOr<GrpcTarget> ParseGrpcTarget(const std::string& target, const std::string& field);

}  // namespace dtm

#endif  // DTM_CLIENT_COMMON_TARGET_H_
