#include "client/common/target.h"

#include "absl/strings/ascii.h"
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
  if (IsHttpTarget(target)) return bad("an HTTP URL");
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

bool IsHttpTarget(const std::string& target) {
  return absl::StartsWithIgnoreCase(target, "http://") ||
         absl::StartsWithIgnoreCase(target, "https://");
}

namespace {

bool DnsNameOrIpv4(absl::string_view host) {
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-') {
    return false;
  }
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  return true;
}

bool Ipv6Literal(absl::string_view host) {  // "[...]"
  if (host.size() < 4 || host.front() != '[' || host.back() != ']') return false;
  for (char c : host.substr(1, host.size() - 2)) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<HttpTarget> ParseHttpTarget(const std::string& target, const std::string& field) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", target, "' is not an http:// or https:// URL: ", why));
  };
  HttpTarget out;
  absl::string_view t = target;
  if (absl::StartsWithIgnoreCase(t, "https://")) {
    out.https = true;
    t.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(t, "http://")) {
    t.remove_prefix(7);
  } else {
    return bad("no http:// or https://");
  }
  for (char c : target) {
    if (c <= ' ' || c > '~') return bad("a space, control or non-ASCII character");
  }
  if (t.find('#') != absl::string_view::npos) return bad("a #fragment");
  size_t end = t.find_first_of("/?");
  absl::string_view authority = t.substr(0, end);
  out.path = end == absl::string_view::npos ? "/" : std::string(t.substr(end));
  if (out.path[0] == '?') out.path.insert(0, "/");
  if (authority.find('@') != absl::string_view::npos) return bad("user:password@ in it");
  absl::string_view host = authority;
  absl::string_view port;
  size_t colon = authority.rfind(':');
  if (colon != absl::string_view::npos && authority.find(']', colon) == absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (!DnsNameOrIpv4(host) && !Ipv6Literal(host)) return bad("no valid host");
  out.host = std::string(host);
  if (port.empty()) {
    out.port = out.https ? 443 : 80;
  } else if (!absl::SimpleAtoi(port, &out.port) || out.port <= 0 || out.port > 65535 ||
             port.size() > 5) {
    return bad("the port is not in 1..65535");
  }
  return out;
}

absl::Status ValidateTarget(const std::string& target, const std::string& field) {
  if (IsHttpTarget(target)) return ParseHttpTarget(target, field).status();
  return ParseGrpcTarget(target, field).status();
}

}  // namespace dtm
