#include "server/api/http/dtm_http_api.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/http/dtm_json.h"

namespace dtm {
namespace {

constexpr char kPrefix[] = "/api/dtmsvr/";
constexpr char kVersion[] = "dtmd-1";

HttpResponse Json(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse Success() { return Json(DtmSuccessJson()); }

// Reads a whole-number query parameter; absent keeps `*out`.
absl::Status IntParam(const HttpRequest& req, const char* name, int64_t* out) {
  std::string v = req.Param(name);
  if (v.empty()) return absl::OkStatus();
  if (!absl::SimpleAtoi(v, out) || *out < 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, " '", v, "' is not a whole number"));
  }
  return absl::OkStatus();
}

}  // namespace

HttpResponse DtmHttpApi::FromStatus(const absl::Status& s) {
  const std::string msg(s.message());
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return Success();
    case absl::StatusCode::kInvalidArgument:
      return JsonError(400, msg);
    case absl::StatusCode::kResourceExhausted:
      return JsonError(413, msg);
    case absl::StatusCode::kPermissionDenied:
      return JsonError(403, msg);
    case absl::StatusCode::kUnauthenticated: {
      HttpResponse r = JsonError(401, msg);
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return Json(DtmResultJson("FAILURE", msg), 409);
    case absl::StatusCode::kUnavailable:
      return JsonError(503, msg);
    case absl::StatusCode::kDeadlineExceeded:
      return JsonError(504, msg);
    default:
      return JsonError(500, msg);
  }
}

void DtmHttpApi::Register(HttpRouter* router) {
  auto route = [&](const char* method, const char* name, Handler handler) {
    router->Handle(method, absl::StrCat(kPrefix, name),
                   [this, handler](const HttpRequest& req, HttpResponder respond) {
                     auto it = req.headers.find("authorization");
                     absl::StatusOr<Caller> caller =
                         Authenticate(limits_.auth_tokens.get(),
                                      it == req.headers.end() ? absl::string_view() : it->second);
                     if (!caller.ok()) return respond(FromStatus(caller.status()));
                     (this->*handler)(req, *caller, std::move(respond));
                   });
  };
  route("GET", "newGid", &DtmHttpApi::NewGid);
  router->Handle("GET", absl::StrCat(kPrefix, "version"),
                 [](const HttpRequest&, const HttpResponder& respond) {
                   respond(Json(absl::StrCat("{\"version\":\"", kVersion, "\"}")));
                 });
  router->Handle("GET", "/api/ping", [](const HttpRequest&, const HttpResponder& respond) {
    respond(Json("{\"msg\":\"pong\"}"));
  });
  route("POST", "prepare", &DtmHttpApi::Prepare);
  route("POST", "submit", &DtmHttpApi::Submit);
  route("POST", "abort", &DtmHttpApi::Abort);
  route("POST", "forceStop", &DtmHttpApi::ForceStop);
  for (const char* name : {"registerBranch", "registerTccBranch", "registerXaBranch"}) {
    route("POST", name, &DtmHttpApi::RegisterBranch);
  }
  route("GET", "query", &DtmHttpApi::Query);
  route("GET", "all", &DtmHttpApi::All);
}

void DtmHttpApi::NewGid(const HttpRequest&, const Caller&,
                        HttpResponder respond) {  // NOLINT(performance-unnecessary-value-param)
  respond(Json(DtmSuccessJson("gid", ::dtm::NewGid())));
}

absl::StatusOr<Transaction> DtmHttpApi::NewTransaction(const HttpRequest& req, DtmRoute route,
                                                       const Caller& caller) const {
  absl::StatusOr<Transaction> t = ParseDtmTransaction(req.body, route, limits_);
  if (!t.ok()) return t.status();
  absl::Status admitted =
      CheckAdmission(route == DtmRoute::kSubmit ? &*t : nullptr, engine_->active_count(), limits_);
  if (!admitted.ok()) return admitted;
  t->creator = caller.name;
  t->traceparent = req.Header("traceparent");  // W3C trace context; the engine checks it
  t->tracestate = req.Header("tracestate");
  return t;
}

void DtmHttpApi::Prepare(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  absl::StatusOr<Transaction> t = NewTransaction(req, DtmRoute::kPrepare, caller);
  if (!t.ok()) return respond(FromStatus(t.status()));
  engine_->Prepare(
      *std::move(t),
      [respond = std::move(respond)](const absl::Status& st) { respond(FromStatus(st)); },
      caller.actor());
}

void DtmHttpApi::Submit(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  absl::StatusOr<Transaction> t = NewTransaction(req, DtmRoute::kSubmit, caller);
  if (!t.ok()) return respond(FromStatus(t.status()));
  const bool wait = t->options.wait_result;
  engine_->Submit(
      *std::move(t),
      [wait, respond = std::move(respond)](absl::StatusOr<SubmitResult> r) {
        if (!r.ok()) return respond(FromStatus(r.status()));
        absl::Status outcome = DtmSubmitOutcome(r->gid, r->status, r->rollback_reason, wait);
        if (absl::IsFailedPrecondition(outcome)) {
          return respond(Json(DtmResultJson("ONGOING", std::string(outcome.message())), 425));
        }
        respond(FromStatus(outcome));
      },
      caller.actor());
}

void DtmHttpApi::Abort(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  absl::StatusOr<Transaction> t = ParseDtmTransaction(req.body, DtmRoute::kAbort, limits_);
  if (!t.ok()) return respond(FromStatus(t.status()));
  engine_->Abort(
      t->gid, t->trans_type, t->rollback_reason,
      [respond = std::move(respond)](const absl::StatusOr<SubmitResult>& r) {
        respond(FromStatus(r.status()));
      },
      caller.actor());
}

void DtmHttpApi::ForceStop(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  absl::Status allowed = RequireAdmin(caller, "forceStop");
  if (!allowed.ok()) return respond(FromStatus(allowed));
  absl::StatusOr<Transaction> t = ParseDtmTransaction(req.body, DtmRoute::kForceStop, limits_);
  if (!t.ok()) return respond(FromStatus(t.status()));
  engine_->ForceStop(t->gid, t->rollback_reason,
                     [respond = std::move(respond)](const absl::StatusOr<Transaction>& r) {
                       respond(FromStatus(r.status()));
                     });
}

void DtmHttpApi::RegisterBranch(const HttpRequest& req, const Caller& caller,
                                HttpResponder respond) {
  absl::StatusOr<BranchRegistration> r = ParseDtmRegistration(req.body, limits_);
  if (!r.ok()) return respond(FromStatus(r.status()));
  r->actor = caller.actor();
  engine_->RegisterBranch(*std::move(r), [respond = std::move(respond)](const absl::Status& st) {
    respond(FromStatus(st));
  });
}

// One transaction as `caller` may see it: NOT_FOUND, PERMISSION_DENIED, or its redacted copy.
void DtmHttpApi::QueryFor(const Caller& caller, const std::string& gid,
                          std::function<void(absl::StatusOr<Transaction>)> done) {
  engine_->Query(gid, [caller, done = std::move(done)](absl::StatusOr<Transaction> t) {
    if (t.ok()) {
      absl::Status allowed = CheckCreator(caller, *t);
      if (!allowed.ok()) return done(allowed);
      RedactFor(caller, *t);
    }
    done(std::move(t));
  });
}

void DtmHttpApi::Query(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  std::string gid = req.Param("gid");
  absl::Status valid =
      gid.empty() ? absl::InvalidArgumentError("gid is missing: query?gid=...") : ValidateGid(gid);
  if (!valid.ok()) return respond(FromStatus(valid));
  QueryFor(caller, gid, [respond = std::move(respond)](absl::StatusOr<Transaction> t) {
    if (absl::IsNotFound(t.status())) return respond(Json(DtmQueryJson(nullptr)));
    if (!t.ok()) return respond(FromStatus(t.status()));
    respond(Json(DtmQueryJson(&*t)));
  });
}

void DtmHttpApi::All(const HttpRequest& req, const Caller& caller, HttpResponder respond) {
  std::string gid = req.Param("gid");
  if (!gid.empty()) {  // one transaction, by gid
    absl::Status valid = ValidateGid(gid);
    if (!valid.ok()) return respond(FromStatus(valid));
    QueryFor(caller, gid, [respond = std::move(respond)](absl::StatusOr<Transaction> t) {
      if (!t.ok() && !absl::IsNotFound(t.status())) return respond(FromStatus(t.status()));
      ListPage page;
      if (t.ok()) page.transactions.push_back(*std::move(t));
      respond(Json(DtmListJson(page)));
    });
    return;
  }
  ListQuery q;
  q.max_bytes = limits_.max_list_bytes;
  q.page_size = 100;  // DTM's default
  q.page_token = req.Param("position");
  int64_t limit = q.page_size;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  absl::Status valid = IntParam(req, "limit", &limit);
  if (valid.ok()) valid = IntParam(req, "createTimeStart", &start_ms);
  if (valid.ok()) valid = IntParam(req, "createTimeEnd", &end_ms);
  if (valid.ok() && (limit < 1 || limit > limits_.max_page_size)) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("limit '", limit, "' is outside [1, ", limits_.max_page_size, "]"));
  }
  std::string status = req.Param("status");
  if (valid.ok() && !status.empty()) {
    q.status = ParseDtmStatus(status);
    if (q.status == GlobalStatus::kUnspecified) {
      valid = absl::InvalidArgumentError(absl::StrCat(
          "status '", status, "' is not prepared, submitted, aborting, succeed or failed"));
    }
  }
  std::string type = req.Param("transType");
  if (valid.ok() && !type.empty()) {
    q.trans_type = ParseDtmTransType(type);
    if (q.trans_type == TransType::kUnspecified) {
      valid = absl::InvalidArgumentError(
          absl::StrCat("transType '", type, "' is not saga, tcc, msg or xa"));
    }
  }
  if (!valid.ok()) return respond(FromStatus(valid));
  q.page_size = static_cast<int>(limit);
  if (start_ms > 0) q.created_after = absl::FromUnixMillis(start_ms);
  if (end_ms > 0) q.created_before = absl::FromUnixMillis(end_ms);
  ScopeList(caller, q);
  engine_->List(std::move(q),
                [caller, respond = std::move(respond)](absl::StatusOr<ListPage> page) {
                  if (!page.ok()) return respond(FromStatus(page.status()));
                  for (Transaction& t : page->transactions) RedactFor(caller, t);
                  respond(Json(DtmListJson(*page)));
                });
}

}  // namespace dtm
