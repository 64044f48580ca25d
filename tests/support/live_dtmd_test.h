// LiveDtmdTest: a GoogleTest fixture whose suite shares one real dtmd process, recording
// branch services (gRPC and HTTP) answering from one Script, and a client. `Suite` (CRTP) may
// define
//   static std::string DtmdStore(const std::string& dir);   // default: TestStore(dir)
//   static std::vector<std::string> DtmdArgs();             // default: short lease/recovery
// and override SetUpTestSuite (calling this one first) to change the branch behavior.
#ifndef DTM_TESTS_SUPPORT_LIVE_DTMD_TEST_H_
#define DTM_TESTS_SUPPORT_LIVE_DTMD_TEST_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/coordinator_client.h"
#include "tests/support/branch_script.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/http_branch_server.h"

namespace dtm::test {

template <typename Suite>
class LiveDtmdTest : public ::testing::Test {
 public:
  static std::string DtmdStore(const std::string& dir) { return TestStore(dir); }
  static std::vector<std::string> DtmdArgs() { return {"--lease=1s", "--recovery_interval=100ms"}; }

  static void SetUpTestSuite() {
    branches_ = new TestBranchServer();
    script_ = new Script();
    branches_->SetBehavior([](const BranchCallRecord& c) { return script_->Next(c); });
    http_branches_ = new TestHttpBranchServer();
    http_branches_->SetBehavior([](const BranchCallRecord& c) { return ToHttp(script_->Next(c)); });
    dir_ = new std::string(MakeTempDir());
    dtmd_ = new DtmdProcess(Suite::DtmdStore(*dir_), Suite::DtmdArgs());
    absl::Status st = dtmd_->Start();
    ASSERT_TRUE(st.ok()) << st;
    client_ = CoordinatorClient::Connect(dtmd_->address()).release();
  }
  static void TearDownTestSuite() {
    delete client_;
    if (dtmd_->running()) {
      EXPECT_EQ(dtmd_->Terminate(), 0) << dtmd_->Log();
    }
    delete dtmd_;
    delete branches_;
    delete http_branches_;
    delete script_;
    delete dir_;
  }

 protected:
  // A gid unique in the run, named after the test.
  std::string Gid() {
    return absl::StrCat(::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                        ++counter_);
  }
  static v1::Status StatusOf(const std::string& gid) {
    auto t = client_->Query(gid);
    return t.ok() ? t->status() : v1::STATUS_UNSPECIFIED;
  }
  static bool WaitStatus(const std::string& gid, v1::Status s) {
    return WaitUntil([&] { return StatusOf(gid) == s; });
  }

  static inline TestBranchServer* branches_ = nullptr;
  static inline TestHttpBranchServer* http_branches_ = nullptr;
  static inline Script* script_ = nullptr;
  static inline std::string* dir_ = nullptr;
  static inline DtmdProcess* dtmd_ = nullptr;
  static inline CoordinatorClient* client_ = nullptr;
  static inline int counter_ = 0;
};

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_LIVE_DTMD_TEST_H_
