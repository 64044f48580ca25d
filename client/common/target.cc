#include "client/common/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace dtm {
namespace {

bool Alnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// A DNS name: dot-separated labels of letters, digits and '-', each 1..63 characters, not
// starting or ending with '-'. A name whose last label is all digits is no DNS name (no
// top-level domain is numeric): it must be a dotted IPv4 address, 999.1.1.1 is refused.
bool DnsName(absl::string_view host) {
  if (host.empty() || host.size() > kMaxHostLength) return false;
  absl::string_view h = host;
  absl::ConsumeSuffix(&h, ".");  // a fully qualified name's root dot
  absl::string_view last;
  for (absl::string_view label : absl::StrSplit(h, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!Alnum(c) && c != '-') return false;
    }
    last = label;
  }
  bool numeric = true;
  for (char c : last) numeric = numeric && absl::ascii_isdigit(static_cast<unsigned char>(c));
  if (!numeric) return true;
  in_addr unused;
  return inet_pton(AF_INET, std::string(host).c_str(), &unused) == 1;
}

// "[...]": an IPv6 address (a dotted IPv4 tail allowed), no zone ("%eth0").
bool Ipv6Literal(absl::string_view host) {
  if (host.size() < 4 || host.size() > 47 || host.front() != '[' || host.back() != ']') {
    return false;
  }
  in6_addr unused;
  return inet_pton(AF_INET6, std::string(host.substr(1, host.size() - 2)).c_str(), &unused) == 1;
}

// 1..65535 written the one way: digits only, no leading zero.
bool CanonicalPort(absl::string_view port, int* out) {
  if (port.empty() || port.size() > 5 || port.front() == '0') return false;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(port, out) && *out >= 1 && *out <= 65535;
}

// "host:port" → lowercased host and the port, or why not.
absl::Status SplitAuthority(absl::string_view authority, std::string* host, int* port) {
  size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos || authority.find(']', colon) != absl::string_view::npos) {
    return absl::InvalidArgumentError("no host:port");
  }
  absl::string_view h = authority.substr(0, colon);
  if (!DnsName(h) && !Ipv6Literal(h)) {
    return absl::InvalidArgumentError(
        "no valid host (a DNS name or an IP literal: letters, digits, '-', '.'; [IPv6])");
  }
  if (!CanonicalPort(authority.substr(colon + 1), port)) {
    return absl::InvalidArgumentError(
        "the port is not in 1..65535, written without sign or "
        "leading zero");
  }
  *host = absl::AsciiStrToLower(h);
  return absl::OkStatus();
}

bool PrintableAscii(absl::string_view s) {
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

absl::Status TooLong(const std::string& target, const std::string& field) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", QuoteForError(target), "' is ",
                                                 target.size(), " characters, more than ",
                                                 kMaxTargetLength));
}

}  // namespace

std::string QuoteForError(absl::string_view value) {
  constexpr size_t kShown = 100;
  if (value.size() <= kShown) return absl::CHexEscape(value);
  return absl::StrCat(absl::CHexEscape(value.substr(0, kShown)), "...");
}

std::string GrpcTarget::ChannelTarget() const {
  return balanced ? absl::StrCat("dns:///", authority) : authority;
}

std::string GrpcTarget::ChannelKey() const {
  return tls ? absl::StrCat("grpcs://", ChannelTarget()) : ChannelTarget();
}

absl::StatusOr<GrpcTarget> ParseGrpcTarget(const std::string& target, const std::string& field) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", QuoteForError(target),
                     "' is not a gRPC target host:port/package.Service/Method: ", why));
  };
  if (target.size() > kMaxTargetLength) return TooLong(target, field);
  if (IsHttpTarget(target)) return bad("an HTTP URL");
  if (!PrintableAscii(target)) return bad("a space, control or non-ASCII character");
  GrpcTarget out;
  absl::string_view t = target;
  if (absl::ConsumePrefix(&t, "dns:///")) {
    out.balanced = true;
  } else if (absl::ConsumePrefix(&t, "grpcs://")) {
    out.tls = true;
  } else if (!absl::ConsumePrefix(&t, "grpc://")) {
    // Any other scheme would pick another gRPC resolver: unix sockets, address lists, ...
    size_t colon = t.find(':');
    size_t slash = t.find('/');
    if (colon != absl::string_view::npos && colon < slash) {
      absl::string_view scheme = t.substr(0, colon);
      bool letters = !scheme.empty();
      for (char c : scheme) letters = letters && (absl::ascii_isalpha(c) || c == '-');
      char next = colon + 1 < t.size() ? t[colon + 1] : '/';
      bool port_follows =
          absl::ascii_isdigit(static_cast<unsigned char>(next)) || next == '+' || next == '-';
      if (letters && !port_follows) {
        return bad(absl::StrCat("the scheme '", scheme,
                                ":' is not allowed (only grpc://, grpcs:// and dns:///)"));
      }
    }
  }
  size_t slash = t.find('/');
  if (slash == absl::string_view::npos) return bad("no /Service/Method");
  absl::string_view method = t.substr(slash);  // "/pkg.Svc/Method"
  std::string host;
  int port = 0;
  absl::Status authority = SplitAuthority(t.substr(0, slash), &host, &port);
  if (!authority.ok()) return bad(authority.message());
  size_t second = method.find('/', 1);
  if (second == absl::string_view::npos || second == 1 || second + 1 == method.size() ||
      method.find('/', second + 1) != absl::string_view::npos) {
    return bad("no /Service/Method");
  }
  for (char c : method) {
    if (!Alnum(c) && c != '/' && c != '.' && c != '_') {
      return bad("the service or method has a character outside [A-Za-z0-9_.]");
    }
  }
  out.authority = absl::StrCat(host, ":", port);
  out.method = std::string(method);
  return out;
}

bool IsHttpTarget(const std::string& target) {
  return absl::StartsWithIgnoreCase(target, "http://") ||
         absl::StartsWithIgnoreCase(target, "https://");
}

absl::StatusOr<HttpTarget> ParseHttpTarget(const std::string& target, const std::string& field) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, " '", QuoteForError(target),
                                                   "' is not an http:// or https:// URL: ", why));
  };
  if (target.size() > kMaxTargetLength) return TooLong(target, field);
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
  if (!PrintableAscii(target)) return bad("a space, control or non-ASCII character");
  if (t.find('#') != absl::string_view::npos) return bad("a #fragment");
  size_t end = t.find_first_of("/?");
  absl::string_view authority = t.substr(0, end);
  out.path = end == absl::string_view::npos ? "/" : std::string(t.substr(end));
  if (out.path[0] == '?') out.path.insert(0, "/");
  if (authority.find('@') != absl::string_view::npos) return bad("user:password@ in it");
  std::string with_port(authority);
  size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos || authority.find(']', colon) != absl::string_view::npos) {
    absl::StrAppend(&with_port, ":", out.https ? 443 : 80);
  }
  absl::Status split = SplitAuthority(with_port, &out.host, &out.port);
  if (!split.ok()) return bad(split.message());
  return out;
}

absl::Status ValidateTarget(const std::string& target, const std::string& field) {
  if (IsHttpTarget(target)) return ParseHttpTarget(target, field).status();
  return ParseGrpcTarget(target, field).status();
}

}  // namespace dtm
