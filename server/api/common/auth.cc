#include "server/api/common/auth.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/runtime/log.h"

namespace dtm {
namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("._~+/=-").find(c) != absl::string_view::npos;
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("_.@-").find(c) != absl::string_view::npos;
}

// Compares without stopping at the first difference, so that how long a comparison takes
// does not tell how much of a guessed token was right.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// What identifies the file's current version: inode, size, modification and change times (a
// copy that keeps an old modification time still changes the inode or the change time).
absl::StatusOr<std::string> FileVersion(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read the tokens file '", path, "'"));
  }
  return absl::StrCat(st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec,
                      ":", st.st_ctim.tv_sec, ".", st.st_ctim.tv_nsec);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the tokens file '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::vector<AuthTokens::Entry>> AuthTokens::Parse(absl::string_view text,
                                                                 const std::string& source) {
  std::vector<Entry> entries;
  std::set<std::string> tokens;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](absl::string_view why) {
      // The line is not quoted: it holds a token.
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": ", why));
    };
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() != 3) return bad("expected '<token> <name> <role>'");
    Entry e;
    e.token = std::string(fields[0]);
    e.name = std::string(fields[1]);
    if (e.token.size() < 16 || e.token.size() > 256) {
      return bad("a token has 16 to 256 characters");
    }
    for (char c : e.token) {
      if (!IsTokenChar(c)) return bad("a token holds only A-Z a-z 0-9 and . _ ~ + / = -");
    }
    if (e.name.empty() || e.name.size() > 64) return bad("a name has 1 to 64 characters");
    for (char c : e.name) {
      if (!IsNameChar(c)) {
        // The value is not shown: with the columns swapped, it would be a token.
        return bad("a name holds a character other than A-Z a-z 0-9 _ . @ -");
      }
    }
    if (fields[2] == "admin") {
      e.admin = true;
    } else if (fields[2] != "submit") {
      return bad("the role is not submit or admin (no value is shown: it could be a token)");
    }
    if (!tokens.insert(e.token).second) return bad("this token is already on an earlier line");
    entries.push_back(std::move(e));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " holds no token: every client would be refused"));
  }
  return entries;
}

absl::StatusOr<std::unique_ptr<AuthTokens>> AuthTokens::Load(const std::string& path) {
  absl::StatusOr<std::string> version = FileVersion(path);
  if (!version.ok()) return version.status();
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<Entry>> entries = Parse(*text, path);
  if (!entries.ok()) return entries.status();
  return std::unique_ptr<AuthTokens>(new AuthTokens(path, *std::move(entries), *version));
}

AuthTokens::AuthTokens(std::string path, std::vector<Entry> entries, std::string version)
    : path_(std::move(path)),
      entries_(std::move(entries)),
      version_(std::move(version)),
      next_check_(absl::Now() + absl::Seconds(1)) {}

void AuthTokens::MaybeReload() {
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    if (now < next_check_) return;
    next_check_ = now + absl::Seconds(1);
  }
  absl::Status s = ReloadIfChanged();
  if (!s.ok()) {
    Log(LogLevel::kWarning, "keeping the tokens read before").Field("error", s.message());
  }
}

absl::Status AuthTokens::ReloadIfChanged() {
  absl::StatusOr<std::string> version = FileVersion(path_);
  if (!version.ok()) return version.status();
  {
    absl::MutexLock lock(&mu_);
    if (*version == version_) return absl::OkStatus();
    version_ = *version;
  }
  absl::StatusOr<std::string> text = ReadFile(path_);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<Entry>> entries = Parse(*text, path_);
  if (!entries.ok()) return entries.status();
  absl::MutexLock lock(&mu_);
  entries_ = *std::move(entries);
  Log(LogLevel::kInfo, "read tokens")
      .Field("count", static_cast<int64_t>(entries_.size()))
      .Field("file", path_);
  return absl::OkStatus();
}

absl::StatusOr<Caller> AuthTokens::Authenticate(absl::string_view authorization) {
  absl::string_view token = absl::StripAsciiWhitespace(authorization);
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "no credentials: this dtmd needs 'authorization: Bearer <token>' on every call");
  }
  if (token.size() < 7 || !absl::EqualsIgnoreCase(token.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError("authorization is not 'Bearer <token>'");
  }
  token = absl::StripLeadingAsciiWhitespace(token.substr(7));
  MaybeReload();
  absl::MutexLock lock(&mu_);
  const Entry* found = nullptr;
  for (const Entry& e : entries_) {
    if (ConstantTimeEquals(e.token, token)) found = &e;
  }
  if (found == nullptr) return absl::UnauthenticatedError("the bearer token is not known");
  return Caller{found->name, found->admin, true};
}

absl::StatusOr<Caller> Authenticate(AuthTokens* tokens, absl::string_view authorization) {
  if (tokens == nullptr) return Caller{};
  return tokens->Authenticate(authorization);
}

absl::Status RequireAdmin(const Caller& caller, absl::string_view action) {
  if (caller.admin) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(action, " needs the admin role; '", caller.name, "' has the submit role"));
}

absl::Status CheckCreator(const Caller& caller, const Transaction& t) {
  if (caller.admin || t.creator == caller.name) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("transaction '", t.gid,
                                                  "' belongs to another client; '", caller.name,
                                                  "' (submit role) acts only on its own"));
}

void RedactFor(const Caller& caller, Transaction& t) {
  if (caller.admin) return;
  for (auto& [key, value] : t.options.branch_headers) value = kRedacted;
}

void ScopeList(const Caller& caller, ListQuery& q) {
  if (!caller.admin) q.creator = caller.name;
}

void CheckOwnership(const Caller& caller, const std::string& gid, const QueryFn& query,
                    std::function<void(const absl::Status&)> then) {
  if (caller.admin) return then(absl::OkStatus());
  query(gid, [caller, then = std::move(then)](const absl::StatusOr<Transaction>& t) {
    if (absl::IsNotFound(t.status())) return then(absl::OkStatus());
    if (!t.ok()) return then(t.status());
    then(CheckCreator(caller, *t));
  });
}

}  // namespace dtm
