#include "client/tcc.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/branch.h"
#include "client/branch_call.h"
#include "client/two_phase.h"

namespace dtm {

Tcc::Tcc(CoordinatorClient* client, std::string gid, std::string parent, std::string coordinator,
         absl::Duration try_timeout)
    : client_(client),
      gid_(std::move(gid)),
      parent_(std::move(parent)),
      coordinator_(std::move(coordinator)),
      try_timeout_(try_timeout) {}

absl::StatusOr<v1::SubmitResponse> Tcc::Run(CoordinatorClient* client, const std::string& gid,
                                            const Body& body, const v1::TransOptions& options) {
  absl::Status prepared = two_phase::Prepare(client, gid, v1::TCC, options);
  if (!prepared.ok()) return prepared;
  Tcc tcc(client, gid, "", client->address(), two_phase::BranchCallTimeout(options));
  return two_phase::RunThenDecide(client, gid, v1::TCC, options.wait_result(),
                                  [&] { return body(tcc); });
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
