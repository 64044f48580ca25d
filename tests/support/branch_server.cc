#include "tests/support/branch_server.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dtm::test {

std::string BranchCallRecord::Meta(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? "" : it->second;
}

std::string BranchCallRecord::name() const { return method.substr(method.rfind('/') + 1); }

TestBranchServer::TestBranchServer(bool record) : CallLog(record) {
  auto server =
      GenericBranchServer::Start([this](const IncomingBranchCall& call) { return Handle(call); });
  if (!server.ok()) {
    std::fprintf(stderr, "TestBranchServer: %s\n", server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
}

TestBranchServer::~TestBranchServer() { Shutdown(); }

void TestBranchServer::Shutdown() { server_->Shutdown(); }

std::string TestBranchServer::address() const { return server_->address(); }

std::string TestBranchServer::Target(const std::string& name) const {
  return server_->Target(name);
}

void TestBranchServer::SetBehavior(Behavior behavior) {
  absl::MutexLock lock(&mu_);
  behavior_ = std::move(behavior);
}

BranchReply TestBranchServer::Handle(const IncomingBranchCall& in) {
  BranchCallRecord call;
  call.method = in.method;
  call.branch = in.branch;
  call.metadata.insert(in.metadata.begin(), in.metadata.end());
  call.payload = in.payload;
  call = Record(std::move(call));
  Behavior behavior;
  {
    absl::MutexLock lock(&mu_);
    behavior = behavior_;
  }
  return behavior ? behavior(call) : BranchReply{};
}

BranchCallRecord CallLog::Record(BranchCallRecord call) {
  absl::MutexLock lock(&mu_);
  call.seq = ++count_;
  call.time = absl::Now();
  if (record_) calls_.push_back(call);
  return call;
}

std::vector<BranchCallRecord> CallLog::Calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<BranchCallRecord> CallLog::CallsFor(const std::string& gid) const {
  std::vector<BranchCallRecord> out;
  absl::MutexLock lock(&mu_);
  for (const BranchCallRecord& c : calls_) {
    if (c.gid() == gid) out.push_back(c);
  }
  return out;
}

std::vector<std::string> CallLog::NamesFor(const std::string& gid) const {
  std::vector<std::string> out;
  for (const BranchCallRecord& c : CallsFor(gid)) out.push_back(c.name());
  return out;
}

int64_t CallLog::call_count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

bool CallLog::WaitFor(const std::string& gid,
                      const std::function<bool(const std::vector<BranchCallRecord>&)>& pred,
                      absl::Duration timeout) const {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  for (;;) {
    std::vector<BranchCallRecord> mine;
    for (const BranchCallRecord& c : calls_) {
      if (c.gid() == gid) mine.push_back(c);
    }
    if (pred(mine)) return true;
    // Woken by every new call (count_ changes) or the deadline.
    int64_t seen = count_;
    auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return count_ != seen; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) return pred(mine);
  }
}

}  // namespace dtm::test
