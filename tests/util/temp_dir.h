// Fresh temporary directories for tests, under $TMPDIR (else /tmp). The test command runs
// each ctest in a TMPDIR of its own and removes it when every test passed, so the databases
// and dtmd logs of a passing run do not pile up in /tmp, and those of a failing one are kept
// in one place.
#ifndef DTM_TESTS_UTIL_TEMP_DIR_H_
#define DTM_TESTS_UTIL_TEMP_DIR_H_

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <string_view>

namespace dtm::test {

// Creates $TMPDIR/<prefix>-XXXXXX (mode 0700) and returns its path. A test cannot go on
// without it (its files would land in the current directory or at /): aborts, saying why.
inline std::string MakeTempDir(std::string_view prefix = "dtm-test") {
  const char* tmp = getenv("TMPDIR");
  std::string path = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  path.append("/").append(prefix).append("-XXXXXX");
  if (mkdtemp(path.data()) == nullptr) {
    fprintf(stderr, "cannot create a temporary directory %s: %s\n", path.c_str(), strerror(errno));
    abort();
  }
  return path;
}

}  // namespace dtm::test

#endif  // DTM_TESTS_UTIL_TEMP_DIR_H_
