#include "server/api/dtmgimp/dtmgimp_convert.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/common/status_macros.h"

namespace dtm {
namespace {

constexpr char kWorkflow[] = "workflow";

absl::Status Workflow() {
  return absl::UnimplementedError(
      "TransType 'workflow': dtmd does not run DTM's workflow transactions; use saga, tcc, msg "
      "or xa");
}

absl::Status ReadGid(const std::string& gid) {
  if (gid.empty()) return absl::InvalidArgumentError("Gid is missing: get one from NewGid");
  return ValidateGid(gid, "Gid");
}

// One of DTM's durations, whole seconds: 0 keeps `*out`.
absl::Status ReadSeconds(int64_t seconds, const char* name, absl::Duration* out) {
  const std::string field = absl::StrCat("TransOptions.", name);
  if (seconds < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " '", seconds, "' is negative"));
  }
  if (seconds > absl::ToInt64Seconds(kMaxOptionDuration)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", seconds, "' is above the maximum of ",
                     absl::ToInt64Seconds(kMaxOptionDuration), " seconds"));
  }
  if (seconds > 0) *out = absl::Seconds(seconds);
  return absl::OkStatus();
}

absl::Status ReadOptions(const dtmgimp::DtmTransOptions& in, TransOptions& o,
                         const ApiLimits& limits) {
  o.wait_result = in.waitresult();
  RETURN_IF_ERROR(ReadSeconds(in.timeouttofail(), "TimeoutToFail", &o.timeout_to_fail));
  RETURN_IF_ERROR(ReadSeconds(in.retryinterval(), "RetryInterval", &o.retry_interval));
  RETURN_IF_ERROR(ReadSeconds(in.requesttimeout(), "RequestTimeout", &o.request_timeout));
  if (in.retrylimit() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TransOptions.RetryLimit '", in.retrylimit(), "' is negative"));
  }
  o.retry_limit = static_cast<int32_t>(std::min<int64_t>(in.retrylimit(), INT32_MAX));
  // gRPC metadata keys are lowercase (grpc-go lowercases them too, where DTM sends them).
  for (const auto& [k, v] : in.branchheaders()) {
    if (!o.branch_headers.emplace(absl::AsciiStrToLower(k), v).second) {
      // Header names are case-insensitive: keeping one of the values would drop the other.
      return absl::InvalidArgumentError(absl::StrCat("TransOptions.BranchHeaders key '",
                                                     absl::CHexEscape(k),
                                                     "' is given twice, in two cases"));
    }
  }
  return CheckBranchHeaders(o.branch_headers, "TransOptions.BranchHeaders", limits);
}

}  // namespace

const DtmFieldNames& DtmgimpNames() {
  static const DtmFieldNames* names = new DtmFieldNames{
      "Gid",
      "TransType",
      "TransOptions.",
      "Steps",
      "QueryPrepared",
      StepFields{[](int i) { return absl::StrCat("Steps[", i, "]"); },
                 [](int i) { return absl::StrCat("BinPayloads[", i, "]"); }},
      "BranchID",
      "BusiPayload",
      [](absl::string_view key) { return absl::StrCat("Data['", key, "']"); },
  };
  return *names;
}

absl::StatusOr<Transaction> DtmRequestToTransaction(const dtmgimp::DtmRequest& req, DtmRoute route,
                                                    const ApiLimits& limits) {
  Transaction t;
  t.gid = req.gid();
  RETURN_IF_ERROR(ReadGid(t.gid));
  t.rollback_reason = req.rollbackreason();
  RETURN_IF_ERROR(CheckReason(t.rollback_reason, "RollbackReason"));
  if (route == DtmRoute::kForceStop) return t;  // DTM's gRPC API has none; as the HTTP face
  if (req.transtype() == kWorkflow) return Workflow();
  ASSIGN_OR_RETURN(t.trans_type, CheckDtmTransType(req.transtype(), "TransType"));
  const TransType type = t.trans_type;
  RETURN_IF_ERROR(CheckDtmRoute(type, route));
  if (route == DtmRoute::kAbort) return t;
  t.options = DefaultOptions(type, limits);
  // DTM's Go SDK always sends TransOptions; others may leave it out: the defaults.
  if (req.has_transoptions()) RETURN_IF_ERROR(ReadOptions(req.transoptions(), t.options, limits));
  t.query_prepared = req.queryprepared();
  ASSIGN_OR_RETURN(std::vector<StepSpec> steps, ParseDtmSteps(req.steps(), "Steps"));
  if (req.binpayloads_size() != static_cast<int>(steps.size())) {
    return absl::InvalidArgumentError(absl::StrCat("BinPayloads has ", req.binpayloads_size(),
                                                   " entries for ", steps.size(),
                                                   " steps: give one payload per step"));
  }
  // DTM's gRPC server takes payloads from BinPayloads only, never from a step's "data".
  for (size_t i = 0; i < steps.size(); ++i) steps[i].payload = req.binpayloads(static_cast<int>(i));
  RETURN_IF_ERROR(ApplyDtmCustomData(req.customeddata(), "CustomedData", type, steps, t.options));
  return FinishDtmTransaction(std::move(t), steps, route, DtmgimpNames(), limits);
}

absl::StatusOr<BranchRegistration> DtmBranchRequestToRegistration(
    const dtmgimp::DtmBranchRequest& req, const ApiLimits& limits) {
  BranchRegistration r;
  r.gid = req.gid();
  RETURN_IF_ERROR(ReadGid(r.gid));
  if (req.transtype() == kWorkflow) return Workflow();
  ASSIGN_OR_RETURN(TransType type, CheckDtmTransType(req.transtype(), "TransType"));
  if (!HasRegisteredBranches(type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TransType '", req.transtype(), "' has no branches that register themselves: tcc or xa"));
  }
  r.branch_id = req.branchid();
  auto data = [&](const char* key) {
    auto it = req.data().find(key);
    return it == req.data().end() ? std::string() : it->second;
  };
  r.confirm = data("confirm");
  r.cancel = data("cancel");
  r.payload = req.busipayload();
  return FinishDtmRegistration(std::move(r), req.transtype(), data("url"), DtmgimpNames(), limits);
}

absl::Status ToDtmgimpStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
      return absl::AbortedError(s.message());
    default:
      return s;
  }
}

}  // namespace dtm
