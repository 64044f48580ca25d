// DtmHttpApi: DTM's HTTP API (/api/dtmsvr/...), the second face of the engine beside
// dtm.v1.Coordinator, so that services and SDKs written for DTM's HTTP API work against dtmd
// by changing only the coordinator's address. A transaction submitted here is the same as
// one submitted over gRPC: Query, List and dtmctl see it, and the other way round.
//
// Routes: GET newGid, version, query?gid=, all; POST prepare, submit, abort, forceStop,
// registerBranch (and DTM's older names registerTccBranch, registerXaBranch); GET /api/ping.
// Trans types saga, tcc, msg and xa (an xa registers each branch with one "url", its phase-2
// target, called with op commit or rollback).
// Answers follow DTM's convention, which its SDKs read: 200 {"dtm_result":"SUCCESS"}; a state
// change the transaction refuses (submit of a finished one, abort of a saga, register on an
// unknown or finished gid) is 409 {"dtm_result":"FAILURE","message":...}; submit with
// wait_result answers 200 once the transaction succeeded, 409 once it failed, and 425
// {"dtm_result":"ONGOING"} if it is still running when its first round stalls (DTM answers the
// same 409 for "failed" and "still running"; here they differ). Bad input is 400, an oversized
// payload 413, an unavailable database 503, each with a JSON message naming the field.
// With --auth_tokens_file every route but ping and version needs "Authorization: Bearer
// <token>" (401 without a known one, 403 for what the token's role may not do; auth.h).
//
// Thread-safe; handlers never block (the engine answers later, on its own threads).
#ifndef DTM_SERVER_API_HTTP_DTM_HTTP_API_H_
#define DTM_SERVER_API_HTTP_DTM_HTTP_API_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "server/api/common/auth.h"
#include "server/api/common/checks.h"
#include "server/api/http/dtm_json.h"
#include "server/engine/engine.h"
#include "server/http/http_server.h"

namespace dtm {

class DtmHttpApi {
 public:
  DtmHttpApi(Engine* engine, ApiLimits limits) : engine_(engine), limits_(std::move(limits)) {}

  // Adds the routes to `router`.
  void Register(HttpRouter* router);

  // The HTTP answer DTM's clients expect for `s` (see above).
  static HttpResponse FromStatus(const absl::Status& s);

 private:
  using Handler = void (DtmHttpApi::*)(const HttpRequest&, const Caller&, HttpResponder);
  void NewGid(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void Prepare(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void Submit(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void Abort(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void ForceStop(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void RegisterBranch(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void Query(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  void All(const HttpRequest& req, const Caller& caller, HttpResponder respond);
  // The transaction a prepare or submit body describes, admitted (CheckAdmission) and
  // stamped with its creator.
  absl::StatusOr<Transaction> NewTransaction(const HttpRequest& req, DtmRoute route,
                                             const Caller& caller) const;
  void QueryFor(const Caller& caller, const std::string& gid,
                std::function<void(absl::StatusOr<Transaction>)> done);

  Engine* const engine_;
  const ApiLimits limits_;
};

}  // namespace dtm

#endif  // DTM_SERVER_API_HTTP_DTM_HTTP_API_H_
