#include "server/api/admin/admin_api.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "dtm/v1/coordinator.pb.h"
#include "nlohmann/json.hpp"
#include "server/api/convert.h"
#include "server/api/validation.h"

namespace dtm {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr char kApiPrefix[] = "/v1/";
constexpr char kList[] = "/v1/transactions";
constexpr char kOne[] = "/v1/transactions/";

// What every answer of the API carries besides its body: nothing here is for caches, and a
// browser must take the JSON for JSON.
void AddHeaders(HttpResponse& r) {
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
}

HttpResponse JsonAnswer(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  AddHeaders(r);
  return r;
}

HttpResponse ErrorAnswer(int status, absl::string_view code, absl::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = ordered_json{{"code", code}, {"message", message}}.dump(
      -1, ' ', false, ordered_json::error_handler_t::replace);
  AddHeaders(r);
  return r;
}

HttpResponse NoRoute(const HttpRequest& req) {
  return ErrorAnswer(404, "NOT_FOUND", absl::StrCat("no such route: ", req.method, " ", req.path));
}

HttpResponse WrongMethod(const HttpRequest& req, const char* allowed) {
  HttpResponse r = ErrorAnswer(405, "UNIMPLEMENTED",
                               absl::StrCat(req.path, " takes ", allowed, ", not ", req.method));
  r.headers.emplace_back("Allow", allowed);
  return r;
}

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", value, "' ", why));
}

// Refuses a query parameter the route does not take: a misspelt filter must not silently
// list everything.
absl::Status OnlyParams(const HttpRequest& req, std::initializer_list<absl::string_view> known) {
  for (const auto& [name, value] : req.query) {
    bool ok = false;
    for (absl::string_view k : known) ok = ok || name == k;
    if (!ok) {
      return absl::InvalidArgumentError(
          known.size() == 0
              ? absl::StrCat("parameter '", name, "' is unknown: this route takes none")
              : absl::StrCat("parameter '", name, "' is unknown: this route takes ",
                             absl::StrJoin(known, ", ")));
    }
  }
  return absl::OkStatus();
}

// ?payloads=true|false (also 1|0); absent: false.
absl::StatusOr<bool> PayloadsParam(const HttpRequest& req) {
  std::string v = req.Param("payloads");
  if (v.empty() || v == "false" || v == "0") return false;
  if (v == "true" || v == "1") return true;
  return Invalid("payloads", v, "is not true or false");
}

// A browser sends Origin with every POST; one from another origin is a page elsewhere trying to
// steer this coordinator through the user's browser. Clients that are not browsers send none.
absl::Status CheckSameOrigin(const HttpRequest& req) {
  auto origin = req.headers.find("origin");
  if (origin == req.headers.end()) return absl::OkStatus();
  absl::string_view o = origin->second;
  bool schemed = absl::ConsumePrefix(&o, "http://") || absl::ConsumePrefix(&o, "https://");
  auto host = req.headers.find("host");
  if (schemed && host != req.headers.end() && absl::EqualsIgnoreCase(o, host->second)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("a request from a page of another origin ('",
                                                  origin->second,
                                                  "') may not change transactions here"));
}

template <typename Enum>
absl::Status ParseEnum(const HttpRequest& req, const char* name,
                       bool (*parse)(const std::string&, Enum*), const char* names, Enum* out) {
  std::string v = req.Param(name);
  if (v.empty()) return absl::OkStatus();
  if (!parse(absl::AsciiStrToUpper(v), out)) {
    return Invalid(name, v, absl::StrCat("is not one of ", names));
  }
  return absl::OkStatus();
}

absl::Status ParseTime(const HttpRequest& req, const char* name,
                       google::protobuf::Timestamp* (v1::ListRequest::*field)(),
                       v1::ListRequest& out) {
  std::string v = req.Param(name);
  if (v.empty()) return absl::OkStatus();
  google::protobuf::Timestamp ts;
  // A "+01:00" offset sent unencoded arrives as " 01:00" (a query string's "+" is a space).
  std::string plus = v;
  std::replace(plus.begin(), plus.end(), ' ', '+');
  if (!google::protobuf::util::TimeUtil::FromString(v, &ts) &&
      !google::protobuf::util::TimeUtil::FromString(plus, &ts)) {
    return Invalid(name, v, "is not an RFC 3339 time such as 2026-01-02T15:04:05Z");
  }
  *(out.*field)() = ts;
  return absl::OkStatus();
}

// The query string of GET /v1/transactions as a dtm.v1.ListRequest, whose checks (the gRPC
// List's) come after.
absl::StatusOr<v1::ListRequest> ReadListRequest(const HttpRequest& req) {
  absl::Status known = OnlyParams(req, {"status", "trans_type", "gid_prefix", "created_after",
                                        "created_before", "page_size", "page_token"});
  if (!known.ok()) return known;
  v1::ListRequest out;
  std::string size = req.Param("page_size");
  if (!size.empty()) {
    int32_t n = 0;
    if (!absl::SimpleAtoi(size, &n)) return Invalid("page_size", size, "is not a whole number");
    out.set_page_size(n);
  }
  out.set_page_token(req.Param("page_token"));
  out.set_gid_prefix(req.Param("gid_prefix"));
  v1::Status status = v1::STATUS_UNSPECIFIED;
  absl::Status valid =
      ParseEnum<v1::Status>(req, "status", &v1::Status_Parse,
                            "PREPARED, SUBMITTED, ABORTING, SUCCEEDED, FAILED", &status);
  out.set_status(status);
  v1::TransType type = v1::TRANS_TYPE_UNSPECIFIED;
  if (valid.ok()) {
    valid = ParseEnum<v1::TransType>(req, "trans_type", &v1::TransType_Parse, "SAGA, TCC, MSG, XA",
                                     &type);
  }
  out.set_trans_type(type);
  if (valid.ok()) {
    valid = ParseTime(req, "created_after", &v1::ListRequest::mutable_created_after, out);
  }
  if (valid.ok()) {
    valid = ParseTime(req, "created_before", &v1::ListRequest::mutable_created_before, out);
  }
  if (!valid.ok()) return valid;
  return out;
}

// A request body in protobuf's JSON mapping; empty reads as {}.
absl::Status ReadBody(const HttpRequest& req, google::protobuf::Message* out) {
  if (absl::StripAsciiWhitespace(req.body).empty()) return absl::OkStatus();
  google::protobuf::util::JsonParseOptions o;
  auto st = google::protobuf::util::JsonStringToMessage(req.body, out, o);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the body is not a JSON ", out->GetDescriptor()->name(), ": ", std::string(st.message())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat("cannot write the answer as JSON: ", st.ToString()));
  }
  return out;
}

// One transaction as JSON: without its branches' payloads unless `payloads`, then with each
// branch's "payload" in base64 (bytes in protobuf's JSON mapping).
HttpResponse TransactionAnswer(const Transaction& t, bool payloads) {
  v1::Transaction pb;
  ToProto(t, &pb);
  absl::StatusOr<std::string> text = ToJson(pb);
  if (!text.ok()) return AdminApi::ErrorResponse(text.status());
  if (!payloads || t.branches.empty()) return JsonAnswer(*std::move(text));
  ordered_json j = ordered_json::parse(*text);
  ordered_json& branches = j["branches"];
  for (size_t i = 0; i < t.branches.size() && i < branches.size(); ++i) {
    branches[i]["payload"] = absl::Base64Escape(t.branches[i].payload);
  }
  return JsonAnswer(j.dump());
}

}  // namespace

HttpResponse AdminApi::ErrorResponse(const absl::Status& s) {
  int status = 500;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      status = 400;
      break;
    case absl::StatusCode::kUnauthenticated:
      status = 401;
      break;
    case absl::StatusCode::kPermissionDenied:
      status = 403;
      break;
    case absl::StatusCode::kNotFound:
      status = 404;
      break;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      status = 409;
      break;
    case absl::StatusCode::kResourceExhausted:
      status = 429;
      break;
    case absl::StatusCode::kUnavailable:
      status = 503;
      break;
    default:
      break;
  }
  HttpResponse r = ErrorAnswer(status, absl::StatusCodeToString(s.code()), s.message());
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

void AdminApi::Register(HttpRouter* router) {
  router->HandlePrefix(kApiPrefix, [this](const HttpRequest& req, HttpResponder respond) {
    Route(req, std::move(respond));
  });
}

void AdminApi::Route(const HttpRequest& req, HttpResponder respond) {
  enum class Op { kList, kQuery, kRetryNow, kForceStop } op;
  std::string gid;
  if (req.path == kList) {
    if (req.method != "GET") return respond(WrongMethod(req, "GET"));
    op = Op::kList;
  } else if (absl::StartsWith(req.path, kOne)) {
    // {gid} or {gid}:verb; a gid may itself hold ':', so the verb is after the last one.
    absl::string_view rest = absl::string_view(req.path).substr(sizeof(kOne) - 1);
    if (rest.empty() || absl::StrContains(rest, '/')) return respond(NoRoute(req));
    size_t colon = rest.rfind(':');
    absl::string_view verb = colon == absl::string_view::npos ? "" : rest.substr(colon + 1);
    if (verb == "retryNow" || verb == "forceStop") {
      if (req.method != "POST") return respond(WrongMethod(req, "POST"));
      op = verb == "retryNow" ? Op::kRetryNow : Op::kForceStop;
      gid = std::string(rest.substr(0, colon));
    } else if (req.method == "GET") {
      op = Op::kQuery;
      gid = std::string(rest);
    } else if (req.method == "POST") {
      return respond(NoRoute(req));  // an unknown verb
    } else {
      return respond(WrongMethod(req, "GET"));
    }
  } else {
    return respond(NoRoute(req));
  }

  auto authorization = req.headers.find("authorization");
  absl::StatusOr<Caller> caller =
      Authenticate(limits_.auth_tokens.get(), authorization == req.headers.end()
                                                  ? absl::string_view()
                                                  : absl::string_view(authorization->second));
  if (!caller.ok()) return respond(ErrorResponse(caller.status()));
  if (op != Op::kList) {
    absl::Status valid = ValidateGid(gid);
    if (!valid.ok()) return respond(ErrorResponse(valid));
  }
  switch (op) {
    case Op::kList:
      return List(req, *caller, std::move(respond));
    case Op::kQuery:
      return Query(req, *caller, gid, std::move(respond));
    case Op::kRetryNow:
      return RetryNow(req, *caller, gid, std::move(respond));
    case Op::kForceStop:
      return ForceStop(req, *caller, gid, std::move(respond));
  }
}

void AdminApi::List(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  absl::StatusOr<v1::ListRequest> pb = ReadListRequest(req);
  if (!pb.ok()) return respond(ErrorResponse(pb.status()));
  absl::StatusOr<ListQuery> q = ListToQuery(*pb, limits_);
  if (!q.ok()) return respond(ErrorResponse(q.status()));
  ScopeList(caller, *q);
  engine_->List(*std::move(q),
                [caller, respond = std::move(respond)](absl::StatusOr<ListPage> page) {
                  if (!page.ok()) return respond(ErrorResponse(page.status()));
                  v1::ListResponse out;
                  for (Transaction& t : page->transactions) {
                    RedactFor(caller, t);
                    ToProto(t, out.add_transactions());
                  }
                  out.set_next_page_token(page->next_page_token);
                  absl::StatusOr<std::string> text = ToJson(out);
                  respond(text.ok() ? JsonAnswer(*std::move(text)) : ErrorResponse(text.status()));
                });
}

void AdminApi::Query(const HttpRequest& req, const Caller& caller, const std::string& gid,
                     HttpResponder respond) {
  absl::Status known = OnlyParams(req, {"payloads"});
  if (!known.ok()) return respond(ErrorResponse(known));
  absl::StatusOr<bool> payloads = PayloadsParam(req);
  if (!payloads.ok()) return respond(ErrorResponse(payloads.status()));
  engine_->Query(gid, [caller, payloads = *payloads,
                       respond = std::move(respond)](absl::StatusOr<Transaction> t) {
    absl::Status s = t.status();
    if (t.ok()) s = CheckCreator(caller, *t);
    if (!s.ok()) return respond(ErrorResponse(s));
    RedactFor(caller, *t);
    respond(TransactionAnswer(*t, payloads));
  });
}

void AdminApi::RetryNow(const HttpRequest& req, const Caller& caller, const std::string& gid,
                        HttpResponder respond) {
  absl::Status valid = CheckSameOrigin(req);
  if (valid.ok()) valid = OnlyParams(req, {});
  v1::RetryNowRequest body;
  if (valid.ok()) valid = ReadBody(req, &body);
  if (valid.ok() && body.all_waiting()) {
    valid = absl::InvalidArgumentError(
        "all_waiting is not taken here: this route retries one transaction (dtmctl retry-now "
        "--all_waiting retries every waiting one)");
  }
  if (valid.ok() && !body.gid().empty() && body.gid() != gid) {
    valid = Invalid("gid", body.gid(), absl::StrCat("in the body is not the path's '", gid, "'"));
  }
  if (!valid.ok()) return respond(ErrorResponse(valid));
  // RetryNow only moves a retry earlier: a caller without the admin role may do it to its own
  // transactions (as on the gRPC face).
  CheckOwnership(
      caller, gid,
      [this](const std::string& g, std::function<void(absl::StatusOr<Transaction>)> done) {
        engine_->Query(g, std::move(done));
      },
      [this, gid, respond = std::move(respond)](const absl::Status& s) {
        if (!s.ok()) return respond(ErrorResponse(s));
        engine_->RetryNow(gid, [respond](const absl::Status& st) {
          respond(st.ok() ? JsonAnswer("{}") : ErrorResponse(st));
        });
      });
}

void AdminApi::ForceStop(const HttpRequest& req, const Caller& caller, const std::string& gid,
                         HttpResponder respond) {
  absl::Status valid = CheckSameOrigin(req);
  if (valid.ok()) valid = RequireAdmin(caller, "ForceStop");
  if (valid.ok()) valid = OnlyParams(req, {"payloads"});
  absl::StatusOr<bool> payloads = PayloadsParam(req);
  if (valid.ok()) valid = payloads.status();
  v1::ForceStopRequest body;
  if (valid.ok()) valid = ReadBody(req, &body);
  if (valid.ok() && !body.gid().empty() && body.gid() != gid) {
    valid = Invalid("gid", body.gid(), absl::StrCat("in the body is not the path's '", gid, "'"));
  }
  if (valid.ok() && absl::StripAsciiWhitespace(body.reason()).empty()) {
    valid = Invalid("reason", body.reason(),
                    "is empty: a force-stop needs a reason, as in {\"reason\": \"refunded by "
                    "hand\"}");
  }
  if (valid.ok()) valid = CheckReason(body.reason(), "reason");
  if (!valid.ok()) return respond(ErrorResponse(valid));
  engine_->ForceStop(
      gid, body.reason(),
      [payloads = *payloads, respond = std::move(respond)](const absl::StatusOr<Transaction>& t) {
        if (!t.ok()) return respond(ErrorResponse(t.status()));
        respond(TransactionAnswer(*t, payloads));
      });
}

}  // namespace dtm
