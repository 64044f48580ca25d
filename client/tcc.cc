#include "client/tcc.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/branch.h"
#include "client/branch_call.h"

namespace dtm {
namespace {

absl::Duration TryTimeout(const v1::TransOptions& o) {
  if (!o.has_request_timeout()) return absl::Seconds(3);
  return absl::Seconds(o.request_timeout().seconds()) +
         absl::Nanoseconds(o.request_timeout().nanos());
}

}  // namespace

Tcc::Tcc(CoordinatorClient* client, std::string gid, std::string parent, std::string coordinator,
         absl::Duration try_timeout)
    : client_(client),
      gid_(std::move(gid)),
      parent_(std::move(parent)),
      coordinator_(std::move(coordinator)),
      try_timeout_(try_timeout) {}

absl::StatusOr<v1::SubmitResponse> Tcc::Run(CoordinatorClient* client, const std::string& gid,
                                            const Body& body, const v1::TransOptions& options) {
  v1::PrepareRequest prepare;
  prepare.set_gid(gid);
  prepare.set_trans_type(v1::TCC);
  *prepare.mutable_options() = options;
  absl::Status prepared = client->Prepare(prepare);
  if (!prepared.ok()) return prepared;

  Tcc tcc(client, gid, "", client->address(), TryTimeout(options));
  auto abort = [&](const std::string& reason) {
    v1::AbortRequest req;
    req.set_gid(gid);
    req.set_trans_type(v1::TCC);
    req.set_reason(reason);
    return client->Abort(req).status();
  };
  absl::Status result;
  try {
    result = body(tcc);
  } catch (const std::exception& e) {
    abort(absl::StrCat("the client's tcc body threw: ", e.what())).IgnoreError();
    throw;
  } catch (...) {
    abort("the client's tcc body threw").IgnoreError();
    throw;
  }
  if (!result.ok()) {
    absl::Status aborted = abort(std::string(result.message()));
    if (!aborted.ok()) {
      // The coordinator aborts it anyway once timeout_to_fail passes.
      return absl::Status(
          result.code(),
          absl::StrCat(result.message(), " (and Abort failed: ", aborted.ToString(), ")"));
    }
    return result;
  }
  v1::SubmitRequest submit;
  submit.set_gid(gid);
  submit.set_trans_type(v1::TCC);
  submit.mutable_options()->set_wait_result(options.wait_result());
  return CommitAnswer(client->Submit(submit));
}

absl::StatusOr<Tcc> Tcc::FromBranch(CoordinatorClient* client, const grpc::ServerContextBase& ctx) {
  return FromBranch(client, BranchContext::From(ctx));
}

absl::StatusOr<Tcc> Tcc::FromBranch(CoordinatorClient* client, const BranchContext& b) {
  if (b.trans_type != "tcc" || b.gid.empty() || b.branch_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "not a tcc branch call (dtm-trans_type '", b.trans_type, "', dtm-gid '", b.gid,
        "', dtm-branch_id '", b.branch_id, "'): a nested Tcc needs the caller's dtm-* metadata"));
  }
  return Tcc(client, b.gid, b.branch_id, b.dtm.empty() ? client->address() : b.dtm,
             absl::Seconds(3));
}

std::string Tcc::NextBranchId() const { return absl::StrFormat("%s%02d", parent_, next_); }

absl::Status Tcc::CallBranch(const std::string& payload, const std::string& try_target,
                             const std::string& confirm, const std::string& cancel,
                             std::string* response) {
  std::string id = NextBranchId();
  v1::RegisterBranchRequest reg;
  reg.set_gid(gid_);
  reg.set_trans_type(v1::TCC);
  reg.set_branch_id(id);
  reg.set_confirm(confirm);
  reg.set_cancel(cancel);
  reg.set_payload(payload);
  absl::Status registered = client_->RegisterBranch(reg);
  if (!registered.ok()) return registered;
  ++next_;
  return CallTarget(try_target, payload,
                    {{"dtm-gid", gid_},
                     {"dtm-trans_type", "tcc"},
                     {"dtm-branch_id", id},
                     {"dtm-op", "try"},
                     {"dtm-dtm", coordinator_}},
                    try_timeout_, response);
}

absl::Status Tcc::CallBranch(const google::protobuf::Message& request,
                             const std::string& try_target, const std::string& confirm,
                             const std::string& cancel, google::protobuf::Message* response) {
  std::string out;
  absl::Status s = CallBranch(request.SerializeAsString(), try_target, confirm, cancel, &out);
  if (s.ok() && response != nullptr && !response->ParseFromString(out)) {
    return absl::DataLossError(absl::StrCat(
        "the Try of ", try_target, " answered bytes that are not a ", response->GetTypeName()));
  }
  return s;
}

}  // namespace dtm
