#include "server/runtime/thread_name.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace dtm {
namespace {

// The name a new thread reads back after NameThisThread(name).
std::string NameReadBackAfterNaming(const std::string& name) {
  std::string seen;
  std::thread t([&] {
    NameThisThread(name);
    seen = ThisThreadName();
  });
  t.join();
  return seen;
}

TEST(ThreadNameTest, NamesTheCallingThread) {
  EXPECT_EQ(NameReadBackAfterNaming("dtm-test"), "dtm-test");
}

TEST(ThreadNameTest, ANameOverFifteenBytesIsCutThere) {
  EXPECT_EQ(NameReadBackAfterNaming("dtm-a-name-longer-than-fifteen-bytes"), "dtm-a-name-long");
}

}  // namespace
}  // namespace dtm
