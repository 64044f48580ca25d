// Fuzzes what dtmd reads from DTM's gRPC API (server/api/dtmgimp/dtmgimp_convert.h) with the
// default ApiLimits: the first byte picks the request (its value modulo 4: Submit, Prepare,
// Abort, RegisterBranch), the rest is that request's serialized protobuf, as gRPC hands it to
// the service. Steps and CustomedData are JSON inside the protobuf, so both parsers are
// exercised. What is accepted must keep every rule of tests/fuzz/transaction_invariants.h, as
// what the other faces accept does; a refusal must carry a message and never be OK's code.
#include <cstddef>
#include <cstdint>

#include "dtmgimp.pb.h"
#include "server/api/common/checks.h"
#include "server/api/dtmgimp/dtmgimp_convert.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/transaction_invariants.h"

namespace dtm {
namespace fuzz {
namespace {

void FuzzRequest(const uint8_t* data, size_t size, DtmRoute route) {
  dtmgimp::DtmRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<Transaction> t = DtmRequestToTransaction(req, route, Limits());
  Note("DtmRequest", t.status());
  if (!t.ok()) {
    FUZZ_CHECK(!t.status().message().empty(), "a refusal without a message");
    // What the face answers for it: a refusal stays a refusal.
    FUZZ_CHECK(!ToDtmgimpStatus(t.status()).ok(), "a refusal answered as OK");
    return;
  }
  FUZZ_CHECK(t->gid == req.gid(), "Gid changed");
  FUZZ_CHECK(t->rollback_reason.size() <= kMaxReasonLength, "RollbackReason of ",
             t->rollback_reason.size(), " bytes");
  if (route == DtmRoute::kAbort) {
    FUZZ_CHECK(t->trans_type != TransType::kSaga, "Abort accepted for a saga");
    return;
  }
  const bool prepare = route == DtmRoute::kPrepare;
  CheckAcceptedTransaction(*t, prepare, Limits());
  FUZZ_CHECK(t->query_prepared == req.queryprepared(), "QueryPrepared changed");
  const size_t per_step = t->trans_type == TransType::kSaga ? 2 : 1;
  FUZZ_CHECK(t->branches.size() == per_step * static_cast<size_t>(req.binpayloads_size()) ||
                 (req.binpayloads_size() == 0 && t->branches.empty()),
             req.binpayloads_size(), " BinPayloads became ", t->branches.size(), " branches");
  for (size_t i = 0; i < t->branches.size(); ++i) {
    FUZZ_CHECK(t->branches[i].payload == req.binpayloads(static_cast<int>(i / per_step)),
               "the payload of branch ", i, " is not BinPayloads[", i / per_step, "]");
  }
}

void FuzzRegister(const uint8_t* data, size_t size) {
  dtmgimp::DtmBranchRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<BranchRegistration> r = DtmBranchRequestToRegistration(req, Limits());
  Note("DtmBranchRequest", r.status());
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty(), "a refusal without a message");
    return;
  }
  CheckAcceptedRegistration(*r, Limits());
  FUZZ_CHECK(
      r->gid == req.gid() && r->branch_id == req.branchid() && r->payload == req.busipayload(),
      "RegisterBranch changed a field");
  const bool xa = r->trans_type == TransType::kXa;
  FUZZ_CHECK(req.transtype() == (xa ? "xa" : "tcc"), "TransType '", Q(req.transtype()),
             "' registered as ", TransTypeName(r->trans_type));
  auto data_of = [&](const char* key) {
    auto it = req.data().find(key);
    return it == req.data().end() ? std::string() : it->second;
  };
  FUZZ_CHECK(
      r->confirm == data_of(xa ? "url" : "confirm") && r->cancel == data_of(xa ? "url" : "cancel"),
      "the registered targets are not Data's");
}

}  // namespace
}  // namespace fuzz
}  // namespace dtm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dtm::DtmRoute;
  using dtm::fuzz::FuzzRequest;
  return dtm::fuzz::ByFirstByte(
      data, size,
      {[](const uint8_t* d, size_t n) { FuzzRequest(d, n, DtmRoute::kSubmit); },
       [](const uint8_t* d, size_t n) { FuzzRequest(d, n, DtmRoute::kPrepare); },
       [](const uint8_t* d, size_t n) { FuzzRequest(d, n, DtmRoute::kAbort); },
       dtm::fuzz::FuzzRegister});
}
