// Tiny helpers for absl::Status plumbing (Abseil 20220623 ships no status macros).
#ifndef DTM_CLIENT_COMMON_STATUS_MACROS_H_
#define DTM_CLIENT_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DTM_CONCAT_INNER_(a, b) a##b
#define DTM_CONCAT_(a, b) DTM_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` yields a non-OK absl::Status.
#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status dtm_status_ = (expr);       \
    if (!dtm_status_.ok()) return dtm_status_; \
  } while (0)

// Declares `lhs` from an absl::StatusOr expression, returning its status on error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(DTM_CONCAT_(dtm_statusor_, __LINE__), lhs, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): `tmp` is a name and `lhs` may be a declaration
// ("auto x"); neither can be parenthesized.
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // DTM_CLIENT_COMMON_STATUS_MACROS_H_
