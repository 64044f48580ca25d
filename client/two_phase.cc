#include "client/two_phase.h"

#include <google/protobuf/util/time_util.h>

#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace dtm {
namespace two_phase {

absl::Duration BranchCallTimeout(const v1::TransOptions& options) {
  using google::protobuf::util::TimeUtil;
  return options.has_request_timeout()
             ? absl::Nanoseconds(TimeUtil::DurationToNanoseconds(options.request_timeout()))
             : absl::Seconds(3);
}

absl::Status Prepare(CoordinatorClient* client, const std::string& gid, v1::TransType type,
                     const v1::TransOptions& options) {
  v1::PrepareRequest prepare;
  prepare.set_gid(gid);
  prepare.set_trans_type(type);
  *prepare.mutable_options() = options;
  return client->Prepare(prepare);
}

absl::StatusOr<v1::SubmitResponse> Submit(CoordinatorClient* client, const std::string& gid,
                                          v1::TransType type, bool wait_result) {
  v1::SubmitRequest submit;
  submit.set_gid(gid);
  submit.set_trans_type(type);
  submit.mutable_options()->set_wait_result(wait_result);
  return CommitAnswer(client->Submit(submit));
}

absl::Status Abort(CoordinatorClient* client, const std::string& gid, v1::TransType type,
                   const std::string& reason) {
  v1::AbortRequest abort;
  abort.set_gid(gid);
  abort.set_trans_type(type);
  abort.set_reason(reason);
  return client->Abort(abort).status();
}

absl::StatusOr<v1::SubmitResponse> RunThenDecide(CoordinatorClient* client, const std::string& gid,
                                                 v1::TransType type, bool wait_result,
                                                 const std::function<absl::Status()>& body) {
  const std::string name = absl::AsciiStrToLower(v1::TransType_Name(type));
  absl::Status result;
  try {
    result = body();
  } catch (const std::exception& e) {
    Abort(client, gid, type, absl::StrCat("the client's ", name, " body threw: ", e.what()))
        .IgnoreError();
    throw;
  } catch (...) {
    Abort(client, gid, type, absl::StrCat("the client's ", name, " body threw")).IgnoreError();
    throw;
  }
  if (result.ok()) return Submit(client, gid, type, wait_result);
  absl::Status aborted = Abort(client, gid, type, std::string(result.message()));
  if (aborted.ok()) return result;
  // Its branches stay registered (an xa's prepared, holding their locks) until the
  // coordinator's timeout_to_fail aborts it: say so rather than hide it.
  return absl::Status(result.code(), absl::StrCat(result.message(),
                                                  " (and Abort failed: ", aborted.ToString(), ")"));
}

}  // namespace two_phase
}  // namespace dtm
