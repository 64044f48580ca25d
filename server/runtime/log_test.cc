#include "server/runtime/log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dtm {
namespace {

std::vector<std::string>* g_lines = nullptr;
void Capture(const std::string& line) { g_lines->push_back(line); }

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_lines = &lines_;
    SetLogSink(&Capture);
  }
  void TearDown() override {
    SetLogSink(nullptr);
    ConfigureLog(LogLevel::kInfo, LogFormat::kText);
    g_lines = nullptr;
  }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, TextLinesKeepDtmdsPrefixAndQuoteWhatNeedsIt) {
  ConfigureLog(LogLevel::kInfo, LogFormat::kText);
  Log(LogLevel::kInfo, "transaction status")
      .Field("gid", "g1")
      .Field("error", "ABORTED: no \"funds\"")
      .Field("attempt", 3)
      .Field("empty", "");
  Log(LogLevel::kWarning, "stuck").Field("gid", "g2");
  LogLine(LogLevel::kInfo, "grpc said: one\ntwo");
  ASSERT_EQ(lines_.size(), 3u);
  EXPECT_EQ(lines_[2], "dtmd: grpc said: one\\ntwo\n");
  EXPECT_EQ(lines_[0],
            "dtmd: transaction status gid=g1 error=\"ABORTED: no \\\"funds\\\"\" attempt=3\n");
  EXPECT_EQ(lines_[1], "dtmd: WARNING: stuck gid=g2\n");
}

TEST_F(LogTest, JsonLinesAreOneObjectEach) {
  ConfigureLog(LogLevel::kDebug, LogFormat::kJson);
  Log(LogLevel::kError, "commit failed").Field("gid", "g\n1").Field("attempt", 7);
  ASSERT_EQ(lines_.size(), 1u);
  ASSERT_EQ(lines_[0].back(), '\n');
  EXPECT_EQ(lines_[0].find('\n'), lines_[0].size() - 1);  // newlines inside are escaped
  auto j = nlohmann::json::parse(lines_[0]);
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["msg"], "commit failed");
  EXPECT_EQ(j["gid"], "g\n1");
  EXPECT_EQ(j["attempt"], 7);
  EXPECT_THAT(j["ts"].get<std::string>(), ::testing::EndsWith("Z"));
}

TEST_F(LogTest, LevelFilters) {
  ConfigureLog(LogLevel::kWarning, LogFormat::kText);
  LogLine(LogLevel::kInfo, "hidden");
  LogLine(LogLevel::kDebug, "hidden too");
  LogLine(LogLevel::kError, "shown");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "dtmd: ERROR: shown\n");
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
}

TEST_F(LogTest, AlwaysLinesIgnoreTheLevel) {
  ConfigureLog(LogLevel::kError, LogFormat::kText);
  Log(Log::Always{}, LogLevel::kInfo, "serving on port 1").Field("listen", "a:1");
  Log(LogLevel::kInfo, "hidden").Field("listen", "a:1");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "dtmd: serving on port 1 listen=a:1\n");
}

TEST_F(LogTest, InvalidUtf8DoesNotLoseTheJsonLine) {
  ConfigureLog(LogLevel::kInfo, LogFormat::kJson);
  Log(LogLevel::kInfo, "branch answered").Field("error", std::string("bad \xff byte"));
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_TRUE(nlohmann::json::accept(lines_[0])) << lines_[0];
}

TEST(AsyncLogTest, LinesLoggedWhileItRunsAreWrittenByStop) {
  // stderr is where they go: check through a file put in its place (a file, not a pipe: a
  // write to it never blocks, whatever else is written to stderr meanwhile).
  char path[] = "/tmp/dtm-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(dup2(fd, STDERR_FILENO), STDERR_FILENO);
  StartAsyncLog();
  for (int i = 0; i < 100; ++i) Log(LogLevel::kInfo, "async").Field("i", i);
  StopAsyncLog();
  LogLine(LogLevel::kInfo, "after stop");  // written synchronously
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  char buf[4096];
  ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fd);
  unlink(path);
  EXPECT_THAT(out, ::testing::StartsWith("dtmd: async i=0\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("dtmd: async i=99\ndtmd: after stop\n"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 101) << out;
}

TEST(LogFlagsTest, ParseNamesTheFlagAndValue) {
  LogLevel level;
  LogFormat format;
  EXPECT_TRUE(ParseLogLevel("WARN", &level).ok());
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_THAT(std::string(ParseLogLevel("loud", &level).message()),
              ::testing::HasSubstr("--log_level 'loud'"));
  EXPECT_TRUE(ParseLogFormat("json", &format).ok());
  EXPECT_EQ(format, LogFormat::kJson);
  EXPECT_THAT(std::string(ParseLogFormat("xml", &format).message()),
              ::testing::HasSubstr("--log_format 'xml'"));
}

}  // namespace
}  // namespace dtm
