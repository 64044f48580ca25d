// Who is calling, and what they may do: bearer tokens (--auth_tokens_file) for both faces of
// the coordinator (gRPC metadata "authorization: Bearer <token>", the HTTP header of the same
// name), and the rules both faces apply once they know the caller.
//
// Without a tokens file nobody is authenticated and every caller may do everything: the quick
// start on one machine. With one, every call needs a known token, and a token's role decides:
//   submit  starts transactions and acts only on its own (Submit, Prepare, Abort,
//           RegisterBranch, Query, RetryNow of one gid); List shows only its own; the values
//           of branch_headers come back redacted.
//   admin   everything: ForceStop, RetryNow of all waiting transactions, List and Query of
//           every transaction with its headers.
// A transaction belongs to the name of the token that created it (Transaction::creator).
//
// The file: one token per line, "<token> <name> <role>", blank lines and "#" comments allowed.
// Tokens are 16..256 characters of [A-Za-z0-9._~+/=-] (what a bearer token may hold), names
// 1..64 of [A-Za-z0-9_.@-]. It is read again, at most once a second, when it changes; a file
// that no longer parses keeps the tokens read before (and is reported on stderr). Errors name
// the file and line, never a value from it (a misplaced token would end up in a log).
#ifndef DTM_SERVER_API_COMMON_AUTH_H_
#define DTM_SERVER_API_COMMON_AUTH_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/model/list_query.h"
#include "server/model/transaction.h"

namespace dtm {

// The caller of one request.
struct Caller {
  std::string name{};  // the token's name; "" without authentication
  bool admin = true;   // without authentication everyone is
  bool authenticated = false;
  // Who the engine holds to their own transactions: the name, or "" for an admin (anyone's).
  std::string actor() const { return admin ? std::string() : name; }
};

class AuthTokens {
 public:
  struct Entry {
    std::string token{};
    std::string name{};
    bool admin = false;
  };

  // Reads `path`; INVALID_ARGUMENT naming the file and line of the first bad entry,
  // NOT_FOUND when it cannot be read. At least one token is required.
  static absl::StatusOr<std::unique_ptr<AuthTokens>> Load(const std::string& path);
  // The entries of a tokens file's text (`source` names it in errors).
  static absl::StatusOr<std::vector<Entry>> Parse(absl::string_view text,
                                                  const std::string& source);

  // The caller an "authorization" value names: UNAUTHENTICATED when it is missing, not
  // "Bearer <token>", or the token is unknown (the token itself is never echoed).
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization);

  // Reads the file again if it changed (another inode, size, modification or change time): OK when
  // it did not or the new tokens are in use; the refusal (the old tokens stay) otherwise.
  // Authenticate calls it at most once a second.
  absl::Status ReloadIfChanged() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  AuthTokens(std::string path, std::vector<Entry> entries, std::string version);
  void MaybeReload() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::string version_ ABSL_GUARDED_BY(mu_);  // inode, size, mtime, ctime
  absl::Time next_check_ ABSL_GUARDED_BY(mu_);
};

// The caller of a request carrying `authorization` (may be empty): with `tokens` null, the
// unauthenticated admin.
absl::StatusOr<Caller> Authenticate(AuthTokens* tokens, absl::string_view authorization);

// OK for an admin; PERMISSION_DENIED naming `action` and the caller otherwise.
absl::Status RequireAdmin(const Caller& caller, absl::string_view action);
// OK when `caller` may act on `t` (an admin, or its creator); PERMISSION_DENIED otherwise.
absl::Status CheckCreator(const Caller& caller, const Transaction& t);
// What a caller without the admin role sees of `t`: branch_headers' values replaced.
void RedactFor(const Caller& caller, Transaction& t);
// Narrows a List to the caller's own transactions unless it is an admin.
void ScopeList(const Caller& caller, ListQuery& q);

using QueryFn =
    std::function<void(const std::string& gid, std::function<void(absl::StatusOr<Transaction>)>)>;
// Before an operation on `gid` that may create it or act on it: `then(OK)` when the caller is
// an admin (without asking `query`), when no transaction `gid` exists yet, or when the caller
// created it; `then(PERMISSION_DENIED)` when someone else did; `then(error)` when `query`
// fails otherwise.
void CheckOwnership(const Caller& caller, const std::string& gid, const QueryFn& query,
                    std::function<void(const absl::Status&)> then);

inline constexpr char kRedacted[] = "(redacted)";

}  // namespace dtm

#endif  // DTM_SERVER_API_COMMON_AUTH_H_
