#include "storage/codec.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace dtm {
namespace {

// A row that records which columns were read, and how often.
struct RecordingRow {
  mutable std::map<int, int> reads;
  std::string Text(int col) const {
    ++reads[col];
    return "";
  }
  std::string Bytes(int col) const { return Text(col); }
  int64_t Int(int col) const {
    ++reads[col];
    return 0;
  }
  absl::Time Time(int col) const {
    ++reads[col];
    return absl::InfinitePast();
  }
};

// kGlobalColumnCount is counted from kGlobalColumns; ReadGlobalRow must read exactly that many
// columns, each once, or the column list and the reader have drifted apart.
TEST(StoreCodecTest, ReadGlobalRowReadsEveryListedColumnOnce) {
  RecordingRow row;
  ReadGlobalRow(row);
  ASSERT_EQ(row.reads.size(), static_cast<size_t>(kGlobalColumnCount));
  for (int c = 0; c < kGlobalColumnCount; ++c) EXPECT_EQ(row.reads[c], 1) << "column " << c;
}

TEST(StoreCodecTest, ReadBranchRowReadsEveryListedColumnOnce) {
  RecordingRow row;
  ReadBranchRow(row, 3);
  ASSERT_EQ(row.reads.size(), static_cast<size_t>(kBranchColumnCount));
  for (int c = 3; c < 3 + kBranchColumnCount; ++c) EXPECT_EQ(row.reads[c], 1) << "column " << c;
}

TEST(StoreCodecTest, CountsColumnsAndWritesPlaceholders) {
  static_assert(CountColumns("a") == 1 && CountColumns("a, b, c") == 3);
  EXPECT_EQ(SqlPlaceholders(3), "?,?,?");
  EXPECT_EQ(PgPlaceholders(3), "$1,$2,$3");
  EXPECT_EQ(PgPlaceholders(2, 10), "$10,$11");
}

// The partial indexes of existing databases were created with these predicates, and a query
// uses such an index only if its predicate says the same: the derived text must not change.
TEST(StoreCodecTest, StatusPredicatesKeepTheTextOfExistingIndexes) {
  EXPECT_EQ(SqlNotTerminal(), "status IN (1,2,3)");
  EXPECT_EQ(SqliteNotTerminal(), "status BETWEEN 1 AND 3");
  EXPECT_EQ(SqlTerminal(), "status IN (4,5)");
  EXPECT_EQ(SqliteTerminal(), "status BETWEEN 4 AND 5");
  EXPECT_EQ(SqlRunning(), "status IN (2,3)");
  EXPECT_EQ(SqliteRunning(), "status BETWEEN 2 AND 3");
  EXPECT_EQ(SqlPrepared(TransType::kMsg), "(status = 1 AND trans_type = 3)");
  EXPECT_EQ(SqlValue(BranchOp::kCancel), "5");
}

}  // namespace
}  // namespace dtm
