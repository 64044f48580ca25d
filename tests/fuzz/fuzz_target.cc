// Fuzzes the branch target grammar (client/common/target.h) and the --allowed_targets list
// (server/api/common/allowed_targets.h) on arbitrary strings.
//
// The whole input is a target. An accepted target has a lowercased host without spaces or
// control characters, a port in 1..65535, and its normalised spelling parses again to the
// same thing. When the input has a newline, what precedes it is also parsed as an
// --allowed_targets list and what follows as a target checked against it: the list's verdict
// agrees with Allows, holds for the normalised spelling too, and a list with the target's own
// host:port added always allows it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/common/target.h"
#include "server/api/common/allowed_targets.h"
#include "tests/fuzz/fuzz_check.h"

namespace dtm {
namespace fuzz {
namespace {

bool Printable(absl::string_view s) {
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

bool HasUpper(absl::string_view s) {
  for (char c : s) {
    if (absl::ascii_isupper(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

// A host as the parsers give it: lowercased, printable, a DNS name or a bracketed IPv6 literal.
void CheckHost(const std::string& host, const std::string& target) {
  FUZZ_CHECK(!host.empty() && host.size() <= kMaxHostLength + 2, "host ", Q(host), " of ",
             Q(target));
  FUZZ_CHECK(Printable(host), "host ", Q(host), " of ", Q(target), " is not printable ASCII");
  FUZZ_CHECK(host == absl::AsciiStrToLower(host) && !HasUpper(host), "host ", Q(host), " of ",
             Q(target), " is not lowercased");
  FUZZ_CHECK(host.find_first_of("/?#@%,") == std::string::npos, "host ", Q(host), " of ", Q(target),
             " has a separator");
  if (host.front() == '[') {
    FUZZ_CHECK(host.back() == ']', "host ", Q(host), " of ", Q(target));
  } else {
    FUZZ_CHECK(host.find_first_of(":[]") == std::string::npos, "host ", Q(host), " of ", Q(target));
  }
}

void CheckPort(int port, const std::string& target) {
  FUZZ_CHECK(port >= 1 && port <= 65535, "port ", port, " of ", Q(target));
}

// "host:port" of a GrpcTarget.
void SplitGrpcAuthority(const GrpcTarget& g, std::string* host, int* port) {
  size_t colon = g.authority.rfind(':');
  FUZZ_CHECK(colon != std::string::npos, "authority ", Q(g.authority), " without a port");
  *host = g.authority.substr(0, colon);
  std::string p = g.authority.substr(colon + 1);
  FUZZ_CHECK(absl::SimpleAtoi(p, port) && absl::StrCat(*port) == p, "port ", Q(p), " of authority ",
             Q(g.authority), " is not canonical");
}

std::string Normalised(const GrpcTarget& g) {
  return absl::StrCat(g.tls ? "grpcs://" : g.balanced ? "dns:///" : "", g.authority, g.method);
}

std::string Normalised(const HttpTarget& h) {
  return absl::StrCat(h.https ? "https://" : "http://", h.host, ":", h.port, h.path);
}

void CheckGrpc(const std::string& target, const GrpcTarget& g) {
  FUZZ_CHECK(!IsHttpTarget(target), "an HTTP URL parsed as gRPC: ", Q(target));
  FUZZ_CHECK(target.size() <= kMaxTargetLength, "a target of ", target.size(), " characters");
  FUZZ_CHECK(Printable(target), "accepted gRPC target ", Q(target), " is not printable ASCII");
  std::string host;
  int port = 0;
  SplitGrpcAuthority(g, &host, &port);
  CheckHost(host, target);
  CheckPort(port, target);
  // "/package.Service/Method": two slashes, non-empty parts, [A-Za-z0-9_.] otherwise.
  FUZZ_CHECK(g.method.size() >= 4 && g.method[0] == '/' && g.method.back() != '/', "method ",
             Q(g.method), " of ", Q(target));
  size_t second = g.method.find('/', 1);
  FUZZ_CHECK(second != std::string::npos && second > 1 &&
                 g.method.find('/', second + 1) == std::string::npos,
             "method ", Q(g.method), " of ", Q(target));
  for (char c : g.method) {
    FUZZ_CHECK(
        absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_',
        "method ", Q(g.method), " of ", Q(target));
  }
  FUZZ_CHECK(!(g.tls && g.balanced), "both grpcs:// and dns:///: ", Q(target));
  FUZZ_CHECK(g.ChannelTarget() == (g.balanced ? "dns:///" + g.authority : g.authority),
             "ChannelTarget ", Q(g.ChannelTarget()));
  FUZZ_CHECK(g.ChannelKey() == (g.tls ? "grpcs://" + g.ChannelTarget() : g.ChannelTarget()),
             "ChannelKey ", Q(g.ChannelKey()));
  // The normalised spelling is a fixed point, and so is its grpc:// spelling (without TLS).
  const std::string scheme = g.tls ? "grpcs://" : g.balanced ? "dns:///" : "grpc://";
  for (const std::string& again : {Normalised(g), absl::StrCat(scheme, g.authority, g.method)}) {
    if (again.size() > kMaxTargetLength) continue;  // "grpc://" spelled out may not fit
    absl::StatusOr<GrpcTarget> g2 = ParseGrpcTarget(again, "t");
    FUZZ_CHECK(g2.ok(), "normalised ", Q(again), " of ", Q(target),
               " does not parse: ", g2.status().ToString());
    FUZZ_CHECK(g2->authority == g.authority && g2->method == g.method &&
                   g2->balanced == g.balanced && g2->tls == g.tls,
               "normalised ", Q(again), " of ", Q(target), " parses differently");
    FUZZ_CHECK(ValidateTarget(again, "t").ok(), "ValidateTarget refuses ", Q(again));
  }
}

void CheckHttp(const std::string& target, const HttpTarget& h) {
  FUZZ_CHECK(IsHttpTarget(target), "not an HTTP URL, parsed as one: ", Q(target));
  FUZZ_CHECK(target.size() <= kMaxTargetLength, "a target of ", target.size(), " characters");
  FUZZ_CHECK(Printable(target), "accepted URL ", Q(target), " is not printable ASCII");
  CheckHost(h.host, target);
  CheckPort(h.port, target);
  FUZZ_CHECK(!h.path.empty() && h.path[0] == '/', "path ", Q(h.path), " of ", Q(target));
  FUZZ_CHECK(h.path.find('#') == std::string::npos && Printable(h.path), "path ", Q(h.path), " of ",
             Q(target));
  const std::string again = Normalised(h);
  if (again.size() > kMaxTargetLength) return;  // ":80" spelled out may not fit
  absl::StatusOr<HttpTarget> h2 = ParseHttpTarget(again, "t");
  FUZZ_CHECK(h2.ok(), "normalised ", Q(again), " of ", Q(target),
             " does not parse: ", h2.status().ToString());
  FUZZ_CHECK(h2->https == h.https && h2->host == h.host && h2->port == h.port && h2->path == h.path,
             "normalised ", Q(again), " of ", Q(target), " parses differently: host ", Q(h2->host),
             " port ", h2->port, " path ", Q(h2->path));
  FUZZ_CHECK(ValidateTarget(again, "t").ok(), "ValidateTarget refuses ", Q(again));
}

// Parses `target` as either kind; the host and port of a valid one.
bool ParseEither(const std::string& target, std::string* host, int* port, std::string* normalised) {
  const bool http = IsHttpTarget(target);
  absl::StatusOr<GrpcTarget> g = ParseGrpcTarget(target, "target");
  absl::StatusOr<HttpTarget> h = ParseHttpTarget(target, "target");
  absl::Status v = ValidateTarget(target, "target");
  Note("ValidateTarget", v);
  FUZZ_CHECK(v.ok() == (http ? h.ok() : g.ok()), "ValidateTarget says ", v.ToString(), " for ",
             Q(target));
  FUZZ_CHECK(!(g.ok() && h.ok()), "both a gRPC target and a URL: ", Q(target));
  for (const absl::Status& st : {g.status(), h.status(), v}) {
    FUZZ_CHECK(st.ok() || st.code() == absl::StatusCode::kInvalidArgument, "refusal ",
               st.ToString(), " of ", Q(target), " is not INVALID_ARGUMENT");
  }
  if (g.ok()) {
    CheckGrpc(target, *g);
    SplitGrpcAuthority(*g, host, port);
    *normalised = Normalised(*g);
    return true;
  }
  if (h.ok()) {
    CheckHttp(target, *h);
    *host = h->host;
    *port = h->port;
    *normalised = Normalised(*h);
    return true;
  }
  return false;
}

void CheckQuote(const std::string& s) {
  const std::string q = QuoteForError(s);
  for (char c : q) FUZZ_CHECK(c >= ' ' && c <= '~', "QuoteForError(", Q(s), ") has a control");
  FUZZ_CHECK(q.size() <= 4 * 100 + 3, "QuoteForError gives ", q.size(), " characters");
  if (s.size() <= 100) {
    std::string back;
    FUZZ_CHECK(absl::CUnescape(q, &back) && back == s, "QuoteForError(", Q(s),
               ") does not unescape to it");
  }
}

void CheckAllowList(const std::string& list, const std::string& target) {
  absl::StatusOr<AllowedTargets> allowed = AllowedTargets::Parse(list);
  Note("AllowedTargets::Parse", allowed.status());
  if (!allowed.ok()) {
    FUZZ_CHECK(allowed.status().code() == absl::StatusCode::kInvalidArgument,
               "AllowedTargets::Parse(", Q(list), "): ", allowed.status().ToString());
    return;
  }
  absl::StatusOr<AllowedTargets> twice = AllowedTargets::Parse(absl::StrCat(list, ",", list));
  FUZZ_CHECK(twice.ok(), "list ", Q(list),
             " parses, twice it does not: ", twice.status().ToString());
  std::string host, normalised;
  int port = 0;
  if (!ParseEither(target, &host, &port, &normalised)) return;
  absl::Status st = allowed->Check(target, "target");
  FUZZ_CHECK(st.ok() || st.code() == absl::StatusCode::kPermissionDenied, "Check(", Q(target),
             ") against ", Q(list), ": ", st.ToString());
  FUZZ_CHECK(st.ok() == allowed->Allows(host, port), "Check and Allows disagree on ", Q(target),
             " against ", Q(list));
  FUZZ_CHECK(st.ok() == twice->Check(target, "target").ok(), "list ", Q(list),
             " and itself twice disagree on ", Q(target));
  if (normalised.size() <= kMaxTargetLength) {
    FUZZ_CHECK(st.ok() == allowed->Check(normalised, "target").ok(), "list ", Q(list), " judges ",
               Q(target), " and its normalised ", Q(normalised), " differently");
  }
  const std::string entry = absl::StrCat(host, ":", port);
  absl::StatusOr<AllowedTargets> more = AllowedTargets::Parse(absl::StrCat(list, ",", entry));
  FUZZ_CHECK(more.ok(), "list ", Q(list), " with the entry ", Q(entry),
             " does not parse: ", more.status().ToString());
  FUZZ_CHECK(more->Check(target, "target").ok(), "list ", Q(list), " with the entry ", Q(entry),
             " does not allow ", Q(target));
  absl::StatusOr<AllowedTargets> only = AllowedTargets::Parse(entry);
  FUZZ_CHECK(only.ok() && only->Allows(host, port), "the list ", Q(entry), " alone does not allow ",
             Q(target));
}

}  // namespace
}  // namespace fuzz
}  // namespace dtm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  dtm::fuzz::CheckQuote(s);
  std::string host, normalised;
  int port = 0;
  dtm::fuzz::ParseEither(s, &host, &port, &normalised);
  const size_t newline = s.find('\n');
  if (newline == std::string::npos) {
    absl::StatusOr<dtm::AllowedTargets> allowed = dtm::AllowedTargets::Parse(s);
    (void)allowed;
  } else {
    dtm::fuzz::CheckAllowList(s.substr(0, newline), s.substr(newline + 1));
  }
  return 0;
}
