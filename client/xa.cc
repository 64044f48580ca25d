#include "client/xa.h"

#include <google/protobuf/util/time_util.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/branch_call.h"

namespace dtm {
namespace {

// The coordinator's default for a branch call, when the options name none.
absl::Duration CallTimeout(const v1::TransOptions& o) {
  using google::protobuf::util::TimeUtil;
  return o.has_request_timeout()
             ? absl::Nanoseconds(TimeUtil::DurationToNanoseconds(o.request_timeout()))
             : absl::Seconds(3);
}

}  // namespace

Xa::Xa(CoordinatorClient* client, std::string gid, const v1::TransOptions& options)
    : client_(client),
      gid_(std::move(gid)),
      wait_result_(options.wait_result()),
      timeout_(CallTimeout(options)) {}

absl::StatusOr<Xa> Xa::Begin(CoordinatorClient* client, const std::string& gid,
                             const v1::TransOptions& options) {
  v1::PrepareRequest prepare;
  prepare.set_gid(gid);
  prepare.set_trans_type(v1::XA);
  *prepare.mutable_options() = options;
  absl::Status prepared = client->Prepare(prepare);
  if (!prepared.ok()) return prepared;
  return Xa(client, gid, options);
}

absl::StatusOr<v1::SubmitResponse> Xa::Submit() {
  v1::SubmitRequest submit;
  submit.set_gid(gid_);
  submit.set_trans_type(v1::XA);
  submit.mutable_options()->set_wait_result(wait_result_);
  return CommitAnswer(client_->Submit(submit));
}

absl::Status Xa::Abort(const std::string& reason) {
  v1::AbortRequest abort;
  abort.set_gid(gid_);
  abort.set_trans_type(v1::XA);
  abort.set_reason(reason);
  return client_->Abort(abort).status();
}

absl::StatusOr<v1::SubmitResponse> Xa::Run(CoordinatorClient* client, const std::string& gid,
                                           const Body& body, const v1::TransOptions& options) {
  absl::StatusOr<Xa> xa = Begin(client, gid, options);
  if (!xa.ok()) return xa.status();
  absl::Status result;
  try {
    result = body(*xa);
  } catch (const std::exception& e) {
    xa->Abort(absl::StrCat("the client's xa body threw: ", e.what())).IgnoreError();
    throw;
  } catch (...) {
    xa->Abort("the client's xa body threw").IgnoreError();
    throw;
  }
  if (result.ok()) return xa->Submit();
  absl::Status aborted = xa->Abort(std::string(result.message()));
  if (aborted.ok()) return result;
  // The prepared branches keep their row locks until the coordinator's timeout_to_fail
  // aborts the transaction: say so rather than hide it.
  return absl::Status(result.code(), absl::StrCat(result.message(),
                                                  " (and Abort failed: ", aborted.ToString(), ")"));
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
