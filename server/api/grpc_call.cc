#include "server/api/grpc_call.h"

#include "absl/strings/string_view.h"
#include "client/common/grpc_status.h"

namespace dtm {

void TakeTraceContext(const grpc::CallbackServerContext& ctx, Transaction& txn) {
  const auto& md = ctx.client_metadata();
  auto value = [&md](const char* key) {
    auto it = md.find(key);
    return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
  };
  txn.traceparent = value("traceparent");
  txn.tracestate = value("tracestate");
}

absl::StatusOr<Caller> CallerOfCall(const grpc::CallbackServerContext& ctx, AuthTokens* tokens) {
  if (tokens == nullptr) return Caller{};
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  absl::string_view value;
  if (it != md.end()) value = absl::string_view(it->second.data(), it->second.size());
  return Authenticate(tokens, value);
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace dtm
