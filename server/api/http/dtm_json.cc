#include "server/api/http/dtm_json.h"

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/common/status_macros.h"
#include "nlohmann/json.hpp"

namespace dtm {
namespace {

using json = nlohmann::json;

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", why));
}

// The JSON type of `v` with its article, for messages: "an array", "a string", "null".
std::string TypeOf(const json& v) {
  if (v.is_null()) return "null";
  return absl::StrCat(v.is_array() || v.is_object() ? "an " : "a ", v.type_name());
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

absl::StatusOr<json> ParseObject(absl::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(body.empty()
                                          ? "the body is empty: it must be a JSON object"
                                          : "the body is not valid JSON: it must be a JSON object");
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body is a JSON ", j.type_name(), ", not an object"));
  }
  return j;
}

// The member `key` of `o` when present and not null.
const json* Member(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status GetString(const json& o, const char* key, std::string* out) {
  const json* v = Member(o, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return Bad(key, absl::StrCat("must be a string, not ", TypeOf(*v)));
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetBool(const json& o, const char* key, bool* out) {
  const json* v = Member(o, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return Bad(key, absl::StrCat("must be true or false, not ", TypeOf(*v)));
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status GetInt(const json& o, const char* key, int64_t* out) {
  const json* v = Member(o, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number_integer()) {
    // A number is shown as given; anything else only by its type (dumping a client's
    // arbitrarily nested array back would recurse once per level).
    return Bad(
        key, absl::StrCat("must be a whole number, not ", v->is_number() ? Dump(*v) : TypeOf(*v)));
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return Bad(key, absl::StrCat("is too large: ", Dump(*v)));  // read as int64, it would wrap
  }
  *out = v->get<int64_t>();
  if (*out < 0) return Bad(key, absl::StrCat("is negative: ", *out));
  return absl::OkStatus();
}

// DTM's durations are whole seconds; 0 (or absent) keeps the default.
absl::Status GetSeconds(const json& o, const char* key, absl::Duration* out) {
  int64_t s = 0;
  RETURN_IF_ERROR(GetInt(o, key, &s));
  if (s > 0) *out = absl::Seconds(s);
  return absl::OkStatus();
}

absl::Status GetStringMap(const json& o, const char* key, std::map<std::string, std::string>* out,
                          bool lower_keys) {
  const json* v = Member(o, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return Bad(key, absl::StrCat("must be an object, not ", TypeOf(*v)));
  for (const auto& [k, val] : v->items()) {
    if (!val.is_string()) {
      return Bad(absl::StrCat(key, "['", k, "']"),
                 absl::StrCat("must be a string, not ", TypeOf(val)));
    }
    const std::string name = lower_keys ? absl::AsciiStrToLower(k) : k;
    if (!out->emplace(name, val.get<std::string>()).second) {
      // Header names are case-insensitive: keeping one of the values would drop the other.
      return Bad(absl::StrCat(key, "['", absl::CHexEscape(k), "']"),
                 "is given twice, in two cases");
    }
  }
  return absl::OkStatus();
}

std::string StepName(absl::string_view field, size_t i) { return absl::StrCat(field, "[", i, "]"); }

// The member `key` of `o` as Go's encoding/json finds a struct field: the exact key, else one
// that differs only in case. DTM decodes custom_data into Go structs that way, and its SDKs
// in other languages have written it in more than one case.
const json* MemberFold(const json& o, const char* key) {
  if (const json* v = Member(o, key)) return v;
  for (const auto& [k, v] : o.items()) {
    if (!v.is_null() && absl::EqualsIgnoreCase(k, key)) return &v;
  }
  return nullptr;
}

// An array of {"action": .., "compensate": .., "data": ..} (`data`: DTM's legacy HTTP payload),
// named `field` in messages.
absl::StatusOr<std::vector<StepSpec>> ReadStepArray(const json& s, absl::string_view field) {
  std::vector<StepSpec> steps;
  if (!s.is_array()) return Bad(field, absl::StrCat("must be an array, not ", TypeOf(s)));
  for (size_t i = 0; i < s.size(); ++i) {
    const json& step = s[i];
    if (!step.is_object()) {
      return Bad(StepName(field, i), absl::StrCat("must be an object, not ", TypeOf(step)));
    }
    StepSpec spec;
    const char* keys[] = {"action", "compensate", "data"};
    std::string* outs[] = {&spec.action, &spec.compensate, &spec.payload};
    for (int k = 0; k < 3; ++k) {
      auto it = step.find(keys[k]);
      if (it == step.end() || it->is_null()) continue;
      if (!it->is_string()) {
        return Bad(absl::StrCat(StepName(field, i), ".", keys[k]),
                   absl::StrCat("must be a string, not ", TypeOf(*it)));
      }
      *outs[k] = it->get<std::string>();
    }
    steps.push_back(std::move(spec));
  }
  return steps;
}

// steps: [{"action": .., "compensate": .., "data": ..}], payloads: ["..."] (or the legacy
// steps[i].data).
absl::StatusOr<std::vector<StepSpec>> ReadSteps(const json& o) {
  const json* s = Member(o, "steps");
  if (s == nullptr) return std::vector<StepSpec>();
  ASSIGN_OR_RETURN(std::vector<StepSpec> steps, ReadStepArray(*s, "steps"));
  const json* p = Member(o, "payloads");
  if (p == nullptr) return steps;
  if (!p->is_array()) return Bad("payloads", absl::StrCat("must be an array, not ", TypeOf(*p)));
  if (p->size() != steps.size()) {
    return Bad("payloads", absl::StrCat("has ", p->size(), " entries for ", steps.size(),
                                        " steps: give one payload per step"));
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const json& v = (*p)[i];
    if (v.is_null()) continue;
    if (!v.is_string()) {
      return Bad(absl::StrCat("payloads[", i, "]"),
                 absl::StrCat("must be a string, not ", TypeOf(v)));
    }
    steps[i].payload = v.get<std::string>();
  }
  return steps;
}

constexpr char kTransTypes[] = "saga, tcc, msg or xa";

absl::StatusOr<TransType> ReadTransType(const json& o) {
  std::string name;
  RETURN_IF_ERROR(GetString(o, "trans_type", &name));
  return CheckDtmTransType(name, "trans_type");
}

absl::Status ReadGid(const json& o, std::string* gid) {
  RETURN_IF_ERROR(GetString(o, "gid", gid));
  if (gid->empty()) {
    return absl::InvalidArgumentError("gid is missing: get one from GET /api/dtmsvr/newGid");
  }
  return ValidateGid(*gid);
}

std::string Time(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

json Seconds(absl::Duration d) {
  if (d == absl::Trunc(d, absl::Seconds(1))) return absl::ToInt64Seconds(d);
  return absl::ToDoubleSeconds(d);
}

void PutTime(json& j, const char* key, absl::Time t) {
  if (t != absl::InfinitePast() && t != absl::InfiniteFuture()) j[key] = Time(t);
}

json GlobalJson(const Transaction& t) {
  json j;
  j["gid"] = t.gid;
  j["trans_type"] = TransTypeName(t.trans_type);
  j["status"] = DtmStatusName(t.status);
  PutTime(j, "create_time", t.create_time);
  PutTime(j, "update_time", t.update_time);
  PutTime(j, "finish_time", t.finish_time);
  if (!IsTerminal(t.status)) PutTime(j, "next_cron_time", t.next_retry_time);
  if (!t.rollback_reason.empty()) j["rollback_reason"] = t.rollback_reason;
  if (!t.query_prepared.empty()) j["query_prepared"] = t.query_prepared;
  if (!t.owner.empty()) j["owner"] = t.owner;
  const TransOptions& o = t.options;
  j["wait_result"] = o.wait_result;
  if (o.timeout_to_fail > absl::ZeroDuration()) j["timeout_to_fail"] = Seconds(o.timeout_to_fail);
  j["request_timeout"] = Seconds(o.request_timeout);
  j["retry_interval"] = Seconds(o.retry_interval);
  j["max_retry_interval"] = Seconds(o.max_retry_interval);
  if (o.retry_limit > 0) j["retry_limit"] = o.retry_limit;
  if (!o.branch_headers.empty()) j["branch_headers"] = o.branch_headers;
  j["concurrent"] = o.concurrent;
  if (o.delay > absl::ZeroDuration()) j["custom_data"] = Dump(json{{"delay", Seconds(o.delay)}});
  return j;
}

}  // namespace

const char* DtmStatusName(GlobalStatus s) {
  switch (s) {
    case GlobalStatus::kPrepared:
      return "prepared";
    case GlobalStatus::kSubmitted:
      return "submitted";
    case GlobalStatus::kAborting:
      return "aborting";
    case GlobalStatus::kSucceeded:
      return "succeed";
    case GlobalStatus::kFailed:
      return "failed";
    default:
      return "";
  }
}

const char* DtmBranchStatusName(BranchStatus s) {
  switch (s) {
    case BranchStatus::kPrepared:
      return "prepared";
    case BranchStatus::kSucceeded:
      return "succeed";
    case BranchStatus::kFailed:
      return "failed";
    default:
      return "";
  }
}

GlobalStatus ParseDtmStatus(absl::string_view name) {
  for (GlobalStatus s : {GlobalStatus::kPrepared, GlobalStatus::kSubmitted, GlobalStatus::kAborting,
                         GlobalStatus::kSucceeded, GlobalStatus::kFailed}) {
    if (name == DtmStatusName(s)) return s;
  }
  return GlobalStatus::kUnspecified;
}

TransType ParseDtmTransType(absl::string_view name) {
  for (TransType t : {TransType::kSaga, TransType::kTcc, TransType::kMsg, TransType::kXa}) {
    if (name == TransTypeName(t)) return t;
  }
  return TransType::kUnspecified;
}

absl::StatusOr<TransType> CheckDtmTransType(const std::string& name, const std::string& field) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is missing: ", kTransTypes));
  }
  TransType type = ParseDtmTransType(name);
  if (type == TransType::kUnspecified) {
    return Bad(absl::StrCat(field, " '", name, "'"), "is not saga, tcc, msg or xa");
  }
  return type;
}

absl::Status CheckDtmRoute(TransType type, DtmRoute route) {
  if (type != TransType::kSaga) return absl::OkStatus();
  if (route == DtmRoute::kAbort) {
    return absl::FailedPreconditionError(
        "abort is for a prepared tcc, xa or msg; a saga rolls back on its own when an action "
        "fails (forceStop ends one without compensation)");
  }
  if (route == DtmRoute::kPrepare) {
    return absl::FailedPreconditionError(
        "prepare is for tcc, xa and msg; a saga is submitted whole with submit");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StepSpec>> ParseDtmSteps(absl::string_view text,
                                                    absl::string_view field) {
  if (text.empty()) return std::vector<StepSpec>();
  json s = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (s.is_discarded()) {
    return Bad(field,
               "is not valid JSON: it must be a JSON array of {\"action\", \"compensate\"} "
               "objects, or null");
  }
  if (s.is_null()) return std::vector<StepSpec>();
  return ReadStepArray(s, field);
}

absl::Status ApplyDtmCustomData(absl::string_view text, absl::string_view field, TransType type,
                                std::vector<StepSpec>& steps, TransOptions& options) {
  if (text.empty()) return absl::OkStatus();
  json c = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (c.is_discarded() || !c.is_object()) {
    return Bad(field, "must be a JSON object in a string, e.g. \"{\\\"delay\\\":10}\"");
  }
  if (type == TransType::kMsg) {
    const json* d = MemberFold(c, "delay");
    if (d == nullptr) return absl::OkStatus();
    if (!d->is_number_integer() || d->get<int64_t>() < 0 ||
        (d->is_number_unsigned() && d->get<uint64_t>() > uint64_t{INT64_MAX})) {
      return Bad(absl::StrCat(field, ".delay"), "must be a whole number of seconds");
    }
    options.delay = absl::Seconds(d->get<int64_t>());
    return absl::OkStatus();
  }
  if (type != TransType::kSaga) return absl::OkStatus();
  const json* concurrent = MemberFold(c, "concurrent");
  if (concurrent != nullptr && !concurrent->is_boolean()) {
    return Bad(absl::StrCat(field, ".concurrent"), "must be true or false");
  }
  if (concurrent == nullptr || !concurrent->get<bool>()) return absl::OkStatus();
  options.concurrent = true;
  const json* orders = MemberFold(c, "orders");
  if (orders == nullptr) return absl::OkStatus();
  if (!orders->is_object()) return Bad(absl::StrCat(field, ".orders"), "must be an object");
  for (const auto& [key, before] : orders->items()) {
    std::string name = absl::StrCat(field, ".orders['", key, "']");
    int step = -1;
    if (!absl::SimpleAtoi(key, &step) || step < 0 || step >= static_cast<int>(steps.size())) {
      return Bad(name, absl::StrCat("is not a step index in [0, ", steps.size(), ")"));
    }
    if (!before.is_array()) return Bad(name, "must be an array of step indexes");
    for (const json& b : before) {
      // An index that does not fit would wrap around into a valid one.
      if (!b.is_number_integer() || b.get<int64_t>() < INT32_MIN || b.get<int64_t>() > INT32_MAX) {
        return Bad(name, "must be an array of step indexes");
      }
      steps[step].after.push_back(static_cast<int32_t>(b.get<int64_t>()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Transaction> FinishDtmTransaction(Transaction t, const std::vector<StepSpec>& steps,
                                                 DtmRoute route, const DtmFieldNames& names,
                                                 const ApiLimits& limits) {
  const TransType type = t.trans_type;
  const bool prepare = route == DtmRoute::kPrepare;
  t.status = prepare ? GlobalStatus::kPrepared : GlobalStatus::kSubmitted;
  // A rollback reason belongs to an abort; DTM's SDKs send the field with every request, and a
  // new transaction that showed one would read as rolled back.
  t.rollback_reason.clear();
  if (type == TransType::kSaga && steps.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(names.steps, " is empty: a saga needs at least one step"));
  }
  if (HasRegisteredBranches(type) && !steps.empty()) {
    return Bad(names.steps, absl::StrCat("is set, but ", type == TransType::kXa ? "an " : "a ",
                                         TransTypeName(type),
                                         "'s branches are registered one by one while it is "
                                         "prepared, not given as steps"));
  }
  if (type == TransType::kMsg && prepare && steps.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(names.steps, " is empty: a msg needs at least one step"));
  }
  if (type != TransType::kMsg && !t.query_prepared.empty()) {
    return Bad(absl::StrCat(names.query_prepared, " '", t.query_prepared, "'"), "is only for msg");
  }
  if (type == TransType::kMsg && prepare && t.query_prepared.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        names.query_prepared,
        " is empty: a prepared msg needs a back-check target that says whether its local "
        "transaction committed"));
  }
  RETURN_IF_ERROR(CheckTarget(t.query_prepared, names.query_prepared, limits));
  RETURN_IF_ERROR(FinishOptions(type, names.options, t.options, limits));
  ASSIGN_OR_RETURN(t.branches, BuildBranches(steps, type, limits, names.step_fields));
  return t;
}

absl::StatusOr<BranchRegistration> FinishDtmRegistration(BranchRegistration r,
                                                         const std::string& trans_type,
                                                         const std::string& url,
                                                         const DtmFieldNames& names,
                                                         const ApiLimits& limits) {
  RETURN_IF_ERROR(ValidateGid(r.gid, names.gid.c_str()));
  ASSIGN_OR_RETURN(r.trans_type, CheckDtmTransType(trans_type, names.trans_type));
  if (!HasRegisteredBranches(r.trans_type)) {
    return absl::FailedPreconditionError(
        absl::StrCat("branches register themselves only into a tcc or an xa, not a ", trans_type));
  }
  RETURN_IF_ERROR(ValidateBranchId(r.branch_id, names.branch_id.c_str()));
  if (r.trans_type == TransType::kXa) {
    // An xa branch has one phase-2 target, called with op commit or rollback; a tcc's
    // targets sent along would be dropped unseen.
    for (const auto& [key, value] :
         {std::pair<const char*, const std::string*>{"confirm", &r.confirm},
          {"cancel", &r.cancel}}) {
      if (!value->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            names.data(key), " '", *value, "' is for a tcc branch; an xa branch gives ",
            names.data("url"), ", called with op commit or rollback"));
      }
    }
    if (url.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          names.data("url"), " is missing: an xa branch's target for commit and rollback"));
    }
    r.confirm = r.cancel = url;
    RETURN_IF_ERROR(CheckTarget(url, names.data("url"), limits));
  } else {
    if (!url.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(names.data("url"), " '", url, "' is for an xa branch; a tcc branch gives ",
                       names.data("confirm"), " and ", names.data("cancel")));
    }
    RETURN_IF_ERROR(CheckTarget(r.confirm, names.data("confirm"), limits));
    RETURN_IF_ERROR(CheckTarget(r.cancel, names.data("cancel"), limits));
  }
  RETURN_IF_ERROR(CheckPayload(r.payload, names.payload, limits));
  ApplyRegistrationLimits(r, limits);
  return r;
}

const DtmFieldNames& HttpDtmNames() {
  static const DtmFieldNames* names = new DtmFieldNames{
      "gid",
      "trans_type",
      "",
      "steps",
      "query_prepared",
      StepFields{[](int i) { return StepName("steps", i); },
                 [](int i) { return StepName("payloads", i); }},
      "branch_id",
      "data",
      [](absl::string_view key) { return std::string(key); },
  };
  return *names;
}

absl::StatusOr<Transaction> ParseDtmTransaction(absl::string_view body, DtmRoute route,
                                                const ApiLimits& limits) {
  ASSIGN_OR_RETURN(json o, ParseObject(body));
  Transaction t;
  RETURN_IF_ERROR(ReadGid(o, &t.gid));
  RETURN_IF_ERROR(GetString(o, "rollback_reason", &t.rollback_reason));
  RETURN_IF_ERROR(CheckReason(t.rollback_reason, "rollback_reason"));
  if (route == DtmRoute::kForceStop) return t;
  ASSIGN_OR_RETURN(t.trans_type, ReadTransType(o));
  const TransType type = t.trans_type;
  RETURN_IF_ERROR(CheckDtmRoute(type, route));
  if (route == DtmRoute::kAbort) return t;
  TransOptions& opts = t.options;
  opts = DefaultOptions(type, limits);
  RETURN_IF_ERROR(GetBool(o, "wait_result", &opts.wait_result));
  RETURN_IF_ERROR(GetSeconds(o, "timeout_to_fail", &opts.timeout_to_fail));
  RETURN_IF_ERROR(GetSeconds(o, "request_timeout", &opts.request_timeout));
  RETURN_IF_ERROR(GetSeconds(o, "retry_interval", &opts.retry_interval));
  int64_t retry_limit = 0;
  RETURN_IF_ERROR(GetInt(o, "retry_limit", &retry_limit));
  opts.retry_limit = static_cast<int32_t>(std::min<int64_t>(retry_limit, INT32_MAX));
  // HTTP header names are case-insensitive; gRPC metadata keys are lowercase.
  RETURN_IF_ERROR(GetStringMap(o, "branch_headers", &opts.branch_headers, /*lower_keys=*/true));
  if (type == TransType::kMsg) RETURN_IF_ERROR(GetBool(o, "concurrent", &opts.concurrent));
  RETURN_IF_ERROR(GetString(o, "query_prepared", &t.query_prepared));
  ASSIGN_OR_RETURN(std::vector<StepSpec> steps, ReadSteps(o));
  std::string custom_data;
  RETURN_IF_ERROR(GetString(o, "custom_data", &custom_data));
  RETURN_IF_ERROR(ApplyDtmCustomData(custom_data, "custom_data", type, steps, opts));
  DtmFieldNames names = HttpDtmNames();
  if (Member(o, "payloads") == nullptr) {
    names.step_fields.payload = [](int i) { return absl::StrCat(StepName("steps", i), ".data"); };
  }
  return FinishDtmTransaction(std::move(t), steps, route, names, limits);
}

absl::StatusOr<BranchRegistration> ParseDtmRegistration(absl::string_view body,
                                                        const ApiLimits& limits) {
  ASSIGN_OR_RETURN(json o, ParseObject(body));
  for (const auto& [k, v] : o.items()) {
    if (!v.is_string() && !v.is_null()) {
      return Bad(k, absl::StrCat("must be a string, not ", TypeOf(v),
                                 " (registerBranch takes string values only)"));
    }
  }
  BranchRegistration r;
  RETURN_IF_ERROR(ReadGid(o, &r.gid));
  std::string type;
  std::string url;
  RETURN_IF_ERROR(GetString(o, "trans_type", &type));
  RETURN_IF_ERROR(GetString(o, "branch_id", &r.branch_id));
  RETURN_IF_ERROR(GetString(o, "confirm", &r.confirm));
  RETURN_IF_ERROR(GetString(o, "cancel", &r.cancel));
  RETURN_IF_ERROR(GetString(o, "url", &url));
  RETURN_IF_ERROR(GetString(o, "data", &r.payload));
  return FinishDtmRegistration(std::move(r), type, url, HttpDtmNames(), limits);
}

std::string DtmQueryJson(const Transaction* t) {
  json j;
  j["branches"] = json::array();
  if (t == nullptr) {
    j["transaction"] = nullptr;
    return Dump(j);
  }
  j["transaction"] = GlobalJson(*t);
  for (const Branch& b : t->branches) {
    json bj;
    bj["gid"] = t->gid;
    bj["url"] = b.target;
    bj["bin_data"] = absl::Base64Escape(b.payload);
    bj["branch_id"] = b.branch_id;
    bj["op"] = BranchOpName(b.op);
    bj["status"] = DtmBranchStatusName(b.status);
    PutTime(bj, "finish_time", b.finish_time);
    bj["attempts"] = b.attempts;
    if (!b.last_error.empty()) bj["last_error"] = b.last_error;
    j["branches"].push_back(std::move(bj));
  }
  return Dump(j);
}

std::string DtmListJson(const ListPage& page) {
  json j;
  j["next_position"] = page.next_page_token;
  j["transactions"] = json::array();
  for (const Transaction& t : page.transactions) j["transactions"].push_back(GlobalJson(t));
  return Dump(j);
}

absl::Status DtmSubmitOutcome(const std::string& gid, GlobalStatus status,
                              const std::string& rollback_reason, bool wait) {
  if (!wait && IsTerminal(status)) {
    // Answered without waiting, yet over: it had ended before this submit (DTM refuses such a
    // submit as well; over dtm.v1 it is an idempotent repeat).
    return absl::AbortedError(absl::StrCat("transaction '", gid, "' is already ",
                                           DtmStatusName(status),
                                           ": a finished transaction cannot be submitted again"));
  }
  if (status == GlobalStatus::kAborting) {
    // Rolling back (its client aborted it, its timeout passed, or a saga action failed): it
    // can only end FAILED, so the answer is already known, wait or not. Answering OK here
    // would tell an xa or tcc client that lost the race with timeout_to_fail that its
    // transaction commits.
    return absl::AbortedError(absl::StrCat("transaction '", gid, "' is aborting",
                                           rollback_reason.empty() ? "" : ": ", rollback_reason));
  }
  if (!wait || status == GlobalStatus::kSucceeded) return absl::OkStatus();
  if (status == GlobalStatus::kFailed) {
    return absl::AbortedError(rollback_reason.empty() ? "the transaction failed" : rollback_reason);
  }
  // Still running (its first round stalled): neither a success nor a failure.
  return absl::FailedPreconditionError(absl::StrCat("transaction '", gid, "' is still ",
                                                    DtmStatusName(status),
                                                    ": query it to see when it ends"));
}

std::string DtmSuccessJson(const std::string& extra_key, const std::string& extra_value) {
  json j{{"dtm_result", "SUCCESS"}};
  if (!extra_key.empty()) j[extra_key] = extra_value;
  return Dump(j);
}

std::string DtmResultJson(const char* result, const std::string& message) {
  return Dump(json{{"dtm_result", result}, {"message", message}});
}

}  // namespace dtm
