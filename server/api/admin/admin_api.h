// AdminApi: dtm.v1's inspection and steering calls (List, Query, RetryNow, ForceStop) as JSON
// over dtmd's HTTP port, for the admin page (server/admin/) and for curl. The messages are
// dtm.v1's, in protobuf's JSON mapping with the proto's field names (as `dtmctl --json`
// prints them): times are RFC 3339 strings, 64-bit integers strings, enums their names.
//
// Routes:
//   GET  /v1/transactions?status=&trans_type=&gid_prefix=&created_after=&created_before=
//        &page_size=&page_token=
//        A dtm.v1.ListResponse, newest first (transactions without branches). status and
//        trans_type are enum names (SUBMITTED, saga: any case), the times RFC 3339; the same
//        checks and limits as the gRPC List (page_size 0..1000, 0: 50).
//   GET  /v1/transactions/{gid}               the dtm.v1.Transaction with its branches
//   POST /v1/transactions/{gid}:retryNow      {} once the waiting branches are due now
//   POST /v1/transactions/{gid}:forceStop     body {"reason": "..."} (required, non-empty):
//        the dtm.v1.Transaction, now FAILED, without compensation
// A transaction's branches carry no payload unless the request says ?payloads=true; then each
// branch has "payload", its bytes in base64 (as the JSON mapping writes bytes).
//
// Errors are {"code": "<gRPC code name>", "message": "..."} with INVALID_ARGUMENT 400 (the
// message names the parameter and its value), UNAUTHENTICATED 401, PERMISSION_DENIED 403,
// NOT_FOUND 404 (also an unknown route under /v1/), FAILED_PRECONDITION and ALREADY_EXISTS 409
// (e.g. a force-stop of a finished transaction), RESOURCE_EXHAUSTED 429, UNAVAILABLE 503,
// anything else 500; a known route with another method is 405.
//
// Authentication and roles are those of dtm.v1.Coordinator (auth.h): with --auth_tokens_file
// every route needs "Authorization: Bearer <token>"; List shows a submit token only its own
// transactions, Query and RetryNow act only on its own, ForceStop needs the admin role, and
// branch_headers' values are redacted for a non-admin. A POST that a browser sends from a page
// of another origin (its Origin header does not name this host) is refused with
// PERMISSION_DENIED, so that no other site can steer dtmd through a browser that can reach it.
//
// Thread-safe; handlers never block: they validate, hand the work to the Engine and answer
// from the thread that completes it.
#ifndef DTM_SERVER_API_ADMIN_ADMIN_API_H_
#define DTM_SERVER_API_ADMIN_ADMIN_API_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "server/api/common/auth.h"
#include "server/api/common/checks.h"
#include "server/engine/engine.h"
#include "server/http/http_server.h"

namespace dtm {

class AdminApi {
 public:
  AdminApi(Engine* engine, ApiLimits limits) : engine_(engine), limits_(std::move(limits)) {}

  // Adds the routes (everything under /v1/) to `router`.
  void Register(HttpRouter* router);

  // The JSON error answer for `s` (not OK): {"code": ..., "message": ...} with the status
  // above.
  static HttpResponse ErrorResponse(const absl::Status& s);

 private:
  void Route(const HttpRequest& req, HttpResponder respond);
  void List(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void Query(const HttpRequest& req, const Caller& caller, const std::string& gid,
             HttpResponder respond);
  void RetryNow(const HttpRequest& req, const Caller& caller, const std::string& gid,
                HttpResponder respond);
  void ForceStop(const HttpRequest& req, const Caller& caller, const std::string& gid,
                 HttpResponder respond);

  Engine* const engine_;
  const ApiLimits limits_;
};

}  // namespace dtm

#endif  // DTM_SERVER_API_ADMIN_ADMIN_API_H_
