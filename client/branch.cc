#include "client/branch.h"

namespace dtm {

std::string BranchContext::Header(const grpc::ServerContextBase& ctx, const std::string& key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

BranchContext BranchContext::From(const grpc::ServerContextBase& ctx) {
  BranchContext b;
  b.gid = Header(ctx, "dtm-gid");
  b.trans_type = Header(ctx, "dtm-trans_type");
  b.branch_id = Header(ctx, "dtm-branch_id");
  b.op = Header(ctx, "dtm-op");
  b.dtm = Header(ctx, "dtm-dtm");
  b.phase2_url = Header(ctx, "dtm-phase2_url");
  return b;
}

}  // namespace dtm
