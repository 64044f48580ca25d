// Fuzzes DTM's JSON (server/api/http/dtm_json.h) with the default ApiLimits: the input is a
// request body, read by ParseDtmTransaction for every route and by ParseDtmRegistration.
//
// What is accepted keeps every rule of tests/fuzz/transaction_invariants.h; its answers
// (DtmQueryJson, DtmListJson) are JSON that says the same thing; its v1::Transaction (Query over
// gRPC) is valid; and sent as a dtm.v1 request it is accepted as the same transaction, since
// both faces hold a transaction to the same rules (server/api/common/checks.h).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/api/common/checks.h"
#include "server/api/http/dtm_json.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/proto_invariants.h"
#include "tests/fuzz/transaction_invariants.h"

namespace dtm {
namespace fuzz {
namespace {

using json = nlohmann::json;

const char* RouteName(DtmRoute r) {
  switch (r) {
    case DtmRoute::kPrepare:
      return "prepare";
    case DtmRoute::kSubmit:
      return "submit";
    case DtmRoute::kAbort:
      return "abort";
    case DtmRoute::kForceStop:
      return "forceStop";
  }
  return "?";
}

json ParseAnswer(const std::string& text, const char* what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!j.is_discarded() && j.is_object(), what, " is not a JSON object: ", Q(text));
  return j;
}

// A duration as DTM's answers write it: whole seconds as an integer, else a fraction.
void CheckSeconds(const json& o, const char* key, absl::Duration want) {
  auto it = o.find(key);
  FUZZ_CHECK(it != o.end() && it->is_number(), "query: ", key, " missing or not a number");
  const absl::Duration got =
      it->is_number_integer() ? absl::Seconds(it->get<int64_t>()) : absl::Duration();
  FUZZ_CHECK(!it->is_number_integer() || got == want, "query: ", key, " is ", it->dump(), " for ",
             absl::FormatDuration(want));
}

// GET query's answer for an accepted transaction.
void CheckQueryJson(const Transaction& t) {
  const std::string text = DtmQueryJson(&t);
  json j = ParseAnswer(text, "DtmQueryJson");
  FUZZ_CHECK(j.contains("transaction") && j["transaction"].is_object(), "query: no transaction");
  const json& g = j["transaction"];
  FUZZ_CHECK(g.value("gid", "") == t.gid, "query: gid ", Q(g.value("gid", "")), " for ", Q(t.gid));
  FUZZ_CHECK(g.value("trans_type", "") == TransTypeName(t.trans_type), "query: trans_type");
  FUZZ_CHECK(g.value("status", "") == DtmStatusName(t.status), "query: status");
  FUZZ_CHECK(g.value("query_prepared", "") == t.query_prepared, "query: query_prepared");
  FUZZ_CHECK(g.value("wait_result", !t.options.wait_result) == t.options.wait_result,
             "query: wait_result");
  FUZZ_CHECK(g.value("concurrent", !t.options.concurrent) == t.options.concurrent,
             "query: concurrent");
  FUZZ_CHECK(g.value("retry_limit", 0) == t.options.retry_limit, "query: retry_limit");
  CheckSeconds(g, "request_timeout", t.options.request_timeout);
  CheckSeconds(g, "retry_interval", t.options.retry_interval);
  CheckSeconds(g, "max_retry_interval", t.options.max_retry_interval);
  if (t.options.timeout_to_fail > absl::ZeroDuration()) {
    CheckSeconds(g, "timeout_to_fail", t.options.timeout_to_fail);
  }
  if (!t.options.branch_headers.empty()) {
    using Headers = std::map<std::string, std::string>;
    const bool same = g.contains("branch_headers") &&
                      g["branch_headers"].get<Headers>() == t.options.branch_headers;
    FUZZ_CHECK(same, "query: branch_headers");
  }
  if (t.options.delay > absl::ZeroDuration()) {
    json c = ParseAnswer(g.value("custom_data", ""), "query: custom_data");
    CheckSeconds(c, "delay", t.options.delay);
  }
  FUZZ_CHECK(j.contains("branches") && j["branches"].is_array() &&
                 j["branches"].size() == t.branches.size(),
             "query: branches");
  for (size_t i = 0; i < t.branches.size(); ++i) {
    const json& b = j["branches"][i];
    const Branch& want = t.branches[i];
    std::string payload;
    FUZZ_CHECK(absl::Base64Unescape(b.value("bin_data", ""), &payload) && payload == want.payload,
               "query: branches[", i, "].bin_data");
    FUZZ_CHECK(b.value("url", "") == want.target && b.value("branch_id", "") == want.branch_id &&
                   b.value("op", "") == BranchOpName(want.op) &&
                   b.value("status", "") == DtmBranchStatusName(want.status) &&
                   b.value("gid", "") == t.gid,
               "query: branches[", i, "]");
  }
  // And GET all with it on the page.
  ListPage page;
  page.transactions.push_back(t);
  page.next_page_token = "x";
  json all = ParseAnswer(DtmListJson(page), "DtmListJson");
  FUZZ_CHECK(all["transactions"].is_array() && all["transactions"].size() == 1 &&
                 all["transactions"][0] == g,
             "all: the transaction differs from query's");
}

void FuzzTransaction(absl::string_view body) {
  absl::StatusOr<Transaction> stopped = ParseDtmTransaction(body, DtmRoute::kForceStop, Limits());
  Note("forceStop", stopped.status());
  if (stopped.ok()) {
    FUZZ_CHECK(ValidateGid(stopped->gid).ok(), "forceStop accepted gid ", Q(stopped->gid));
    FUZZ_CHECK(stopped->rollback_reason.size() <= kMaxReasonLength, "forceStop reason of ",
               stopped->rollback_reason.size(), " bytes");
    FUZZ_CHECK(stopped->branches.empty() && stopped->trans_type == TransType::kUnspecified,
               "forceStop read more than gid and reason");
  }
  for (DtmRoute route : {DtmRoute::kPrepare, DtmRoute::kSubmit, DtmRoute::kAbort}) {
    absl::StatusOr<Transaction> t = ParseDtmTransaction(body, route, Limits());
    Note(RouteName(route), t.status());
    if (!t.ok()) {
      FUZZ_CHECK(!t.status().message().empty(), RouteName(route), ": a refusal without a message");
      continue;
    }
    // Every route reads gid and rollback_reason the same way; a new transaction (prepare,
    // submit) keeps no rollback_reason.
    const bool aborts = route == DtmRoute::kAbort;
    FUZZ_CHECK(stopped.ok() && stopped->gid == t->gid &&
                   t->rollback_reason == (aborts ? stopped->rollback_reason : ""),
               RouteName(route), " accepts what forceStop does not, or reads it differently");
    if (route == DtmRoute::kAbort) {
      FUZZ_CHECK(HasRegisteredBranches(t->trans_type) || t->trans_type == TransType::kMsg,
                 "abort accepted a ", TransTypeName(t->trans_type));
      FUZZ_CHECK(t->branches.empty(), "abort read steps");
      continue;
    }
    const bool prepare = route == DtmRoute::kPrepare;
    CheckAcceptedTransaction(*t, prepare, Limits());
    CheckQueryJson(*t);
    CheckToProto(*t);
    CheckAcceptedAgain(*t, prepare, Limits(), "DTM's JSON");
  }
}

void FuzzRegistration(absl::string_view body) {
  absl::StatusOr<BranchRegistration> r = ParseDtmRegistration(body, Limits());
  Note("registerBranch", r.status());
  if (!r.ok()) return;
  CheckAcceptedRegistration(*r, Limits());
  json j = ParseAnswer(std::string(body), "an accepted registerBranch body");
  FUZZ_CHECK(j.value("trans_type", "") == TransTypeName(r->trans_type),
             "registerBranch accepted trans_type ", Q(j.value("trans_type", "")));
}

}  // namespace
}  // namespace fuzz
}  // namespace dtm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  dtm::fuzz::FuzzTransaction(body);
  dtm::fuzz::FuzzRegistration(body);
  return 0;
}
