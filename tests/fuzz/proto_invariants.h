// What must hold of an accepted transaction on the dtm.v1 side: ToProto (what Query and List
// answer) gives valid google.protobuf Durations that read back as the same options and a
// message a client can parse back, and the transaction read back as a request is accepted
// again as the same transaction. Used by fuzz_validation (gRPC's own answers) and by
// fuzz_dtm_json (a transaction that came in as DTM's JSON is queried over gRPC too, and both
// faces hold transactions to the same rules).
#ifndef DTM_TESTS_FUZZ_PROTO_INVARIANTS_H_
#define DTM_TESTS_FUZZ_PROTO_INVARIANTS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "dtm/v1/coordinator.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/api/common/checks.h"
#include "server/api/convert.h"
#include "server/api/validation.h"
#include "server/model/transaction.h"
#include "tests/fuzz/fuzz_check.h"

namespace dtm {
namespace fuzz {

// google.protobuf.Duration's own range (duration.proto): +-10000 years, nanos of the same sign.
inline constexpr int64_t kMaxProtoDurationSeconds = 315576000000;

inline void CheckProtoDuration(const google::protobuf::Duration& pb, absl::Duration want,
                               const char* field) {
  FUZZ_CHECK(
      pb.seconds() >= -kMaxProtoDurationSeconds && pb.seconds() <= kMaxProtoDurationSeconds &&
          pb.nanos() > -1000000000 && pb.nanos() < 1000000000 &&
          !((pb.seconds() > 0 && pb.nanos() < 0) || (pb.seconds() < 0 && pb.nanos() > 0)),
      "ToProto(", field, " = ", absl::FormatDuration(want),
      ") is not a valid google.protobuf.Duration: seconds ", pb.seconds(), " nanos ", pb.nanos());
  FUZZ_CHECK(FromProto(pb) == want, "ToProto(", field, " = ", absl::FormatDuration(want),
             ") reads back as ", absl::FormatDuration(FromProto(pb)));
}

// ToProto of an accepted (new) transaction: what Query answers for it.
inline void CheckToProto(const Transaction& t) {
  v1::Transaction pb;
  ToProto(t, &pb);
  FUZZ_CHECK(pb.gid() == t.gid, "ToProto gid ", Q(pb.gid()), " for ", Q(t.gid));
  FUZZ_CHECK(static_cast<int>(pb.trans_type()) == static_cast<int>(t.trans_type) &&
                 static_cast<int>(pb.status()) == static_cast<int>(t.status),
             "ToProto trans_type/status");
  FUZZ_CHECK(pb.query_prepared() == t.query_prepared, "ToProto query_prepared");
  FUZZ_CHECK(pb.branches_size() == static_cast<int>(t.branches.size()), "ToProto gives ",
             pb.branches_size(), " branches of ", t.branches.size());
  for (int i = 0; i < pb.branches_size(); ++i) {
    const Branch& b = t.branches[static_cast<size_t>(i)];
    FUZZ_CHECK(pb.branches(i).target() == b.target && pb.branches(i).branch_id() == b.branch_id &&
                   static_cast<int>(pb.branches(i).op()) == static_cast<int>(b.op),
               "ToProto branches[", i, "]");
  }
  const TransOptions& o = t.options;
  const v1::TransOptions& po = pb.options();
  CheckProtoDuration(po.timeout_to_fail(), o.timeout_to_fail, "timeout_to_fail");
  CheckProtoDuration(po.retry_interval(), o.retry_interval, "retry_interval");
  CheckProtoDuration(po.max_retry_interval(), o.max_retry_interval, "max_retry_interval");
  CheckProtoDuration(po.request_timeout(), o.request_timeout, "request_timeout");
  CheckProtoDuration(po.delay(), o.delay, "delay");
  FUZZ_CHECK(po.retry_limit() == o.retry_limit && po.concurrent() == o.concurrent &&
                 po.wait_result() == o.wait_result,
             "ToProto options");
  FUZZ_CHECK(static_cast<size_t>(po.branch_headers_size()) == o.branch_headers.size(),
             "ToProto branch_headers");
  for (const auto& [k, v] : o.branch_headers) {
    auto it = po.branch_headers().find(k);
    FUZZ_CHECK(it != po.branch_headers().end() && it->second == v, "ToProto branch_headers[", Q(k),
               "]");
  }
  // What dtmd sends, a client parses back (proto3 strings must be UTF-8) to the same message.
  std::string bytes;
  FUZZ_CHECK(pb.SerializeToString(&bytes), "v1::Transaction does not serialize");
  v1::Transaction back;
  FUZZ_CHECK(back.ParseFromString(bytes), "v1::Transaction of ", bytes.size(),
             " bytes does not parse back");
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(pb, back),
             "v1::Transaction parses back different: ", back.ShortDebugString());
}

// The request a client would send for `t`: Submit or Prepare with its steps and options.
template <typename Request>
Request RequestFor(const Transaction& t) {
  Request req;
  req.set_gid(t.gid);
  req.set_trans_type(static_cast<v1::TransType>(t.trans_type));
  req.set_query_prepared(t.query_prepared);
  ToProto(t.options, req.mutable_options());
  const size_t per_step = t.trans_type == TransType::kSaga ? 2 : 1;
  for (size_t i = 0; i < t.branches.size(); i += per_step) {
    v1::Step* s = req.add_steps();
    s->set_action(t.branches[i].target);
    if (per_step == 2) s->set_compensate(t.branches[i + 1].target);
    s->set_payload(t.branches[i].payload);
    for (int32_t a : t.branches[i].after) s->add_after(a);
  }
  return req;
}

// `t`, accepted by a face as a new transaction, sent again as a dtm.v1 request: accepted as
// the same transaction (rollback_reason aside: Submit and Prepare carry none).
inline void CheckAcceptedAgain(const Transaction& t, bool prepare, const ApiLimits& limits,
                               const char* face) {
  absl::StatusOr<Transaction> again =
      prepare ? PrepareToTransaction(RequestFor<v1::PrepareRequest>(t), limits)
              : SubmitToTransaction(RequestFor<v1::SubmitRequest>(t), limits);
  FUZZ_CHECK(again.ok(), "a ", TransTypeName(t.trans_type), " ", face,
             " accepted is refused by dtm.v1 ", prepare ? "Prepare" : "Submit", ": ",
             again.status().ToString());
  Transaction want = t;
  want.rollback_reason.clear();
  FUZZ_CHECK(*again == want, "a ", TransTypeName(t.trans_type), " ", face,
             " accepted reads back different through dtm.v1 ", prepare ? "Prepare" : "Submit");
}

}  // namespace fuzz
}  // namespace dtm

#endif  // DTM_TESTS_FUZZ_PROTO_INVARIANTS_H_
