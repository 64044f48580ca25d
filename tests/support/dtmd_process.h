// DtmdProcess: runs the real dtmd binary as a child process for end-to-end tests, on an
// ephemeral port read from its startup line, with its stderr in a log file.
#ifndef DTM_TESTS_SUPPORT_DTMD_PROCESS_H_
#define DTM_TESTS_SUPPORT_DTMD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/util/temp_dir.h"

namespace dtm::test {

// A store URL "pgtest:<schema>" means: the test run's PostgreSQL (DTM_TEST_PG) with
// --schema=<schema>.
inline constexpr char kPgTestPrefix[] = "pgtest:";

// The store an end-to-end test should use, kept in `dir` (or named after it): SQLite, or the
// test run's PostgreSQL when DTM_TEST_PG is set (ctest runs the e2e suite both ways).
// Stable for a given `dir`, so a restarted dtmd finds the same data.
std::string TestStore(const std::string& dir);
// The conninfo of the PostgreSQL the test run started (DTM_TEST_PG), or "".
std::string TestPostgres();

class DtmdProcess {
 public:
  // `store`: the --store URL (or "pgtest:<schema>"); `args`: extra flags.
  explicit DtmdProcess(std::string store, std::vector<std::string> args = {});
  ~DtmdProcess();  // kill -9 if still running

  // Starts dtmd and waits until it serves; the error includes the log tail. A restart
  // listens on the address of the first start.
  absl::Status Start();
  std::string address() const { return address_; }
  // "127.0.0.1:port" of DTM's HTTP API ("" if started with --http_listen=).
  std::string http_address() const { return http_address_; }
  bool running() const { return pid_ > 0; }
  // The running process's id (for /proc/<pid>/...), or -1.
  pid_t pid() const { return pid_; }
  // kill -9 and reap.
  void Kill9();
  // SIGTERM; returns the exit code (or -signal).
  int Terminate();
  std::string Log() const;
  // Waits (up to 20 s) until the log holds `text`: dtmd writes its log lines from a thread of
  // its own, a moment after what they tell of happened.
  bool LogShows(const std::string& text) const;
  // Waits for dtmd to exit by itself: its exit code (or -signal), or nullopt on timeout.
  std::optional<int> WaitForExit(absl::Duration timeout);
  // How the last process exited (its code, or -signal), once reaped; nullopt before. A Start
  // that fails because dtmd exited leaves its code here.
  std::optional<int> exit_code() const { return exit_code_; }
  // Starts dtmd with RLIMIT_NOFILE (soft and hard) at `n`.
  void set_open_file_limit(int n) { open_file_limit_ = n; }

 private:
  std::string store_;
  std::vector<std::string> args_;
  std::string log_path_;
  std::string address_;
  std::string http_address_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  int open_file_limit_ = 0;
};

// A path of the build tree the running test (or benchmark) belongs to: `BuildPath("bin",
// "dtmd")` is the dtmd under test, `BuildPath("source", "scripts/pg-throwaway.sh")` a file of
// the checkout. Read from dtm-build-paths, which CMake writes at the top of the build tree.
std::string BuildPath(const std::string& root, const std::string& relative);
// Path of the dtmd binary under test.
std::string DtmdPath();
// A loopback TCP port nothing listens on (bound, read, closed).
int ClosedPort();
// Polls `cond` every 5 ms until it holds; false on timeout.
bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(20));

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_DTMD_PROCESS_H_
