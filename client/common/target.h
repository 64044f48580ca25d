// Branch targets, the two kinds a step may name:
// - gRPC: "host:port/package.Service/Method", optionally "grpc://"-prefixed;
// - HTTP: an "http://" or "https://" URL, DTM's HTTP branch protocol.
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

struct HttpTarget {
  bool https = false;
  std::string host;  // a DNS name or an IP literal ("[::1]" keeps its brackets)
  int port = 0;      // explicit, or 80 / 443
  std::string path;  // "/api/busi/TransOut?x=1": path and query, at least "/"
};

// True if `target` names an HTTP branch (http:// or https://, any case).
bool IsHttpTarget(const std::string& target);
// Parses an HTTP(S) URL: no user:password@ (the coordinator sends its own credentials, as
// branch_headers), no #fragment, printable ASCII only (percent-encode the rest). INVALID_ARGUMENT
// naming `field` and the value when malformed.
absl::StatusOr<HttpTarget> ParseHttpTarget(const std::string& target, const std::string& field);
// Checks a branch target of either kind (IsHttpTarget decides which).
absl::Status ValidateTarget(const std::string& target, const std::string& field);

}  // namespace dtm

#endif  // DTM_CLIENT_COMMON_TARGET_H_
