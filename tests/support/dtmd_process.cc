#include "tests/support/dtmd_process.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dtm::test {

std::string BuildPath(const std::string& root, const std::string& relative) {
  // The build tree is an ancestor of every test binary: look up from this one's folder.
  char self[4096] = {0};
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string dir(self, n > 0 ? static_cast<size_t>(n) : 0);
  while (!dir.empty()) {
    dir = dir.substr(0, dir.rfind('/'));
    std::ifstream paths(dir + "/dtm-build-paths");
    std::string line;  // "<root> <path>": the path is the rest of the line, spaces included
    while (std::getline(paths, line)) {
      size_t space = line.find(' ');
      if (space != std::string::npos && line.compare(0, space, root) == 0) {
        return absl::StrCat(line.substr(space + 1), "/", relative);
      }
    }
  }
  std::fprintf(stderr, "no dtm-build-paths above %s: is this binary in a build tree?\n", self);
  std::abort();
}

std::string DtmdPath() { return BuildPath("bin", "dtmd"); }

int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) ADD_FAILURE() << "bind: " << errno;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return cond();
}

std::string TestPostgres() {
  const char* pg = std::getenv("DTM_TEST_PG");
  return pg ? pg : "";
}

namespace {
// A waitpid status as the exit code, or -signal.
int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }
}  // namespace

std::string TestStore(const std::string& dir) {
  if (TestPostgres().empty()) return absl::StrCat("sqlite://", dir, "/dtm.db");
  std::string schema = "e2e_";
  for (char c : dir.substr(dir.rfind('/') + 1)) {
    schema += absl::ascii_isalnum(c) ? absl::ascii_tolower(c) : '_';
  }
  return absl::StrCat(kPgTestPrefix, schema);
}

DtmdProcess::DtmdProcess(std::string store, std::vector<std::string> args)
    : store_(std::move(store)), args_(std::move(args)) {
  log_path_ = MakeTempDir() + "/dtmd.log";
  if (store_.rfind(kPgTestPrefix, 0) == 0) {
    args_.push_back(absl::StrCat("--schema=", store_.substr(sizeof(kPgTestPrefix) - 1)));
    store_ = TestPostgres();
  }
}

DtmdProcess::~DtmdProcess() { Kill9(); }

std::optional<int> DtmdProcess::WaitForExit(absl::Duration timeout) {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  bool exited = WaitUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!exited) return std::nullopt;
  pid_ = -1;
  exit_code_ = ExitCode(status);
  return exit_code_;
}

std::string DtmdProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool DtmdProcess::LogShows(const std::string& text) const {
  return WaitUntil([&] { return Log().find(text) != std::string::npos; });
}

absl::Status DtmdProcess::Start() {
  // A restart listens where the previous run did, so clients keep their channels.
  std::vector<std::string> argv = {
      DtmdPath(), absl::StrCat("--listen=", address_.empty() ? "127.0.0.1:0" : address_),
      absl::StrCat("--http_listen=", http_address_.empty() ? "127.0.0.1:0" : http_address_),
      absl::StrCat("--store=", store_),
      // Tests retry every few tens of milliseconds to stay fast, and ask for retries of all
      // waiting transactions whenever they like; dtmd's floors are for production. Tests read
      // what branches said in last_error. (A test of the floors or of the generic errors
      // passes its own flags; later flags win.)
      "--min_retry_interval=1ms", "--min_request_timeout=1ms", "--retry_all_interval=0s",
      "--verbose_errors"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::ofstream(log_path_, std::ios::trunc).close();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    FILE* log = fopen(log_path_.c_str(), "a");
    if (log) dup2(fileno(log), STDERR_FILENO);
    if (open_file_limit_ > 0) {
      rlimit r{static_cast<rlim_t>(open_file_limit_), static_cast<rlim_t>(open_file_limit_)};
      setrlimit(RLIMIT_NOFILE, &r);
    }
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  pid_ = pid;
  // dtmd prints the gRPC port, then the HTTP port (unless started with --http_listen=).
  bool http = std::find(args_.begin(), args_.end(), "--http_listen=") == args_.end();
  auto port_after = [](const std::string& log, const std::string& marker) {
    size_t at = log.find(marker);
    if (at == std::string::npos) return 0;
    size_t end = log.find(' ', at + marker.size());
    int port = 0;
    if (!absl::SimpleAtoi(log.substr(at + marker.size(), end - at - marker.size()), &port)) {
      return 0;
    }
    return port;
  };
  bool up = WaitUntil([&] {
    std::string log = Log();
    int port = port_after(log, "on port ");
    int http_port = http ? port_after(log, "on HTTP port ") : 0;
    if (port == 0 || (http && http_port == 0)) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = ExitCode(status);
      }
      return pid_ < 0;
    }
    address_ = absl::StrCat("127.0.0.1:", port);
    if (http) http_address_ = absl::StrCat("127.0.0.1:", http_port);
    return true;
  });
  if (!up || pid_ < 0) {
    Kill9();
    return absl::UnavailableError(absl::StrCat("dtmd did not start; log:\n", Log()));
  }
  return absl::OkStatus();
}

void DtmdProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_code_ = ExitCode(status);
}

int DtmdProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_code_ = ExitCode(status);
  return *exit_code_;
}

}  // namespace dtm::test
