// What dtm-bench's modes share: the closed-loop and open-loop drivers that run one kind of
// transaction (or its baseline) from many threads and measure it, the lines that print a
// result, the generic unary gRPC call the baselines are made of, and the spawned dtmd.
#ifndef DTM_TESTS_BENCH_BENCH_DRIVER_H_
#define DTM_TESTS_BENCH_BENCH_DRIVER_H_

#include <grpcpp/generic/generic_stub.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/dtmd_process.h"

namespace dtm::bench {

// One measured run of one mode.
struct Result {
  std::string name;
  int64_t ok = 0;
  int64_t errors = 0;
  // Closed loop: the measuring window. Open loop: from the window's start to the completion
  // of the last transaction scheduled in it.
  double seconds = 0;
  absl::Duration p50, p90, p99, p999;
  std::string first_error;

  // Open loop only.
  bool open_loop = false;
  double offered = 0;     // arrivals per second asked for
  int64_t scheduled = 0;  // arrivals scheduled inside the measuring window
  int64_t late = 0;       // of those, picked up by a worker more than 1 ms after their time
  int64_t unsent = 0;     // of those, never sent: still waiting at the drain deadline
  double rate() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

// One transaction, or one round of its baseline: "" on success, else the error. `worker` is
// the calling thread (for per-thread resources: connections, HTTP clients), below the driver's
// thread count; `seq` is unique across every call of every driver in the process, so that
// gids made of it never repeat, even when one op runs closed loop and then open loop.
using Op = std::function<std::string(int worker, int64_t seq)>;

// Closed loop: `clients` threads each run `op` back to back; warm-up, then measures for
// `seconds`. Each latency is one op's own duration.
Result Drive(const std::string& name, int clients, double warmup, double seconds, const Op& op);

struct OpenLoopOptions {
  double rate = 0;    // mean arrivals per second
  int workers = 64;   // threads with blocking calls
  uint64_t seed = 1;  // of the exponential inter-arrival times
};
// Open loop: arrivals form a Poisson process of `rate` per second from a fixed seed. Each
// worker takes the next arrival in schedule order, sleeps until its time and runs `op`; when
// every worker is busy the arrival waits, and each latency runs from the arrival's scheduled
// time, so the wait counts (the coordinated omission a closed loop hides). Arrivals in the
// warm-up are sent but not measured; after the window none are scheduled, and those of the
// window still queued are drained for as long again (at least 2 s), the rest counted unsent.
Result DriveOpen(const std::string& name, const OpenLoopOptions& options, double warmup,
                 double seconds, const Op& op);

// One line per result: closed loop "<name> sagas/s ... p50 ... p99 ...", open loop with the
// offered and achieved rates, p50/p90/p99/p99.9 and the late arrivals. `unit` names the
// rate ("sagas/s", "trans/s").
void Print(const Result& r, const std::string& unit);
// "ratio ..." lines comparing `coordinator` to `base`.
void PrintRatio(const Result& coordinator, const Result& base);

// One unary call of a baseline: `bytes` sent as the request of `method` ("/pkg.Svc/Name") on
// `stub`, which may serve any method (the no-op branch services do).
struct UnaryStep {
  grpc::GenericStub* stub;
  std::string method;
  std::string bytes;
};
grpc::Status UnaryCall(grpc::GenericStub& stub, const std::string& method,
                       const std::string& bytes);
// The steps one after the other: "" or the first failure's message.
std::string CallInOrder(const std::vector<UnaryStep>& steps);

// Distinguishes this run's gids, rows and schemas from earlier runs'.
const std::string& RunId();
// A --store value that names PostgreSQL (not sqlite://, not a .db file).
bool IsPostgresUrl(const std::string& url);
// Starts dtmd on `store` (empty: a fresh SQLite file; PostgreSQL: this run's own schema) with
// `args`, and prints where.
absl::StatusOr<std::unique_ptr<test::DtmdProcess>> SpawnDtmd(std::string store,
                                                             std::vector<std::string> args);
// Resident memory of process `pid` (VmRSS), in bytes; 0 if it cannot be read.
int64_t RssBytes(pid_t pid);

// Where a process's CPU time goes: its total and each live thread's, with their context
// switches, read from /proc/<pid>/stat and /proc/<pid>/task/.
struct ThreadCpu {
  std::string name;        // the thread's name (comm): dtmd names its own (NameThisThread)
  int64_t start_time = 0;  // when it started, in clock ticks after boot (tells reused ids apart)
  int64_t cpu_ticks = 0;   // user and system, in clock ticks
  int64_t voluntary_switches = 0;
  int64_t involuntary_switches = 0;
};
struct CpuSnapshot {
  int64_t process_ticks = 0;           // every thread's, those that have ended too
  std::map<pid_t, ThreadCpu> threads;  // the live ones, by thread id
};
CpuSnapshot SnapshotCpu(pid_t pid);
// "cpu ..." line: the process's CPU per transaction between two snapshots, then by thread name
// (busiest first; "ended" for threads that ended in between), and the live threads' context
// switches per transaction.
void PrintCpu(const std::string& name, const CpuSnapshot& before, const CpuSnapshot& after,
              int64_t transactions, const std::string& per);

// The PostgreSQL server behind `conninfo` when it runs on this machine: its postmaster's pid,
// found as the parent of the backend serving a connection made to ask (both named postgres,
// the parent started when the server says it did); -1 for a server elsewhere or one that does
// not answer within 5 seconds.
pid_t LocalPostmaster(const std::string& conninfo);
// The server's CPU time so far, in clock ticks: the postmaster's own and that of its children
// that have ended (the kernel adds a child's when it is reaped), plus each live child's.
int64_t ServerCpuTicks(pid_t postmaster);
// "dbcpu ..." line: the server's CPU per transaction of mode `mode` (ticks between two
// ServerCpuTicks); returns it in microseconds (0 with no transactions).
double PrintServerCpu(const std::string& mode, int64_t ticks, int64_t transactions,
                      const std::string& per);

}  // namespace dtm::bench

#endif  // DTM_TESTS_BENCH_BENCH_DRIVER_H_
