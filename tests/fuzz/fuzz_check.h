// FUZZ_CHECK: an invariant of a fuzz target. When it does not hold, the target prints where and
// why and aborts, which libFuzzer reports as a crash and saves the input of (crash-<sha1>).
// Always on, whatever NDEBUG says: these checks are what the fuzz targets are for.
#ifndef DTM_TESTS_FUZZ_FUZZ_CHECK_H_
#define DTM_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dtm {
namespace fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* condition,
                              const std::string& message) {
  std::fprintf(stderr, "\n%s:%d: invariant broken: %s\n  %s\n", file, line, condition,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

// A value for a failure message: C-escaped (inputs are arbitrary bytes), cut at 200 bytes.
inline std::string Q(absl::string_view s) {
  constexpr size_t kShown = 200;
  if (s.size() <= kShown) return absl::StrCat("\"", absl::CHexEscape(s), "\"");
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kShown)), "\"... (", s.size(), " bytes)");
}

// DTM_FUZZ_VERBOSE set: the targets say what they accepted or refused and why, to check that
// new seeds get past the parsers (run the target on the seed files).
inline bool Verbose() {
  static const bool verbose = std::getenv("DTM_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

inline void Note(absl::string_view what, const absl::Status& status) {
  if (!Verbose()) return;
  std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(what.size()), what.data(),
               status.ok() ? "accepted" : status.ToString().c_str());
}

// For a target that reads several kinds of input: the first byte picks one of `targets` (its
// value modulo their number), which runs on the rest. Returns 0, LLVMFuzzerTestOneInput's.
using FuzzOne = void (*)(const uint8_t* data, size_t size);
inline int ByFirstByte(const uint8_t* data, size_t size, std::initializer_list<FuzzOne> targets) {
  if (size == 0 || targets.size() == 0) return 0;
  targets.begin()[data[0] % targets.size()](data + 1, size - 1);
  return 0;
}

}  // namespace fuzz
}  // namespace dtm

// FUZZ_CHECK(condition, message parts...): the parts are absl::StrCat'ed into the message.
#define FUZZ_CHECK(condition, ...)                                                    \
  do {                                                                                \
    if (!(condition)) {                                                               \
      ::dtm::fuzz::Fail(__FILE__, __LINE__, #condition, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                 \
  } while (false)

#endif  // DTM_TESTS_FUZZ_FUZZ_CHECK_H_
