#include "client/xa.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/branch_call.h"
#include "client/two_phase.h"

namespace dtm {

Xa::Xa(CoordinatorClient* client, std::string gid, const v1::TransOptions& options)
    : client_(client),
      gid_(std::move(gid)),
      wait_result_(options.wait_result()),
      timeout_(two_phase::BranchCallTimeout(options)) {}

absl::StatusOr<Xa> Xa::Begin(CoordinatorClient* client, const std::string& gid,
                             const v1::TransOptions& options) {
  absl::Status prepared = two_phase::Prepare(client, gid, v1::XA, options);
  if (!prepared.ok()) return prepared;
  return Xa(client, gid, options);
}

absl::StatusOr<v1::SubmitResponse> Xa::Submit() {
  return two_phase::Submit(client_, gid_, v1::XA, wait_result_);
}

absl::Status Xa::Abort(const std::string& reason) {
  return two_phase::Abort(client_, gid_, v1::XA, reason);
}

absl::StatusOr<v1::SubmitResponse> Xa::Run(CoordinatorClient* client, const std::string& gid,
                                           const Body& body, const v1::TransOptions& options) {
  absl::StatusOr<Xa> xa = Begin(client, gid, options);
  if (!xa.ok()) return xa.status();
  return two_phase::RunThenDecide(client, gid, v1::XA, options.wait_result(),
                                  [&] { return body(*xa); });
}

std::string Xa::NextBranchId() const { return absl::StrFormat("%02d", next_); }

absl::Status Xa::CallBranch(const std::string& payload, const std::string& target,
                            std::string* response) {
  const std::string id = NextBranchId();
  ++next_;
  // dtm-dtm tells the branch which coordinator the client uses; dtm-phase2_url is the target
  // it registers for phase 2: itself.
  return CallTarget(target, payload,
                    {{"dtm-gid", gid_},
                     {"dtm-trans_type", "xa"},
                     {"dtm-branch_id", id},
                     {"dtm-op", "action"},
                     {"dtm-dtm", client_->address()},
                     {"dtm-phase2_url", target}},
                    timeout_, response);
}

absl::Status Xa::CallBranch(const google::protobuf::Message& request, const std::string& target,
                            google::protobuf::Message* response) {
  std::string out;
  absl::Status s = CallBranch(request.SerializeAsString(), target, &out);
  if (s.ok() && response != nullptr && !response->ParseFromString(out)) {
    return absl::DataLossError(absl::StrCat(
        "the xa branch ", target, " answered bytes that are not a ", response->GetTypeName()));
  }
  return s;
}

}  // namespace dtm
