// Branch targets, the two kinds a step may name:
// - gRPC: "host:port/package.Service/Method", optionally prefixed by "grpc://", by "grpcs://"
//   (over TLS, the branch's certificate verified) or by "dns:///" (resolve every address of
//   the name and balance calls over them round-robin, as for a Kubernetes headless Service);
// - HTTP: an "http://" or "https://" URL, DTM's HTTP branch protocol.
// The grammar is strict on purpose: the coordinator calls whatever a client names, so a target
// must not reach anything but a TCP port by a host name or an IP literal. No other gRPC
// resolver scheme (unix:, unix-abstract:, vsock:, ipv4: address lists), no user@, no spaces,
// control characters or percent-escapes in the host, a port in canonical form (1..65535, no
// sign, no leading zero), at most kMaxTargetLength characters. Host names are compared
// case-insensitively, so the parsed authority is lowercased: one spelling per endpoint.
#ifndef DTM_CLIENT_COMMON_TARGET_H_
#define DTM_CLIENT_COMMON_TARGET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dtm {

inline constexpr size_t kMaxTargetLength = 2048;
inline constexpr size_t kMaxHostLength = 253;  // DNS's limit for a name

struct GrpcTarget {
  std::string authority;  // "host:port", lowercased
  std::string method;     // "/package.Service/Method"
  bool balanced = false;  // "dns:///": every address of the name, round-robin
  bool tls = false;       // "grpcs://"
  // What a channel is created for ("host:port" or "dns:///host:port").
  std::string ChannelTarget() const;
  // The key channels are shared by: ChannelTarget, and whether over TLS.
  std::string ChannelKey() const;
};

// Parses `target`; INVALID_ARGUMENT naming `field` and the value when malformed.
absl::StatusOr<GrpcTarget> ParseGrpcTarget(const std::string& target, const std::string& field);

struct HttpTarget {
  bool https = false;
  std::string host;  // a DNS name or an IP literal ("[::1]" keeps its brackets), lowercased
  int port = 0;      // explicit, or 80 / 443
  std::string path;  // "/api/busi/TransOut?x=1": path and query, at least "/"
};

// True if `target` names an HTTP branch (http:// or https://, any case).
bool IsHttpTarget(const std::string& target);
// Parses an HTTP(S) URL: no user:password@ (the coordinator sends its own credentials, as
// branch_headers), no #fragment, printable ASCII only (percent-encode the rest). INVALID_ARGUMENT
// naming `field` and the value when malformed.
absl::StatusOr<HttpTarget> ParseHttpTarget(const std::string& target, const std::string& field);
// A value for an error message: C-escaped, and cut to its first 100 characters.
std::string QuoteForError(absl::string_view value);
// Checks a branch target of either kind (IsHttpTarget decides which).
absl::Status ValidateTarget(const std::string& target, const std::string& field);

}  // namespace dtm

#endif  // DTM_CLIENT_COMMON_TARGET_H_
