#include "server/model/trace_context.h"

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace dtm {

namespace {

// Lower-case hex of exactly `n` characters, not all zeros (when `nonzero`).
bool Hex(absl::string_view s, size_t n, bool nonzero) {
  if (s.size() != n) return false;
  bool any = false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    any |= c != '0';
  }
  return any || !nonzero;
}

uint64_t NonZeroRandom(absl::BitGen& gen) {
  uint64_t v = 0;
  while (v == 0) v = absl::Uniform<uint64_t>(gen);
  return v;
}

}  // namespace

bool ValidTraceParent(absl::string_view traceparent) {
  absl::string_view tp = traceparent;
  // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55 characters.
  if (tp.size() < 55) return false;
  absl::string_view version = tp.substr(0, 2);
  if (!Hex(version, 2, false) || version == "ff") return false;
  if (tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return false;
  if (!Hex(tp.substr(3, 32), 32, true) || !Hex(tp.substr(36, 16), 16, true) ||
      !Hex(tp.substr(53, 2), 2, false)) {
    return false;
  }
  if (version == "00") return tp.size() == 55;
  return tp.size() == 55 || tp[55] == '-';  // a later version may append fields
}

bool ValidTraceState(absl::string_view tracestate) {
  if (tracestate.size() > 512) return false;
  for (char c : tracestate) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::string TraceIdOf(absl::string_view traceparent) {
  return ValidTraceParent(traceparent) ? std::string(traceparent.substr(3, 32)) : std::string();
}

std::string ChildTraceParent(absl::string_view parent) {
  absl::BitGen gen;
  uint64_t span = NonZeroRandom(gen);
  if (ValidTraceParent(parent)) {
    return absl::StrFormat("00-%s-%016x-%s", parent.substr(3, 32), span, parent.substr(53, 2));
  }
  return absl::StrFormat("00-%016x%016x-%016x-01", absl::Uniform<uint64_t>(gen), NonZeroRandom(gen),
                         span);
}

TraceContext AdoptTraceContext(absl::string_view traceparent, absl::string_view tracestate,
                               std::map<std::string, std::string>& branch_headers) {
  TraceContext out;
  auto take = [&branch_headers](const char* key) {
    std::string v;
    auto it = branch_headers.find(key);
    if (it != branch_headers.end()) {
      v = std::move(it->second);
      branch_headers.erase(it);
    }
    return v;
  };
  std::string header_tp = take("traceparent");
  std::string header_ts = take("tracestate");
  if (ValidTraceParent(traceparent)) {
    out.traceparent = std::string(traceparent);
    if (ValidTraceState(tracestate)) out.tracestate = std::string(tracestate);
  } else if (ValidTraceParent(header_tp)) {
    out.traceparent = std::move(header_tp);
    if (ValidTraceState(header_ts)) out.tracestate = std::move(header_ts);
  } else {
    out.traceparent = ChildTraceParent("");  // a trace of the transaction's own
  }
  return out;
}

}  // namespace dtm
