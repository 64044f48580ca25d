#include "server/model/transaction.h"

#include <gtest/gtest.h>

namespace dtm {
namespace {

TEST(CleanBranchMessageTest, KeepsValidTextAsItIs) {
  EXPECT_EQ(CleanBranchMessage("ABORTED: insufficient funds"), "ABORTED: insufficient funds");
  EXPECT_EQ(CleanBranchMessage("solde insuffisant: 3\xE2\x82\xAC, \xF0\x9F\x92\xB8\ttab"),
            "solde insuffisant: 3\xE2\x82\xAC, \xF0\x9F\x92\xB8\ttab");
}

TEST(CleanBranchMessageTest, ReplacesWhatIsNotUtf8OrIsAControlCharacter) {
  // Latin-1 'é', a lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
  EXPECT_EQ(CleanBranchMessage("caf\xE9 \x80 \xE2\x82 \xC0\xAF \xED\xA0\x80"),
            "caf\xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD "
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(CleanBranchMessage(std::string("a\0b\nc\x7F", 6)), "a b c ");
}

TEST(CleanBranchMessageTest, CutsLongTextAtACharacterBoundary) {
  std::string euros;
  for (int i = 0; i < 10; ++i) euros += "\xE2\x82\xAC";  // 30 bytes
  std::string cut = CleanBranchMessage(euros, 10);
  EXPECT_EQ(cut, "\xE2\x82\xAC\xE2\x82\xAC...");  // 6 bytes of whole characters + "..."
  EXPECT_LE(cut.size(), 10u);
  EXPECT_EQ(CleanBranchMessage(std::string(2000, 'x')).size(), 1024u);
  EXPECT_EQ(CleanBranchMessage("short", 10), "short");
}

}  // namespace
}  // namespace dtm
