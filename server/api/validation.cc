#include "server/api/validation.h"

#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/convert.h"
#include "server/branch/target.h"
#include "storage/status_macros.h"

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

absl::Status ValidateTarget(const std::string& target, const std::string& field) {
  if (target.empty()) return absl::OkStatus();  // no-op step
  return ParseGrpcTarget(target, field).status();
}

// Rejects `after` lists with out-of-range indexes, self references or cycles.
absl::Status ValidateAfter(const v1::SubmitRequest& req) {
  int n = req.steps_size();
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < req.steps(i).after_size(); ++j) {
      int a = req.steps(i).after(j);
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
    for (int a : req.steps(i).after()) {
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

absl::StatusOr<Transaction> SubmitToTransaction(const v1::SubmitRequest& req,
                                                const ApiLimits& limits) {
  RETURN_IF_ERROR(ValidateGid(req.gid()));
  switch (req.trans_type()) {
    case v1::SAGA:
      break;
    case v1::TCC:
    case v1::MSG:
      return absl::UnimplementedError(absl::StrCat(
          "trans_type ", v1::TransType_Name(req.trans_type()), " is not implemented yet"));
    default:
      return Invalid("trans_type", absl::StrCat(static_cast<int>(req.trans_type())),
                     "is not SAGA, TCC or MSG");
  }
  if (req.steps_size() == 0) {
    return absl::InvalidArgumentError("steps is empty: a saga needs at least one step");
  }
  if (req.steps_size() > limits.max_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps has ", req.steps_size(), " steps, more than ", limits.max_steps));
  }
  if (!req.query_prepared().empty()) {
    return Invalid("query_prepared", req.query_prepared(), "is only for MSG transactions");
  }
  Transaction t;
  t.gid = req.gid();
  t.trans_type = TransType::kSaga;
  t.status = GlobalStatus::kSubmitted;
  const v1::TransOptions& o = req.options();
  TransOptions& opts = t.options;
  opts.wait_result = o.wait_result();
  RETURN_IF_ERROR(ReadDuration(o, o.has_timeout_to_fail(), o.timeout_to_fail(), "timeout_to_fail",
                               &opts.timeout_to_fail));
  RETURN_IF_ERROR(ReadDuration(o, o.has_retry_interval(), o.retry_interval(), "retry_interval",
                               &opts.retry_interval));
  RETURN_IF_ERROR(ReadDuration(o, o.has_max_retry_interval(), o.max_retry_interval(),
                               "max_retry_interval", &opts.max_retry_interval));
  RETURN_IF_ERROR(ReadDuration(o, o.has_request_timeout(), o.request_timeout(), "request_timeout",
                               &opts.request_timeout));
  if (opts.max_retry_interval < opts.retry_interval) opts.max_retry_interval = opts.retry_interval;
  if (o.retry_limit() < 0) {
    return Invalid("options.retry_limit", absl::StrCat(o.retry_limit()), "is negative");
  }
  opts.retry_limit = o.retry_limit();
  RETURN_IF_ERROR(ValidateHeaders(o.branch_headers()));
  opts.branch_headers.insert(o.branch_headers().begin(), o.branch_headers().end());
  opts.concurrent = o.concurrent();
  RETURN_IF_ERROR(ValidateAfter(req));

  for (int i = 0; i < req.steps_size(); ++i) {
    const v1::Step& s = req.steps(i);
    std::string prefix = absl::StrCat("steps[", i, "].");
    RETURN_IF_ERROR(ValidateTarget(s.action(), prefix + "action"));
    RETURN_IF_ERROR(ValidateTarget(s.compensate(), prefix + "compensate"));
    if (s.payload().size() > limits.max_payload_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(prefix, "payload is ", s.payload().size(), " bytes, more than the limit of ",
                       limits.max_payload_bytes, " (--max-payload-bytes)"));
    }
    Branch action;
    action.branch_id = SagaBranchId(i);
    action.op = BranchOp::kAction;
    action.target = s.action();
    action.payload = s.payload();
    action.after.assign(s.after().begin(), s.after().end());
    Branch compensate;
    compensate.branch_id = action.branch_id;
    compensate.op = BranchOp::kCompensate;
    compensate.target = s.compensate();
    compensate.payload = s.payload();
    t.branches.push_back(std::move(action));
    t.branches.push_back(std::move(compensate));
  }
  return t;
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
