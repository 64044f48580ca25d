#include "server/api/common/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;

constexpr char kAlice[] = "alice-token-0123456789";
constexpr char kOps[] = "ops-token-abcdefghijkl";

std::string WriteTokens(const std::string& text) {
  std::string dir = test::MakeTempDir("dtm-auth");
  std::string path = absl::StrCat(dir, "/tokens");
  std::ofstream(path) << text;
  return path;
}

TEST(AuthTokensTest, ParsesNamesAndRoles) {
  auto entries = AuthTokens::Parse(
      absl::StrCat("# clients\n\n", kAlice, " alice submit\n  ", kOps, "   ops-1@team   admin  \n"),
      "f");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].name, "alice");
  EXPECT_FALSE((*entries)[0].admin);
  EXPECT_EQ((*entries)[1].name, "ops-1@team");
  EXPECT_TRUE((*entries)[1].admin);
}

TEST(AuthTokensTest, RefusesBadLinesNamingTheLineButNotTheToken) {
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {"short alice submit\n", "f:1: a token has 16 to 256"},
      {absl::StrCat(kAlice, " alice\n"), "f:1: expected '<token> <name> <role>'"},
      {absl::StrCat("\n", kAlice, " alice root\n"), "f:2: the role is not submit or admin"},
      {absl::StrCat(kAlice, " al/ice submit\n"), "f:1: a name holds a character"},
      // Columns swapped: the token (where the name belongs) is not echoed.
      {absl::StrCat("alice-the-client ", kAlice, "+/= submit\n"), "f:1: a name holds a character"},
      {"bad\"token-0123456789 alice submit\n", "a token holds only"},
      {absl::StrCat(kAlice, " a submit\n", kAlice, " b admin\n"), "f:2: this token is already"},
      {"# nothing\n", "holds no token"},
  };
  for (const Case& c : cases) {
    auto entries = AuthTokens::Parse(c.text, "f");
    ASSERT_FALSE(entries.ok()) << c.text;
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(entries.status().message(), HasSubstr(c.expected));
    EXPECT_THAT(entries.status().message(), ::testing::Not(HasSubstr(kAlice)));
  }
}

TEST(AuthTokensTest, AuthenticatesBearerTokens) {
  auto tokens =
      AuthTokens::Load(WriteTokens(absl::StrCat(kAlice, " alice submit\n", kOps, " ops admin\n")));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  absl::StatusOr<Caller> alice = (*tokens)->Authenticate(absl::StrCat("Bearer ", kAlice));
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_FALSE(alice->admin);
  EXPECT_TRUE(alice->authenticated);
  absl::StatusOr<Caller> ops = (*tokens)->Authenticate(absl::StrCat("bearer  ", kOps));
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_TRUE(ops->admin);

  for (const std::string& bad : {std::string(), std::string("Basic abc"),
                                 absl::StrCat("Bearer ", kAlice, "x"), std::string(kAlice)}) {
    absl::StatusOr<Caller> c = (*tokens)->Authenticate(bad);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_THAT(c.status().message(), ::testing::Not(HasSubstr(kAlice)));
  }
  EXPECT_EQ(AuthTokens::Load("/nonexistent/tokens").status().code(), absl::StatusCode::kNotFound);
}

TEST(AuthTokensTest, ReadsTheFileAgainWhenItChangesAndKeepsTheOldTokensForABadOne) {
  std::string path = WriteTokens(absl::StrCat(kAlice, " alice submit\n"));
  auto tokens = AuthTokens::Load(path);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  // A new file with a new modification time (rename, as an editor or a Kubernetes Secret
  // update does).
  auto replace = [&](const std::string& text, int seconds_later) {
    std::string tmp = path + ".new";
    std::ofstream(tmp) << text;
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec += seconds_later;
    times[1] = times[0];
    ASSERT_EQ(utimensat(AT_FDCWD, tmp.c_str(), times, 0), 0);
    ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
  };
  EXPECT_TRUE((*tokens)->ReloadIfChanged().ok());  // unchanged
  replace(absl::StrCat(kOps, " ops admin\n"), 10);
  EXPECT_TRUE((*tokens)->ReloadIfChanged().ok());
  EXPECT_TRUE((*tokens)->Authenticate(absl::StrCat("Bearer ", kOps)).ok());
  EXPECT_FALSE((*tokens)->Authenticate(absl::StrCat("Bearer ", kAlice)).ok());

  replace("not a tokens file\n", 20);
  absl::Status refused = (*tokens)->ReloadIfChanged();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr(":1: expected"));
  EXPECT_TRUE((*tokens)->Authenticate(absl::StrCat("Bearer ", kOps)).ok());
}

TEST(AuthRulesTest, AdminsDoEverythingSubmittersOnlyTheirOwn) {
  Caller anonymous;  // no tokens file
  Caller alice{"alice", false, true};
  Caller ops{"ops", true, true};
  EXPECT_TRUE(RequireAdmin(anonymous, "ForceStop").ok());
  EXPECT_TRUE(RequireAdmin(ops, "ForceStop").ok());
  absl::Status refused = RequireAdmin(alice, "ForceStop");
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("ForceStop needs the admin role; 'alice'"));

  Transaction t;
  t.gid = "g1";
  t.creator = "bob";
  t.options.branch_headers = {{"authorization", "Bearer bobs-secret"}};
  EXPECT_TRUE(CheckCreator(ops, t).ok());
  EXPECT_EQ(CheckCreator(alice, t).code(), absl::StatusCode::kPermissionDenied);
  t.creator = "alice";
  EXPECT_TRUE(CheckCreator(alice, t).ok());

  Transaction seen = t;
  RedactFor(ops, seen);
  EXPECT_EQ(seen.options.branch_headers.at("authorization"), "Bearer bobs-secret");
  RedactFor(alice, seen);
  EXPECT_EQ(seen.options.branch_headers.at("authorization"), kRedacted);

  ListQuery q;
  ScopeList(ops, q);
  EXPECT_EQ(q.creator, "");
  ScopeList(alice, q);
  EXPECT_EQ(q.creator, "alice");
}

TEST(AuthRulesTest, OwnershipLooksTheTransactionUpOnlyForSubmitters) {
  Transaction bobs;
  bobs.gid = "g1";
  bobs.creator = "bob";
  int queries = 0;
  QueryFn query = [&](const std::string& gid,
                      const std::function<void(absl::StatusOr<Transaction>)>& done) {
    ++queries;
    if (gid == "g1") return done(bobs);
    if (gid == "down") return done(absl::UnavailableError("store down"));
    done(absl::NotFoundError("no such gid"));
  };
  auto check = [&](const Caller& c, const std::string& gid) {
    absl::Status out = absl::UnknownError("not answered");
    CheckOwnership(c, gid, query, [&](const absl::Status& s) { out = s; });
    return out;
  };
  EXPECT_TRUE(check(Caller{"ops", true, true}, "g1").ok());
  EXPECT_EQ(queries, 0);
  EXPECT_EQ(check(Caller{"alice", false, true}, "g1").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(check(Caller{"bob", false, true}, "g1").ok());
  EXPECT_TRUE(check(Caller{"alice", false, true}, "new-gid").ok());
  EXPECT_EQ(check(Caller{"alice", false, true}, "down").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(queries, 4);
}

}  // namespace
}  // namespace dtm
