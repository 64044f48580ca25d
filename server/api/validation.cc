#include "server/api/validation.h"

#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/common/status_macros.h"
#include "client/common/target.h"
#include "server/api/convert.h"

namespace dtm {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", value, "' ", why));
}

bool GidChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
         c == '-';
}

// Reads an optional Duration: unset keeps `*out` (the default), negative is an error.
absl::Status ReadDuration(const v1::TransOptions& o, bool has, const google::protobuf::Duration& d,
                          const char* field, absl::Duration* out) {
  if (!has) return absl::OkStatus();
  if (d.seconds() < 0 || d.nanos() < 0) {
    return Invalid(absl::StrCat("options.", field),
                   absl::StrCat(d.seconds(), "s ", d.nanos(), "ns"), "is negative");
  }
  if (d.nanos() >= 1000000000 || d.seconds() > 315576000000) {
    return Invalid(absl::StrCat("options.", field),
                   absl::StrCat(d.seconds(), "s ", d.nanos(), "ns"), "is not a valid Duration");
  }
  absl::Duration v = FromProto(d);
  if (v > absl::ZeroDuration()) *out = v;
  return absl::OkStatus();
}

absl::Status ValidateHeaders(const google::protobuf::Map<std::string, std::string>& headers) {
  for (const auto& [k, v] : headers) {
    std::string field = absl::StrCat("options.branch_headers['", k, "']");
    if (k.empty()) return Invalid("options.branch_headers key", k, "is empty");
    for (char c : k) {
      if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
            absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
            c == '.')) {
        return Invalid("options.branch_headers key", k,
                       "is not a gRPC metadata key (lowercase letters, digits, - _ .)");
      }
    }
    if (absl::StartsWith(k, "grpc-") || absl::StartsWith(k, "dtm-") || absl::EndsWith(k, "-bin")) {
      return Invalid("options.branch_headers key", k,
                     "is reserved (grpc-*, dtm-*) or binary (*-bin)");
    }
    for (char c : v) {
      if (c < 0x20 || c > 0x7e) return Invalid(field, v, "has a non-printable character");
    }
  }
  return absl::OkStatus();
}

// A step's target: empty (a no-op that succeeds), a gRPC method or an HTTP URL.
absl::Status CheckTarget(const std::string& target, const std::string& field) {
  if (target.empty()) return absl::OkStatus();
  return ValidateTarget(target, field);
}

// Rejects `after` lists with out-of-range indexes, self references or cycles.
absl::Status ValidateAfter(const google::protobuf::RepeatedPtrField<v1::Step>& steps) {
  int n = steps.size();
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < steps[i].after_size(); ++j) {
      int a = steps[i].after(j);
      std::string field = absl::StrCat("steps[", i, "].after[", j, "]");
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
    for (int a : steps[i].after()) {
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
    if (c >= 0) {
      return Invalid(absl::StrCat("steps[", c, "].after"), "", "forms a dependency cycle");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateGid(const std::string& gid, const char* field) {
  if (gid.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  if (gid.size() > kMaxGidLength) {
    return Invalid(field, gid.substr(0, 40) + "...",
                   absl::StrCat("is ", gid.size(), " characters, more than ", kMaxGidLength));
  }
  for (char c : gid) {
    if (!GidChar(c)) {
      return Invalid(field, gid, "has a character outside [A-Za-z0-9_.:-]");
    }
  }
  return absl::OkStatus();
}

namespace {

enum class Phase { kSubmit, kPrepare };

absl::Status CheckTransType(v1::TransType type) {
  if (type == v1::SAGA || type == v1::TCC || type == v1::MSG) return absl::OkStatus();
  return Invalid("trans_type", absl::StrCat(static_cast<int>(type)), "is not SAGA, TCC or MSG");
}

absl::StatusOr<TransOptions> ReadOptions(const v1::TransOptions& o, TransType type,
                                         const ApiLimits& limits) {
  TransOptions opts;
  if (type != TransType::kSaga) opts.timeout_to_fail = limits.default_timeout_to_fail;
  opts.wait_result = o.wait_result();
  RETURN_IF_ERROR(ReadDuration(o, o.has_timeout_to_fail(), o.timeout_to_fail(), "timeout_to_fail",
                               &opts.timeout_to_fail));
  RETURN_IF_ERROR(ReadDuration(o, o.has_retry_interval(), o.retry_interval(), "retry_interval",
                               &opts.retry_interval));
  RETURN_IF_ERROR(ReadDuration(o, o.has_max_retry_interval(), o.max_retry_interval(),
                               "max_retry_interval", &opts.max_retry_interval));
  RETURN_IF_ERROR(ReadDuration(o, o.has_request_timeout(), o.request_timeout(), "request_timeout",
                               &opts.request_timeout));
  RETURN_IF_ERROR(ReadDuration(o, o.has_delay(), o.delay(), "delay", &opts.delay));
  if (opts.delay > absl::ZeroDuration() && type != TransType::kMsg) {
    return Invalid("options.delay", absl::FormatDuration(opts.delay), "is only for MSG");
  }
  if (opts.max_retry_interval < opts.retry_interval) opts.max_retry_interval = opts.retry_interval;
  if (o.retry_limit() < 0) {
    return Invalid("options.retry_limit", absl::StrCat(o.retry_limit()), "is negative");
  }
  opts.retry_limit = o.retry_limit();
  RETURN_IF_ERROR(ValidateHeaders(o.branch_headers()));
  opts.branch_headers.insert(o.branch_headers().begin(), o.branch_headers().end());
  opts.concurrent = o.concurrent();
  return opts;
}

absl::Status CheckPayload(const std::string& payload, const std::string& field,
                          const ApiLimits& limits) {
  if (payload.size() <= limits.max_payload_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(field, " is ", payload.size(), " bytes, more than the limit of ",
                   limits.max_payload_bytes, " (--max_payload_bytes)"));
}

// The branches of a saga (action + compensation per step) or a msg (one action per step).
absl::StatusOr<std::vector<Branch>> ReadSteps(
    const google::protobuf::RepeatedPtrField<v1::Step>& steps, TransType type,
    const ApiLimits& limits) {
  if (steps.size() > limits.max_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps has ", steps.size(), " steps, more than ", limits.max_steps));
  }
  if (type == TransType::kSaga) RETURN_IF_ERROR(ValidateAfter(steps));
  std::vector<Branch> out;
  for (int i = 0; i < steps.size(); ++i) {
    const v1::Step& s = steps[i];
    std::string prefix = absl::StrCat("steps[", i, "].");
    RETURN_IF_ERROR(CheckTarget(s.action(), prefix + "action"));
    RETURN_IF_ERROR(CheckTarget(s.compensate(), prefix + "compensate"));
    RETURN_IF_ERROR(CheckPayload(s.payload(), prefix + "payload", limits));
    if (type == TransType::kMsg && !s.compensate().empty()) {
      return Invalid(prefix + "compensate", s.compensate(),
                     "is set, but a msg has no compensation: it is delivered until it succeeds");
    }
    if (type == TransType::kMsg && s.after_size() > 0) {
      return Invalid(prefix + "after", absl::StrCat(s.after(0)),
                     "is set, but a msg runs in order, or all at once when options.concurrent");
    }
    Branch action;
    action.branch_id = SagaBranchId(i);
    action.op = BranchOp::kAction;
    action.target = s.action();
    action.payload = s.payload();
    action.after.assign(s.after().begin(), s.after().end());
    out.push_back(std::move(action));
    if (type != TransType::kSaga) continue;
    Branch compensate;
    compensate.branch_id = out.back().branch_id;
    compensate.op = BranchOp::kCompensate;
    compensate.target = s.compensate();
    compensate.payload = s.payload();
    out.push_back(std::move(compensate));
  }
  return out;
}

// Submit and Prepare carry the same fields.
template <typename Request>
absl::StatusOr<Transaction> ToTransaction(const Request& req, const ApiLimits& limits,
                                          Phase phase) {
  RETURN_IF_ERROR(ValidateGid(req.gid()));
  RETURN_IF_ERROR(CheckTransType(req.trans_type()));
  const auto type = static_cast<TransType>(req.trans_type());
  const char* rpc = phase == Phase::kSubmit ? "Submit" : "Prepare";
  if (type == TransType::kSaga && phase == Phase::kPrepare) {
    return absl::FailedPreconditionError(
        "Prepare is for TCC and MSG; a SAGA is submitted whole with Submit");
  }
  if (type == TransType::kSaga && req.steps_size() == 0) {
    return absl::InvalidArgumentError("steps is empty: a saga needs at least one step");
  }
  if (type == TransType::kTcc && req.steps_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps has ", req.steps_size(), " steps, but a TCC ", rpc,
                     " takes none: its branches are registered with RegisterBranch"));
  }
  if (type == TransType::kMsg && phase == Phase::kPrepare && req.steps_size() == 0) {
    return absl::InvalidArgumentError("steps is empty: a msg needs at least one step");
  }
  if (type != TransType::kMsg && !req.query_prepared().empty()) {
    return Invalid("query_prepared", req.query_prepared(), "is only for MSG transactions");
  }
  if (type == TransType::kMsg && phase == Phase::kPrepare && req.query_prepared().empty()) {
    return absl::InvalidArgumentError(
        "query_prepared is empty: a prepared msg needs a back-check target "
        "(host:port/package.Service/Method) that says whether its local transaction committed");
  }
  RETURN_IF_ERROR(CheckTarget(req.query_prepared(), "query_prepared"));
  Transaction t;
  t.gid = req.gid();
  t.trans_type = type;
  t.status = phase == Phase::kPrepare ? GlobalStatus::kPrepared : GlobalStatus::kSubmitted;
  t.query_prepared = req.query_prepared();
  ASSIGN_OR_RETURN(t.options, ReadOptions(req.options(), type, limits));
  ASSIGN_OR_RETURN(t.branches, ReadSteps(req.steps(), type, limits));
  return t;
}

}  // namespace

absl::StatusOr<Transaction> SubmitToTransaction(const v1::SubmitRequest& req,
                                                const ApiLimits& limits) {
  return ToTransaction(req, limits, Phase::kSubmit);
}

absl::StatusOr<Transaction> PrepareToTransaction(const v1::PrepareRequest& req,
                                                 const ApiLimits& limits) {
  return ToTransaction(req, limits, Phase::kPrepare);
}

absl::Status ValidateAbort(const v1::AbortRequest& req) {
  RETURN_IF_ERROR(ValidateGid(req.gid()));
  RETURN_IF_ERROR(CheckTransType(req.trans_type()));
  if (req.trans_type() == v1::SAGA) {
    return absl::FailedPreconditionError(
        "Abort is for a PREPARED TCC or MSG; a SAGA rolls back on its own when an action fails "
        "(use ForceStop to end one without compensation)");
  }
  if (req.reason().size() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("reason is ", req.reason().size(), " characters, more than 1024"));
  }
  return absl::OkStatus();
}

absl::StatusOr<BranchRegistration> ReadRegistration(const v1::RegisterBranchRequest& req,
                                                    const ApiLimits& limits) {
  RETURN_IF_ERROR(ValidateGid(req.gid()));
  RETURN_IF_ERROR(CheckTransType(req.trans_type()));
  if (req.trans_type() != v1::TCC) {
    return absl::FailedPreconditionError(
        absl::StrCat("RegisterBranch is for TCC, not ", v1::TransType_Name(req.trans_type())));
  }
  if (req.branch_id().empty()) return absl::InvalidArgumentError("branch_id is empty");
  if (req.branch_id().size() > 64) {
    return Invalid("branch_id", req.branch_id().substr(0, 40) + "...",
                   absl::StrCat("is ", req.branch_id().size(), " characters, more than 64"));
  }
  for (char c : req.branch_id()) {
    if (!GidChar(c))
      return Invalid("branch_id", req.branch_id(), "has a character outside [A-Za-z0-9_.:-]");
  }
  RETURN_IF_ERROR(CheckTarget(req.confirm(), "confirm"));
  RETURN_IF_ERROR(CheckTarget(req.cancel(), "cancel"));
  RETURN_IF_ERROR(CheckPayload(req.payload(), "payload", limits));
  BranchRegistration op;
  op.gid = req.gid();
  op.branch_id = req.branch_id();
  op.confirm = req.confirm();
  op.cancel = req.cancel();
  op.payload = req.payload();
  return op;
}

absl::StatusOr<ListQuery> ListToQuery(const v1::ListRequest& req, const ApiLimits& limits) {
  ListQuery q;
  if (req.page_size() < 0 || req.page_size() > limits.max_page_size) {
    return Invalid("page_size", absl::StrCat(req.page_size()),
                   absl::StrCat("is outside [0, ", limits.max_page_size, "]"));
  }
  if (req.page_size() > 0) q.page_size = req.page_size();
  q.page_token = req.page_token();
  if (!v1::Status_IsValid(req.status())) {
    return Invalid("status", absl::StrCat(static_cast<int>(req.status())), "is not a Status");
  }
  q.status = static_cast<GlobalStatus>(req.status());
  if (!v1::TransType_IsValid(req.trans_type())) {
    return Invalid("trans_type", absl::StrCat(static_cast<int>(req.trans_type())),
                   "is not a TransType");
  }
  q.trans_type = static_cast<TransType>(req.trans_type());
  if (req.gid_prefix().size() > kMaxGidLength) {
    return Invalid("gid_prefix", req.gid_prefix().substr(0, 40), "is longer than a gid");
  }
  q.gid_prefix = req.gid_prefix();
  if (req.has_created_after()) q.created_after = FromProto(req.created_after());
  if (req.has_created_before()) q.created_before = FromProto(req.created_before());
  return q;
}

}  // namespace dtm
