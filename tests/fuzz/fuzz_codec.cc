// Fuzzes the SQL stores' column codec (storage/codec.h): what a store writes it reads back, and
// what it reads from a row (or a client's page_token) never crashes it.
//
// The input drives FuzzedDataProvider: a header map within EncodeHeaders' contract (keys
// without '=' or '\n', values without '\n') and an `after` list must round-trip exactly; the
// same bytes decoded as a column are a fixed point after one round; any page token decodes or is
// refused, and EncodePageToken's tokens always decode to their (create_time, gid); FinishPage
// keeps its page and byte bounds.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"
#include "storage/codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace dtm {
namespace fuzz {
namespace {

std::string Without(absl::string_view s, absl::string_view chars) {
  std::string out;
  for (char c : s) {
    if (chars.find(c) == absl::string_view::npos) out += c;
  }
  return out;
}

std::string Show(const std::map<std::string, std::string>& m) {
  return absl::StrJoin(m, ", ", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, Q(kv.first), "=", Q(kv.second));
  });
}

void CheckHeaders(FuzzedDataProvider& in) {
  std::map<std::string, std::string> h;
  const int n = in.ConsumeIntegralInRange(0, 8);
  for (int i = 0; i < n; ++i) {
    std::string k = Without(in.ConsumeRandomLengthString(64), "=\n");
    std::string v = Without(in.ConsumeRandomLengthString(128), "\n");
    h[k] = v;
  }
  // An empty key with an empty value encodes as "=", still a line of its own.
  const std::string encoded = EncodeHeaders(h);
  const std::map<std::string, std::string> back = DecodeHeaders(encoded);
  FUZZ_CHECK(back == h, "DecodeHeaders(EncodeHeaders({", Show(h), "})) = {", Show(back), "} via ",
             Q(encoded));
}

void CheckAfter(FuzzedDataProvider& in) {
  std::vector<int32_t> a;
  const int n = in.ConsumeIntegralInRange(0, 16);
  for (int i = 0; i < n; ++i) a.push_back(in.ConsumeIntegral<int32_t>());
  const std::string encoded = EncodeAfter(a);
  FUZZ_CHECK(DecodeAfter(encoded) == a, "DecodeAfter(EncodeAfter(", absl::StrJoin(a, ","),
             ")) differs via ", Q(encoded));
}

void CheckPageToken(FuzzedDataProvider& in) {
  Transaction t;
  const int64_t micros = in.ConsumeIntegral<int64_t>();
  t.create_time = absl::FromUnixMicros(micros);
  t.gid = in.ConsumeRandomLengthString(160);
  const std::string token = EncodePageToken(t);
  absl::StatusOr<PageCursor> c = DecodePageToken(token);
  FUZZ_CHECK(c.ok(), "EncodePageToken(", micros, ", ", Q(t.gid), ") = ", Q(token),
             " does not decode: ", c.status().ToString());
  FUZZ_CHECK(c->create_time_us == micros && c->gid == t.gid, "page token ", Q(token), " of (",
             micros, ", ", Q(t.gid), ") decodes as (", c->create_time_us, ", ", Q(c->gid), ")");
}

void CheckFinishPage(FuzzedDataProvider& in) {
  ListQuery q;
  q.page_size = in.ConsumeIntegralInRange(1, 8);
  q.max_bytes = in.ConsumeIntegralInRange<size_t>(0, 2048);
  std::vector<Transaction> rows(in.ConsumeIntegralInRange<size_t>(0, 10));
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].gid = absl::StrCat("g", i);
    rows[i].create_time = absl::FromUnixMicros(1000 - static_cast<int64_t>(i));
    rows[i].rollback_reason = std::string(in.ConsumeIntegralInRange<size_t>(0, 600), 'r');
  }
  const std::vector<Transaction> all = rows;
  ListPage page = FinishPage(rows, q);
  const size_t kept = page.transactions.size();
  FUZZ_CHECK(kept <= static_cast<size_t>(q.page_size) && kept <= all.size(), "FinishPage kept ",
             kept, " of ", all.size(), " rows, page_size ", q.page_size);
  FUZZ_CHECK(all.empty() || kept >= 1, "FinishPage kept nothing of ", all.size(), " rows");
  size_t bytes = 0;
  for (size_t i = 0; i < kept; ++i) {
    FUZZ_CHECK(page.transactions[i] == all[i], "FinishPage reordered or changed row ", i);
    bytes += TransactionBytes(all[i]);
  }
  FUZZ_CHECK(q.max_bytes == 0 || kept <= 1 || bytes <= q.max_bytes, "FinishPage kept ", bytes,
             " bytes, max_bytes ", q.max_bytes);
  if (kept < all.size()) {
    FUZZ_CHECK(kept == static_cast<size_t>(q.page_size) ||
                   (q.max_bytes > 0 && bytes + TransactionBytes(all[kept]) > q.max_bytes),
               "FinishPage stopped at ", kept, " of ", all.size(), " rows for no reason");
    FUZZ_CHECK(page.next_page_token == EncodePageToken(all[kept - 1]), "FinishPage's token ",
               Q(page.next_page_token), " is not the last kept row's");
  } else {
    FUZZ_CHECK(page.next_page_token.empty(), "FinishPage gives a token with no rows left");
  }
}

}  // namespace
}  // namespace fuzz
}  // namespace dtm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The raw bytes first, as a column or token read from a database or a client.
  const std::string raw(reinterpret_cast<const char*>(data), size);
  const std::map<std::string, std::string> headers = dtm::DecodeHeaders(raw);
  FUZZ_CHECK(dtm::DecodeHeaders(dtm::EncodeHeaders(headers)) == headers,
             "DecodeHeaders is not a fixed point after one round on ", dtm::fuzz::Q(raw));
  const std::vector<int32_t> after = dtm::DecodeAfter(raw);
  FUZZ_CHECK(dtm::DecodeAfter(dtm::EncodeAfter(after)) == after,
             "DecodeAfter is not a fixed point after one round on ", dtm::fuzz::Q(raw));
  absl::StatusOr<dtm::PageCursor> cursor = dtm::DecodePageToken(raw);
  if (cursor.ok()) {
    dtm::Transaction last;
    last.create_time = absl::FromUnixMicros(cursor->create_time_us);
    last.gid = cursor->gid;
    absl::StatusOr<dtm::PageCursor> again = dtm::DecodePageToken(dtm::EncodePageToken(last));
    FUZZ_CHECK(
        again.ok() && again->create_time_us == cursor->create_time_us && again->gid == cursor->gid,
        "page token ", dtm::fuzz::Q(raw), " re-encoded decodes differently");
  } else {
    FUZZ_CHECK(cursor.status().code() == absl::StatusCode::kInvalidArgument, "DecodePageToken(",
               dtm::fuzz::Q(raw), "): ", cursor.status().ToString());
  }

  FuzzedDataProvider in(data, size);
  dtm::fuzz::CheckHeaders(in);
  dtm::fuzz::CheckAfter(in);
  dtm::fuzz::CheckPageToken(in);
  dtm::fuzz::CheckFinishPage(in);
  return 0;
}
