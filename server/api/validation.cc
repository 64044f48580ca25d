#include "server/api/validation.h"

#include "absl/strings/str_cat.h"
#include "client/common/status_macros.h"
#include "server/api/convert.h"

namespace dtm {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", value, "' ", why));
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

}  // namespace

namespace {

enum class Phase { kSubmit, kPrepare };

absl::Status CheckTransType(v1::TransType type) {
  if (type == v1::SAGA || type == v1::TCC || type == v1::MSG || type == v1::XA) {
    return absl::OkStatus();
  }
  return Invalid("trans_type", absl::StrCat(static_cast<int>(type)), "is not SAGA, TCC, MSG or XA");
}

absl::StatusOr<TransOptions> ReadOptions(const v1::TransOptions& o, TransType type,
                                         const ApiLimits& limits) {
  TransOptions opts = DefaultOptions(type, limits);
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
  opts.retry_limit = o.retry_limit();
  opts.branch_headers.insert(o.branch_headers().begin(), o.branch_headers().end());
  opts.concurrent = o.concurrent();
  RETURN_IF_ERROR(FinishOptions(type, "options.", opts, limits));
  // The stores keep microseconds: a finer duration is rounded up (after the checks, whose
  // messages quote what the client sent), so that no positive one is stored as 0, which
  // means "the default" or "none" to whoever reads it back.
  for (absl::Duration* d : {&opts.timeout_to_fail, &opts.retry_interval, &opts.max_retry_interval,
                            &opts.request_timeout, &opts.delay}) {
    *d = absl::Ceil(*d, absl::Microseconds(1));
  }
  return opts;
}

// The branches of a saga (action + compensation per step) or a msg (one action per step).
absl::StatusOr<std::vector<Branch>> ReadSteps(
    const google::protobuf::RepeatedPtrField<v1::Step>& steps, TransType type,
    const ApiLimits& limits) {
  std::vector<StepSpec> specs;
  specs.reserve(steps.size());
  for (const v1::Step& s : steps) {
    specs.push_back(StepSpec{s.action(), s.compensate(), s.payload(),
                             std::vector<int32_t>(s.after().begin(), s.after().end())});
  }
  StepFields fields{[](int i) { return absl::StrCat("steps[", i, "]"); },
                    [](int i) { return absl::StrCat("steps[", i, "].payload"); }};
  return BuildBranches(specs, type, limits, fields);
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
        "Prepare is for TCC, XA and MSG; a SAGA is submitted whole with Submit");
  }
  if (type == TransType::kSaga && req.steps_size() == 0) {
    return absl::InvalidArgumentError("steps is empty: a saga needs at least one step");
  }
  if (HasRegisteredBranches(type) && req.steps_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "steps has ", req.steps_size(), " steps, but a ", v1::TransType_Name(req.trans_type()), " ",
        rpc, " takes none: its branches are registered with RegisterBranch"));
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
  RETURN_IF_ERROR(CheckTarget(req.query_prepared(), "query_prepared", limits));
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
        "Abort is for a PREPARED TCC, XA or MSG; a SAGA rolls back on its own when an action fails "
        "(use ForceStop to end one without compensation)");
  }
  return CheckReason(req.reason(), "reason");
}

absl::StatusOr<BranchRegistration> ReadRegistration(const v1::RegisterBranchRequest& req,
                                                    const ApiLimits& limits) {
  RETURN_IF_ERROR(ValidateGid(req.gid()));
  RETURN_IF_ERROR(CheckTransType(req.trans_type()));
  const auto type = static_cast<TransType>(req.trans_type());
  if (!HasRegisteredBranches(type)) {
    return absl::FailedPreconditionError(absl::StrCat("RegisterBranch is for TCC and XA, not ",
                                                      v1::TransType_Name(req.trans_type())));
  }
  RETURN_IF_ERROR(ValidateBranchId(req.branch_id()));
  BranchRegistration op;
  op.gid = req.gid();
  op.trans_type = type;
  op.branch_id = req.branch_id();
  if (type == TransType::kXa) {
    // One target takes both phase-2 ops; confirm and cancel are a tcc's.
    for (const auto& [field, value] :
         {std::pair<const char*, const std::string*>{"confirm", &req.confirm()},
          {"cancel", &req.cancel()}}) {
      if (!value->empty()) {
        return Invalid(field, *value,
                       "is for a TCC branch; an XA branch gives phase2_target, which is called "
                       "with op commit or rollback");
      }
    }
    if (req.phase2_target().empty()) {
      return absl::InvalidArgumentError(
          "phase2_target is empty: an XA branch names the target that commits or rolls back "
          "its prepared local transaction");
    }
    RETURN_IF_ERROR(CheckTarget(req.phase2_target(), "phase2_target", limits));
    op.confirm = op.cancel = req.phase2_target();
  } else {
    if (!req.phase2_target().empty()) {
      return Invalid("phase2_target", req.phase2_target(),
                     "is for an XA branch; a TCC branch gives confirm and cancel");
    }
    RETURN_IF_ERROR(CheckTarget(req.confirm(), "confirm", limits));
    RETURN_IF_ERROR(CheckTarget(req.cancel(), "cancel", limits));
    op.confirm = req.confirm();
    op.cancel = req.cancel();
  }
  RETURN_IF_ERROR(CheckPayload(req.payload(), "payload", limits));
  op.payload = req.payload();
  ApplyRegistrationLimits(op, limits);
  return op;
}

absl::StatusOr<ListQuery> ListToQuery(const v1::ListRequest& req, const ApiLimits& limits) {
  ListQuery q;
  q.max_bytes = limits.max_list_bytes;
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
  // google.protobuf.Timestamp's own range: years 1 to 9999, nanos in [0, 1e9).
  auto timestamp = [](const google::protobuf::Timestamp& t, const char* field,
                      absl::Time* out) -> absl::Status {
    if (t.seconds() < -62135596800 || t.seconds() > 253402300799 || t.nanos() < 0 ||
        t.nanos() > 999999999) {
      return Invalid(field, absl::StrCat(t.seconds(), "s ", t.nanos(), "ns"),
                     "is not a valid Timestamp (years 1 to 9999, nanos in [0, 1e9))");
    }
    *out = FromProto(t);
    return absl::OkStatus();
  };
  if (req.has_created_after()) {
    RETURN_IF_ERROR(timestamp(req.created_after(), "created_after", &q.created_after));
  }
  if (req.has_created_before()) {
    RETURN_IF_ERROR(timestamp(req.created_before(), "created_before", &q.created_before));
  }
  return q;
}

}  // namespace dtm
