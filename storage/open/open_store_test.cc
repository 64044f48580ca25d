#include "storage/open/open_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dtm {
namespace {

TEST(OpenStoreTest, NamesTheBadUrl) {
  auto s = OpenStore("redis://x");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("redis://x"));
  auto missing_dir = OpenStore("sqlite:///no/such/dir/x.db");
  EXPECT_FALSE(missing_dir.ok());
  EXPECT_THAT(std::string(missing_dir.status().message()), ::testing::HasSubstr("/no/such/dir"));
}

TEST(OpenStoreTest, DescribesPostgresWithoutCredentials) {
  std::string d = DescribeStore("postgresql://alice:secret@db1:5433/dtm");
  EXPECT_THAT(d, ::testing::HasSubstr("db1"));
  EXPECT_THAT(d, ::testing::Not(::testing::HasSubstr("secret")));
  EXPECT_EQ(DescribeStore("sqlite://dtm.db"), "sqlite://dtm.db");
}

}  // namespace
}  // namespace dtm
