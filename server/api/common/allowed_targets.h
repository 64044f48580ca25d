// AllowedTargets: which hosts and ports the coordinator may call for its clients
// (--allowed_targets). Without it, any target in the grammar is called, which suits a quick
// start on one machine; in a shared deployment it keeps a client from using dtmd to reach
// services it could not reach itself.
//
// A list is comma-separated entries, each a host pattern with an optional ":port" (any port
// without one):
//   10.0.0.0/8, fd00::/8          IP literals in that network (CIDR)
//   127.0.0.1, [::1]              that IP literal
//   busi.example.com              that name (case-insensitive)
//   *.svc.cluster.local           any name ending in ".svc.cluster.local"
//   *.ns.svc.cluster.local:50051  ... on port 50051
// Names are matched as written in the target; dtmd does not resolve them to check the
// addresses, so list the names (or the networks of the IP literals) clients may use.
#ifndef DTM_SERVER_API_COMMON_ALLOWED_TARGETS_H_
#define DTM_SERVER_API_COMMON_ALLOWED_TARGETS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dtm {

class AllowedTargets {
 public:
  // INVALID_ARGUMENT naming the entry when `list` has a malformed one.
  static absl::StatusOr<AllowedTargets> Parse(const std::string& list);

  // Whether `host` (as ParseGrpcTarget/ParseHttpTarget give it: lowercased, IPv6 in
  // brackets) and `port` may be called.
  bool Allows(const std::string& host, int port) const;
  // OK, or PERMISSION_DENIED naming `field` and `target` when its host and port are not
  // allowed. `target` must be valid (ValidateTarget).
  absl::Status Check(const std::string& target, const std::string& field) const;

 private:
  struct Entry {
    enum class Kind { kName, kSuffix, kNetwork } kind = Kind::kName;
    std::string name;              // kName: the host; kSuffix: ".svc.cluster.local"
    std::array<uint8_t, 16> ip{};  // kNetwork: IPv4 as ::ffff:a.b.c.d
    int prefix_bits = 0;           // kNetwork, over the 128 bits
    int port = 0;                  // 0: any
  };
  std::vector<Entry> entries_;
};

}  // namespace dtm

#endif  // DTM_SERVER_API_COMMON_ALLOWED_TARGETS_H_
