// Fuzzes the validation of dtm.v1 requests (server/api/validation.h) with the default
// ApiLimits. The first byte picks the request (its value modulo 5: Submit, Prepare,
// RegisterBranch, List, Abort), the rest is that request's serialized protobuf, as gRPC would
// hand it to the service. What is accepted must keep every rule of
// tests/fuzz/transaction_invariants.h, convert to a valid v1::Transaction (what Query answers)
// and be accepted again, unchanged, when sent once more.
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "dtm/v1/coordinator.pb.h"
#include "server/api/common/checks.h"
#include "server/api/validation.h"
#include "server/model/list_query.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/proto_invariants.h"
#include "tests/fuzz/transaction_invariants.h"

namespace dtm {
namespace fuzz {
namespace {

absl::StatusOr<Transaction> ToTransaction(const v1::SubmitRequest& req) {
  return SubmitToTransaction(req, Limits());
}
absl::StatusOr<Transaction> ToTransaction(const v1::PrepareRequest& req) {
  return PrepareToTransaction(req, Limits());
}

template <typename Request>
void FuzzNewTransaction(const uint8_t* data, size_t size, bool prepare) {
  Request req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<Transaction> t = ToTransaction(req);
  Note(prepare ? "Prepare" : "Submit", t.status());
  if (!t.ok()) {
    FUZZ_CHECK(!t.status().message().empty(), "a refusal without a message");
    return;
  }
  CheckAcceptedTransaction(*t, prepare, Limits());
  // Accepted as given: the request's own fields, step by step.
  FUZZ_CHECK(t->gid == req.gid() && t->query_prepared == req.query_prepared(),
             "gid or query_prepared changed");
  const size_t per_step = t->trans_type == TransType::kSaga ? 2 : 1;
  FUZZ_CHECK(t->branches.size() == per_step * static_cast<size_t>(req.steps_size()),
             req.steps_size(), " steps became ", t->branches.size(), " branches");
  for (int i = 0; i < req.steps_size(); ++i) {
    const v1::Step& s = req.steps(i);
    const Branch& action = t->branches[per_step * static_cast<size_t>(i)];
    FUZZ_CHECK(action.target == s.action() && action.payload == s.payload() &&
                   action.after == std::vector<int32_t>(s.after().begin(), s.after().end()),
               "steps[", i, "] changed");
    if (per_step == 2) {
      FUZZ_CHECK(t->branches[2 * static_cast<size_t>(i) + 1].target == s.compensate(), "steps[", i,
                 "].compensate changed");
    }
  }
  FUZZ_CHECK(t->options.retry_limit == req.options().retry_limit(), "retry_limit changed");
  CheckToProto(*t);
  CheckAcceptedAgain(*t, prepare, Limits(), "Submit/Prepare");
}

void FuzzRegister(const uint8_t* data, size_t size) {
  v1::RegisterBranchRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<BranchRegistration> r = ReadRegistration(req, Limits());
  Note("RegisterBranch", r.status());
  if (!r.ok()) return;
  CheckAcceptedRegistration(*r, Limits());
  FUZZ_CHECK(req.trans_type() == v1::TCC || req.trans_type() == v1::XA,
             "RegisterBranch accepted for trans_type ", static_cast<int>(req.trans_type()));
  FUZZ_CHECK(static_cast<int>(r->trans_type) == req.trans_type(),
             "RegisterBranch changed the type");
  // An xa branch's one phase-2 target is both its commit and its rollback.
  const bool xa = req.trans_type() == v1::XA;
  FUZZ_CHECK(r->gid == req.gid() && r->branch_id == req.branch_id() &&
                 r->confirm == (xa ? req.phase2_target() : req.confirm()) &&
                 r->cancel == (xa ? req.phase2_target() : req.cancel()) &&
                 r->payload == req.payload(),
             "RegisterBranch changed a field");
  FUZZ_CHECK(xa ? req.confirm().empty() && req.cancel().empty() : req.phase2_target().empty(),
             "RegisterBranch accepted the other type's targets");
}

void FuzzList(const uint8_t* data, size_t size) {
  v1::ListRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<ListQuery> q = ListToQuery(req, Limits());
  Note("List", q.status());
  if (!q.ok()) return;
  FUZZ_CHECK(q->page_size >= 1 && q->page_size <= Limits().max_page_size, "page_size ",
             q->page_size, " from ", req.page_size());
  FUZZ_CHECK(req.page_size() == 0 || q->page_size == req.page_size(), "page_size changed");
  FUZZ_CHECK(q->max_bytes == Limits().max_list_bytes, "max_bytes ", q->max_bytes);
  FUZZ_CHECK(q->gid_prefix == req.gid_prefix() && q->gid_prefix.size() <= kMaxGidLength,
             "gid_prefix ", Q(q->gid_prefix));
  FUZZ_CHECK(q->page_token == req.page_token(), "page_token changed");
  FUZZ_CHECK(static_cast<int>(q->status) >= 0 && static_cast<int>(q->status) <= 5, "status ",
             static_cast<int>(q->status));
  FUZZ_CHECK(static_cast<int>(q->trans_type) >= 0 && static_cast<int>(q->trans_type) <= 4,
             "trans_type ", static_cast<int>(q->trans_type));
  FUZZ_CHECK(req.has_created_after() || q->created_after == absl::InfinitePast(),
             "created_after set from nothing");
  FUZZ_CHECK(req.has_created_before() || q->created_before == absl::InfiniteFuture(),
             "created_before set from nothing");
}

void FuzzAbort(const uint8_t* data, size_t size) {
  v1::AbortRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::Status st = ValidateAbort(req);
  Note("Abort", st);
  if (!st.ok()) return;
  FUZZ_CHECK(ValidateGid(req.gid()).ok(), "Abort accepted gid ", Q(req.gid()));
  FUZZ_CHECK(
      req.trans_type() == v1::TCC || req.trans_type() == v1::XA || req.trans_type() == v1::MSG,
      "Abort accepted trans_type ", static_cast<int>(req.trans_type()));
  FUZZ_CHECK(req.reason().size() <= kMaxReasonLength, "Abort accepted a reason of ",
             req.reason().size(), " bytes");
}

}  // namespace
}  // namespace fuzz
}  // namespace dtm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dtm::fuzz::FuzzNewTransaction;
  return dtm::fuzz::ByFirstByte(
      data, size,
      {[](const uint8_t* d, size_t n) {
         FuzzNewTransaction<dtm::v1::SubmitRequest>(d, n, /*prepare=*/false);
       },
       [](const uint8_t* d, size_t n) {
         FuzzNewTransaction<dtm::v1::PrepareRequest>(d, n, /*prepare=*/true);
       },
       dtm::fuzz::FuzzRegister, dtm::fuzz::FuzzList, dtm::fuzz::FuzzAbort});
}
