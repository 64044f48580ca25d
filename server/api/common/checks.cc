#include "server/api/common/checks.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/common/status_macros.h"
#include "client/common/target.h"

namespace dtm {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", value, "' ", why));
}

bool IdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
         c == '-';
}

absl::Status CheckId(const std::string& id, const char* field, size_t max) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  if (id.size() > max) {
    return Invalid(field, absl::CHexEscape(id.substr(0, 40)) + "...",
                   absl::StrCat("is ", id.size(), " characters, more than ", max));
  }
  for (char c : id) {
    // Escaped: a client's control characters must not reach a terminal or a log as they are.
    if (!IdChar(c)) {
      return Invalid(field, absl::CHexEscape(id), "has a character outside [A-Za-z0-9_.:-]");
    }
  }
  return absl::OkStatus();
}

// Rejects `after` lists with out-of-range indexes, self references or cycles.
absl::Status CheckAfter(const std::vector<StepSpec>& steps, const StepFields& fields) {
  const int n = static_cast<int>(steps.size());
  for (int i = 0; i < n; ++i) {
    for (size_t j = 0; j < steps[i].after.size(); ++j) {
      int a = steps[i].after[j];
      std::string field = absl::StrCat(fields.step(i), ".after[", j, "]");
      if (a < 0 || a >= n) {
        return Invalid(field, absl::StrCat(a), absl::StrCat("is out of range [0, ", n, ")"));
      }
      if (a == i) return Invalid(field, absl::StrCat(a), "refers to its own step");
    }
  }
  // Depth-first search for a cycle: 0 unvisited, 1 on the stack, 2 done.
  std::vector<int> state(n, 0);
  std::function<int(int)> visit = [&](int i) -> int {
    state[i] = 1;
    for (int a : steps[i].after) {
      if (state[a] == 1) return i;
      if (state[a] == 0) {
        int c = visit(a);
        if (c >= 0) return c;
      }
    }
    state[i] = 2;
    return -1;
  };
  for (int i = 0; i < n; ++i) {
    if (state[i] != 0) continue;
    int c = visit(i);
    if (c >= 0)
      return Invalid(absl::StrCat(fields.step(c), ".after"), "", "forms a dependency cycle");
  }
  return absl::OkStatus();
}

// Headers that say how the request dtmd sends is framed, where it goes or what its connection
// does. dtmd writes them itself; a second value from a client would make the request
// ambiguous (a Content-Length beside a chunked body is how requests are smuggled past a
// proxy), and HTTP/2, gRPC's transport, forbids the connection-specific ones outright.
bool FramesTheCall(const std::string& key) {
  static const char* const kKeys[] = {"connection",
                                      "content-encoding",
                                      "content-length",
                                      "content-type",
                                      "expect",
                                      "host",
                                      "keep-alive",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade"};
  for (const char* k : kKeys) {
    if (key == k) return true;
  }
  return false;
}

}  // namespace

std::string NewGid() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%x%016x", absl::ToUnixMicros(absl::Now()), absl::Uniform<uint64_t>(gen));
}

absl::Status ValidateGid(const std::string& gid, const char* field) {
  return CheckId(gid, field, kMaxGidLength);
}

absl::Status ValidateBranchId(const std::string& id, const char* field) {
  return CheckId(id, field, kMaxBranchIdLength);
}

absl::Status CheckTarget(const std::string& target, const std::string& field,
                         const ApiLimits& limits) {
  if (target.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(ValidateTarget(target, field));
  if (limits.allowed_targets == nullptr) return absl::OkStatus();
  return limits.allowed_targets->Check(target, field);
}

absl::Status CheckPayload(const std::string& payload, const std::string& field,
                          const ApiLimits& limits) {
  if (payload.size() <= limits.max_payload_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(field, " is ", payload.size(), " bytes, more than the limit of ",
                   limits.max_payload_bytes, " (--max_payload_bytes)"));
}

absl::Status CheckBranchHeaders(const std::map<std::string, std::string>& headers,
                                const std::string& field, const ApiLimits& limits) {
  if (static_cast<int64_t>(headers.size()) > limits.max_headers) {
    return absl::ResourceExhaustedError(absl::StrCat(field, " has ", headers.size(),
                                                     " headers, more than the limit of ",
                                                     limits.max_headers, " (--max_headers)"));
  }
  size_t bytes = 0;
  for (const auto& [k, v] : headers) bytes += k.size() + v.size();
  if (bytes > limits.max_header_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, " is ", bytes, " bytes, more than the limit of ",
                     limits.max_header_bytes, " (--max_header_bytes)"));
  }
  for (const auto& [k, v] : headers) {
    if (k.empty()) return Invalid(absl::StrCat(field, " key"), k, "is empty");
    for (char c : k) {
      if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
            absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
            c == '.')) {
        return Invalid(absl::StrCat(field, " key"), k,
                       "is not a gRPC metadata key (lowercase letters, digits, - _ .)");
      }
    }
    if (absl::StartsWith(k, "grpc-") || absl::StartsWith(k, "dtm-") || absl::EndsWith(k, "-bin")) {
      return Invalid(absl::StrCat(field, " key"), k,
                     "is reserved (grpc-*, dtm-*) or binary (*-bin)");
    }
    if (FramesTheCall(k)) {
      return Invalid(absl::StrCat(field, " key"), k,
                     "is a header of the HTTP request itself (its framing, host or connection), "
                     "which dtmd sets");
    }
    for (char c : v) {
      if (c < 0x20 || c > 0x7e) {
        return Invalid(absl::StrCat(field, "['", k, "']"), v, "has a non-printable character");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAdmission(const Transaction* submitted, size_t active, const ApiLimits& limits) {
  if (active < limits.max_active_transactions) return absl::OkStatus();
  if (submitted != nullptr &&
      (HasRegisteredBranches(submitted->trans_type) ||
       (submitted->trans_type == TransType::kMsg && submitted->branches.empty()))) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "dtmd holds ", active, " transactions in progress, its bound (--max_active_transactions ",
      limits.max_active_transactions, "): submit again once some have finished"));
}

absl::Status CheckReason(const std::string& reason, const std::string& field) {
  if (reason.size() <= kMaxReasonLength) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", reason.size(), " characters, more than ", kMaxReasonLength));
}

absl::Status CheckDuration(absl::Duration d, const std::string& field) {
  if (d >= absl::ZeroDuration()) return absl::OkStatus();
  return Invalid(field, absl::FormatDuration(d), "is negative");
}

absl::StatusOr<std::vector<Branch>> BuildBranches(const std::vector<StepSpec>& steps,
                                                  TransType type, const ApiLimits& limits,
                                                  const StepFields& fields) {
  if (static_cast<int64_t>(steps.size()) > limits.max_steps) {
    return absl::ResourceExhaustedError(absl::StrCat("steps has ", steps.size(),
                                                     " steps, more than the limit of ",
                                                     limits.max_steps, " (--max_steps)"));
  }
  size_t bytes = 0;
  for (const StepSpec& s : steps) {
    // A saga stores the payload twice, with its action and with its compensation.
    bytes += s.action.size() + s.compensate.size() +
             (type == TransType::kSaga ? 2 : 1) * s.payload.size();
  }
  if (bytes > limits.max_transaction_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "steps add up to ", bytes, " bytes of targets and payloads, more than the limit of ",
        limits.max_transaction_bytes, " (--max_transaction_bytes)"));
  }
  if (type == TransType::kSaga) RETURN_IF_ERROR(CheckAfter(steps, fields));
  std::vector<Branch> out;
  out.reserve(type == TransType::kSaga ? 2 * steps.size() : steps.size());
  for (int i = 0; i < static_cast<int>(steps.size()); ++i) {
    const StepSpec& s = steps[i];
    std::string step = fields.step(i);
    RETURN_IF_ERROR(CheckTarget(s.action, step + ".action", limits));
    RETURN_IF_ERROR(CheckTarget(s.compensate, step + ".compensate", limits));
    RETURN_IF_ERROR(CheckPayload(s.payload, fields.payload(i), limits));
    if (type == TransType::kMsg && !s.compensate.empty()) {
      return Invalid(step + ".compensate", s.compensate,
                     "is set, but a msg has no compensation: it is delivered until it succeeds");
    }
    if (type == TransType::kMsg && !s.after.empty()) {
      return Invalid(step + ".after", absl::StrCat(s.after[0]),
                     "is set, but a msg runs in order, or all at once when concurrent");
    }
    Branch action;
    action.branch_id = SagaBranchId(i);
    action.op = BranchOp::kAction;
    action.target = s.action;
    action.payload = s.payload;
    action.after = s.after;
    out.push_back(std::move(action));
    if (type != TransType::kSaga) continue;
    Branch compensate;
    compensate.branch_id = out.back().branch_id;
    compensate.op = BranchOp::kCompensate;
    compensate.target = s.compensate;
    compensate.payload = s.payload;
    out.push_back(std::move(compensate));
  }
  return out;
}

TransOptions DefaultOptions(TransType type, const ApiLimits& limits) {
  TransOptions o;
  if (type != TransType::kSaga) o.timeout_to_fail = limits.default_timeout_to_fail;
  return o;
}

absl::Status FinishOptions(TransType type, const std::string& prefix, TransOptions& o,
                           const ApiLimits& limits) {
  auto at_least = [&](absl::Duration d, absl::Duration min, const char* name, const char* flag) {
    if (d >= min) return absl::OkStatus();
    return Invalid(
        absl::StrCat(prefix, name), absl::FormatDuration(d),
        absl::StrCat("is below the minimum of ", absl::FormatDuration(min), " (--", flag, ")"));
  };
  for (const auto& [name, d] :
       {std::pair<const char*, absl::Duration>{"timeout_to_fail", o.timeout_to_fail},
        {"retry_interval", o.retry_interval},
        {"max_retry_interval", o.max_retry_interval},
        {"request_timeout", o.request_timeout},
        {"delay", o.delay}}) {
    if (d > kMaxOptionDuration) {
      return Invalid(
          absl::StrCat(prefix, name), absl::FormatDuration(d),
          absl::StrCat("is above the maximum of ", absl::FormatDuration(kMaxOptionDuration)));
    }
  }
  RETURN_IF_ERROR(at_least(o.retry_interval, limits.min_retry_interval, "retry_interval",
                           "min_retry_interval"));
  RETURN_IF_ERROR(at_least(o.request_timeout, limits.min_request_timeout, "request_timeout",
                           "min_request_timeout"));
  if (o.delay > absl::ZeroDuration() && type != TransType::kMsg) {
    return Invalid(absl::StrCat(prefix, "delay"), absl::FormatDuration(o.delay), "is only for MSG");
  }
  if (o.retry_limit < 0) {
    return Invalid(absl::StrCat(prefix, "retry_limit"), absl::StrCat(o.retry_limit), "is negative");
  }
  RETURN_IF_ERROR(
      CheckBranchHeaders(o.branch_headers, absl::StrCat(prefix, "branch_headers"), limits));
  if (o.max_retry_interval < o.retry_interval) o.max_retry_interval = o.retry_interval;
  return absl::OkStatus();
}

void ApplyRegistrationLimits(BranchRegistration& r, const ApiLimits& limits) {
  r.max_registrations = limits.max_steps;
  r.max_transaction_bytes = static_cast<int64_t>(limits.max_transaction_bytes);
}

}  // namespace dtm
