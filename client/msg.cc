#include "client/msg.h"

#include "absl/strings/str_cat.h"

namespace dtm {

Msg::Msg(CoordinatorClient* client, std::string gid) : client_(client), gid_(std::move(gid)) {}

Msg& Msg::Add(const std::string& action, std::string payload) {
  v1::Step* s = steps_.Add();
  s->set_action(action);
  s->set_payload(std::move(payload));
  return *this;
}

Msg& Msg::Add(const std::string& action, const google::protobuf::Message& payload) {
  return Add(action, payload.SerializeAsString());
}

absl::Status Msg::Prepare(const std::string& query_prepared) {
  query_prepared_ = query_prepared;
  v1::PrepareRequest req;
  req.set_gid(gid_);
  req.set_trans_type(v1::MSG);
  *req.mutable_steps() = steps_;
  *req.mutable_options() = options_;
  req.set_query_prepared(query_prepared);
  return client_->Prepare(req);
}

absl::StatusOr<v1::SubmitResponse> Msg::Submit() {
  v1::SubmitRequest req;
  req.set_gid(gid_);
  req.set_trans_type(v1::MSG);
  *req.mutable_steps() = steps_;
  *req.mutable_options() = options_;
  req.set_query_prepared(query_prepared_);
  return client_->Submit(req);
}

absl::Status Msg::Abort(const std::string& reason) {
  v1::AbortRequest req;
  req.set_gid(gid_);
  req.set_trans_type(v1::MSG);
  req.set_reason(reason);
  return client_->Abort(req).status();
}

absl::StatusOr<v1::SubmitResponse> Msg::DoAndSubmit(const std::string& query_prepared,
                                                    const std::function<absl::Status()>& local) {
  absl::Status prepared = Prepare(query_prepared);
  if (!prepared.ok()) return prepared;
  absl::Status done = local();
  if (absl::IsAborted(done)) {
    absl::Status aborted = Abort(std::string(done.message()));
    if (!aborted.ok()) {
      return absl::Status(
          done.code(),
          absl::StrCat(done.message(), " (and Abort failed: ", aborted.ToString(), ")"));
    }
    return done;
  }
  if (!done.ok()) return done;  // unknown: the back-check decides
  return Submit();
}

}  // namespace dtm
