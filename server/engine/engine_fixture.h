// EngineFixture: a real Engine over a real SQLite store in a fresh directory, with a fake
// branch caller, a fake clock and a manual timer queue: the engine's plumbing (strands,
// writes, timers, waiters) without sockets and without sleeping. For the tests of the engine
// and of recovery.
#ifndef DTM_SERVER_ENGINE_ENGINE_FIXTURE_H_
#define DTM_SERVER_ENGINE_ENGINE_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "server/engine/engine.h"
#include "storage/sqlite/sqlite_store.h"
#include "tests/fakes/fake_branch_caller.h"
#include "tests/fakes/fake_clock.h"
#include "tests/util/temp_dir.h"

namespace dtm::test {

class EngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = MakeTempDir("dtm-engine");
    auto s = SQLiteStore::Open(dir + "/e.db");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    EngineOptions o;
    o.self_address = "dtm:36790";
    o.owner = "me";
    engine_ = std::make_unique<Engine>(o, store_.get(), &caller_, &clock_, &timers_, &pool_);
  }
  void TearDown() override {
    engine_->Shutdown();
    pool_.Shutdown();
    store_->Close();
  }

  FakeClock clock_;
  TimerQueue timers_{&clock_, /*manual=*/true};
  ThreadPool pool_{2};
  FakeBranchCaller caller_;
  std::unique_ptr<SQLiteStore> store_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace dtm::test

#endif  // DTM_SERVER_ENGINE_ENGINE_FIXTURE_H_
