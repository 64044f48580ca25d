// Scripted replies of a TestBranchServer: per (gid, branch name) sequences of answers.
#ifndef DTM_TESTS_SUPPORT_BRANCH_SCRIPT_H_
#define DTM_TESTS_SUPPORT_BRANCH_SCRIPT_H_

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/branch.h"
#include "tests/support/branch_server.h"

namespace dtm::test {

inline BranchReply Ok() { return {}; }
inline BranchReply Code(grpc::StatusCode c, const std::string& msg) {
  return {grpc::Status(c, msg)};
}
// Built with the client library's branch helpers, so the e2e tests also prove that the codes
// they produce mean FAILURE and ONGOING to the coordinator.
inline BranchReply Failure() { return {BranchFailure("refused by test")}; }
inline BranchReply Ongoing() { return {BranchOngoing("not yet")}; }
inline BranchReply Transient() { return Code(grpc::StatusCode::UNAVAILABLE, "flaky"); }
inline BranchReply Hang() { return {grpc::Status::OK, true}; }

// Per-(gid, branch name) reply sequences; the last reply repeats; default OK.
class Script {
 public:
  void Set(const std::string& gid, const std::string& name, std::vector<BranchReply> replies) {
    absl::MutexLock lock(&mu_);
    replies_[{gid, name}] = std::move(replies);
    next_[{gid, name}] = 0;
  }
  BranchReply Next(const BranchCallRecord& c) {
    absl::MutexLock lock(&mu_);
    auto key = std::make_pair(c.gid(), c.name());
    auto it = replies_.find(key);
    if (it == replies_.end() || it->second.empty()) return Ok();
    size_t& i = next_[key];
    BranchReply r = it->second[std::min(i, it->second.size() - 1)];
    ++i;
    return r;
  }

 private:
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::vector<BranchReply>> replies_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, size_t> next_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_BRANCH_SCRIPT_H_
