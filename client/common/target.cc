#include "client/common/target.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace dtm {

absl::StatusOr<GrpcTarget> ParseGrpcTarget(const std::string& target, const std::string& field) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " '", target, "' is not a gRPC target host:port/package.Service/Method: ", why));
  };
  absl::string_view t = target;
  if (absl::StartsWith(t, "http://") || absl::StartsWith(t, "https://")) {
    return bad("HTTP branches are not supported yet");
  }
  absl::ConsumePrefix(&t, "grpc://");
  size_t slash = t.find('/');
  if (slash == absl::string_view::npos) return bad("no /Service/Method");
  absl::string_view authority = t.substr(0, slash);
  absl::string_view method = t.substr(slash);  // "/pkg.Svc/Method"
  size_t colon = authority.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(authority.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return bad("no host:port");
  }
  size_t second = method.find('/', 1);
  if (second == absl::string_view::npos || second == 1 || second + 1 == method.size() ||
      method.find('/', second + 1) != absl::string_view::npos) {
    return bad("no /Service/Method");
  }
  for (char c : method) {
    if (c <= ' ' || c > '~') return bad("the method has a space or a non-ASCII character");
  }
  return GrpcTarget{std::string(authority), std::string(method)};
}

}  // namespace dtm
