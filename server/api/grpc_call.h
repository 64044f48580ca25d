// What every gRPC face of the coordinator (dtm.v1.Coordinator, DTM's dtmgimp.Dtm) does with an
// incoming call before its own work: find out who sent it, and finish it at once when the
// answer is known without the engine.
#ifndef DTM_SERVER_API_GRPC_CALL_H_
#define DTM_SERVER_API_GRPC_CALL_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/api/common/auth.h"
#include "server/model/transaction.h"

namespace dtm {

// Who sent the call: its "authorization: Bearer <token>" metadata checked against `tokens`
// (auth.h); an anonymous Caller when `tokens` is null (clients are not authenticated).
absl::StatusOr<Caller> CallerOfCall(const grpc::CallbackServerContext& ctx, AuthTokens* tokens);

// Copies the call's W3C trace context ("traceparent" and "tracestate" metadata) into a new
// transaction; the engine checks it (server/model/trace_context.h).
void TakeTraceContext(const grpc::CallbackServerContext& ctx, Transaction& txn);

// Finishes the call with `s` (client/common/grpc_status.h's mapping) and returns its reactor,
// for a handler that answers without waiting for the engine.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s);

}  // namespace dtm

#endif  // DTM_SERVER_API_GRPC_CALL_H_
