#include "server/api/convert.h"

namespace dtm {

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return;
  timespec ts = absl::ToTimespec(t);
  out->set_seconds(ts.tv_sec);
  out->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  int64_t secs = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(secs);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(const TransOptions& o, v1::TransOptions* out) {
  out->set_wait_result(o.wait_result);
  ToProto(o.timeout_to_fail, out->mutable_timeout_to_fail());
  ToProto(o.retry_interval, out->mutable_retry_interval());
  ToProto(o.max_retry_interval, out->mutable_max_retry_interval());
  ToProto(o.request_timeout, out->mutable_request_timeout());
  out->set_retry_limit(o.retry_limit);
  for (const auto& [k, v] : o.branch_headers) (*out->mutable_branch_headers())[k] = v;
  out->set_concurrent(o.concurrent);
  if (o.delay > absl::ZeroDuration()) ToProto(o.delay, out->mutable_delay());
}

void ToProto(const Transaction& t, v1::Transaction* out) {
  out->set_gid(t.gid);
  out->set_trans_type(static_cast<v1::TransType>(t.trans_type));
  out->set_status(static_cast<v1::Status>(t.status));
  ToProto(t.options, out->mutable_options());
  ToProto(t.create_time, out->mutable_create_time());
  ToProto(t.update_time, out->mutable_update_time());
  if (t.finish_time != absl::InfinitePast()) ToProto(t.finish_time, out->mutable_finish_time());
  if (t.next_retry_time != absl::InfinitePast() && !IsTerminal(t.status)) {
    ToProto(t.next_retry_time, out->mutable_next_retry_time());
  }
  out->set_rollback_reason(t.rollback_reason);
  out->set_query_prepared(t.query_prepared);
  out->set_creator(t.creator);
  for (const Branch& b : t.branches) {
    v1::Branch* pb = out->add_branches();
    pb->set_branch_id(b.branch_id);
    pb->set_op(static_cast<v1::BranchOp>(b.op));
    pb->set_target(b.target);
    pb->set_status(static_cast<v1::BranchStatus>(b.status));
    pb->set_attempts(b.attempts);
    pb->set_last_error(b.last_error);
    if (b.finish_time != absl::InfinitePast()) ToProto(b.finish_time, pb->mutable_finish_time());
  }
}

}  // namespace dtm
