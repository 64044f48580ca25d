#include "server/api/common/allowed_targets.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/common/target.h"

namespace dtm {
namespace {

// An IP literal ("10.1.2.3", "::1", "[::1]") as 16 bytes, IPv4 mapped into IPv6.
bool ParseIp(absl::string_view text, std::array<uint8_t, 16>* out) {
  std::string s(text);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out->fill(0);
    (*out)[10] = 0xff;
    (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, &v4, 4);
    return true;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out->data(), &v6, 16);
    return true;
  }
  return false;
}

bool SamePrefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits) {
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<AllowedTargets> AllowedTargets::Parse(const std::string& list) {
  AllowedTargets out;
  for (absl::string_view raw : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    absl::string_view e = absl::StripAsciiWhitespace(raw);
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("--allowed_targets entry '", e, "' ", why));
    };
    Entry entry;
    absl::string_view host = e;
    // A trailing ":port", unless the colon belongs to a bare IPv6 address.
    size_t colon = e.rfind(':');
    bool bare_v6 = e.find(':') != colon && e.front() != '[';
    if (colon != absl::string_view::npos && !bare_v6 &&
        e.find(']', colon) == absl::string_view::npos) {
      if (!absl::SimpleAtoi(e.substr(colon + 1), &entry.port) || entry.port < 1 ||
          entry.port > 65535) {
        return bad("has a port outside 1..65535");
      }
      host = e.substr(0, colon);
    }
    size_t slash = host.find('/');
    if (slash != absl::string_view::npos) {
      entry.kind = Entry::Kind::kNetwork;
      int max_bits = 128;
      if (!ParseIp(host.substr(0, slash), &entry.ip) ||
          !absl::SimpleAtoi(host.substr(slash + 1), &entry.prefix_bits)) {
        return bad("is not a network address/bits");
      }
      if (host.find(':') == absl::string_view::npos) max_bits = 32;
      if (entry.prefix_bits < 0 || entry.prefix_bits > max_bits) {
        return bad(absl::StrCat("has a prefix length outside 0..", max_bits));
      }
      entry.prefix_bits += 128 - max_bits;  // IPv4: bits count from the mapped part
    } else if (ParseIp(host, &entry.ip)) {
      entry.kind = Entry::Kind::kNetwork;
      entry.prefix_bits = 128;
    } else if (absl::ConsumePrefix(&host, "*.")) {
      entry.kind = Entry::Kind::kSuffix;
      entry.name = absl::StrCat(".", absl::AsciiStrToLower(host));
      if (host.empty()) return bad("has no name after '*.'");
    } else {
      entry.name = absl::AsciiStrToLower(host);
      if (entry.name.empty() || entry.name.find('*') != std::string::npos) {
        return bad("is not a host, *.suffix or network");
      }
    }
    out.entries_.push_back(std::move(entry));
  }
  if (out.entries_.empty()) return absl::InvalidArgumentError("--allowed_targets is empty");
  return out;
}

bool AllowedTargets::Allows(const std::string& host, int port) const {
  std::array<uint8_t, 16> ip{};
  const bool is_ip = ParseIp(host, &ip);
  for (const Entry& e : entries_) {
    if (e.port != 0 && e.port != port) continue;
    switch (e.kind) {
      case Entry::Kind::kName:
        if (host == e.name) return true;
        break;
      case Entry::Kind::kSuffix:
        if (!is_ip && absl::EndsWith(host, e.name)) return true;
        break;
      case Entry::Kind::kNetwork:
        if (is_ip && SamePrefix(ip, e.ip, e.prefix_bits)) return true;
        break;
    }
  }
  return false;
}

absl::Status AllowedTargets::Check(const std::string& target, const std::string& field) const {
  std::string host;
  int port = 0;
  if (IsHttpTarget(target)) {
    absl::StatusOr<HttpTarget> t = ParseHttpTarget(target, field);
    if (!t.ok()) return t.status();
    host = t->host;
    port = t->port;
  } else {
    absl::StatusOr<GrpcTarget> t = ParseGrpcTarget(target, field);
    if (!t.ok()) return t.status();
    size_t colon = t->authority.rfind(':');
    host = t->authority.substr(0, colon);
    if (!absl::SimpleAtoi(t->authority.substr(colon + 1), &port)) port = 0;
  }
  if (Allows(host, port)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(field, " '", QuoteForError(target), "': host ",
                                                  host, " port ", port,
                                                  " is not in dtmd's --allowed_targets"));
}

}  // namespace dtm
