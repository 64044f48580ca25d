#include "tests/bench/bench_driver.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "storage/open/open_store.h"

namespace dtm::bench {
namespace {

int64_t NextSeq() {
  static std::atomic<int64_t> seq{0};
  return seq.fetch_add(1);
}

// What one driver thread measured; merged into a Result at the end.
struct ThreadStats {
  std::vector<absl::Duration> latencies;  // of the successful ops
  int64_t errors = 0;
  std::string first_error;
  int64_t scheduled = 0, late = 0, unsent = 0;  // open loop
  absl::Time last_done = absl::InfinitePast();  // open loop

  void Add(const std::string& err, absl::Duration latency) {
    if (err.empty()) {
      latencies.push_back(latency);
    } else if (errors++ == 0) {
      first_error = err;
    }
  }
};

Result Merge(const std::string& name, std::vector<ThreadStats>& stats) {
  Result r;
  r.name = name;
  std::vector<absl::Duration> all;
  for (ThreadStats& s : stats) {
    all.insert(all.end(), s.latencies.begin(), s.latencies.end());
    r.errors += s.errors;
    if (r.first_error.empty()) r.first_error = s.first_error;
    r.scheduled += s.scheduled;
    r.late += s.late;
    r.unsent += s.unsent;
  }
  r.ok = static_cast<int64_t>(all.size());
  std::sort(all.begin(), all.end());
  auto at = [&](double p) {
    if (all.empty()) return absl::ZeroDuration();
    return all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))];
  };
  r.p50 = at(0.50);
  r.p90 = at(0.90);
  r.p99 = at(0.99);
  r.p999 = at(0.999);
  return r;
}

// The open loop's dispatcher: computes the Poisson schedule (exponential gaps from a fixed
// seed) and hands the arrivals out in schedule order, one per worker that asks.
class Arrivals {
 public:
  Arrivals(const OpenLoopOptions& o, absl::Time start)
      : rng_(o.seed), gap_(o.rate), next_(start + Gap()) {}
  absl::Time Take() {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Time t = next_;
    next_ += Gap();
    return t;
  }

 private:
  absl::Duration Gap() { return absl::Seconds(gap_(rng_)); }

  std::mutex mu_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> gap_;
  absl::Time next_;
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }
double Over(absl::Duration a, absl::Duration b) { return Ms(a) / std::max(1e-9, Ms(b)); }

}  // namespace

Result Drive(const std::string& name, int clients, double warmup, double seconds, const Op& op) {
  std::atomic<int> phase{0};  // 0 warm-up, 1 measuring, 2 stop
  std::vector<ThreadStats> stats(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      while (phase.load() < 2) {
        bool measuring = phase.load() == 1;
        absl::Time start = absl::Now();
        std::string err = op(c, NextSeq());
        absl::Duration d = absl::Now() - start;
        if (measuring && phase.load() == 1) stats[c].Add(err, d);
      }
    });
  }
  absl::SleepFor(absl::Seconds(warmup));
  phase = 1;
  absl::Time start = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  phase = 2;
  double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  for (auto& t : threads) t.join();
  Result r = Merge(name, stats);
  r.seconds = elapsed;
  return r;
}

Result DriveOpen(const std::string& name, const OpenLoopOptions& options, double warmup,
                 double seconds, const Op& op) {
  // A little head start, so that every worker is waiting before the first arrival.
  const absl::Time start = absl::Now() + absl::Milliseconds(20);
  const absl::Time window_start = start + absl::Seconds(warmup);
  const absl::Time window_end = window_start + absl::Seconds(seconds);
  const absl::Time drain_deadline = window_end + std::max(absl::Seconds(2), absl::Seconds(seconds));
  Arrivals arrivals(options, start);
  std::vector<ThreadStats> stats(options.workers);
  std::vector<std::thread> threads;
  for (int w = 0; w < options.workers; ++w) {
    threads.emplace_back([&, w] {
      ThreadStats& s = stats[w];
      for (;;) {
        const absl::Time scheduled = arrivals.Take();
        if (scheduled >= window_end) return;  // the later arrivals all are too
        const absl::Time picked = absl::Now();
        const bool measured = scheduled >= window_start;
        s.scheduled += measured;
        if (picked >= drain_deadline) {
          s.unsent += measured;
          continue;
        }
        if (scheduled > picked) {
          absl::SleepFor(scheduled - picked);
        } else if (measured && picked - scheduled > absl::Milliseconds(1)) {
          ++s.late;
        }
        std::string err = op(w, NextSeq());
        const absl::Time done = absl::Now();
        if (!measured) continue;
        s.Add(err, done - scheduled);
        s.last_done = std::max(s.last_done, done);
      }
    });
  }
  for (auto& t : threads) t.join();
  Result r = Merge(name, stats);
  absl::Time last_done = window_end;
  for (const ThreadStats& s : stats) last_done = std::max(last_done, s.last_done);
  r.seconds = absl::ToDoubleSeconds(last_done - window_start);
  r.open_loop = true;
  r.offered = options.rate;
  return r;
}

void Print(const Result& r, const std::string& unit) {
  const char* sep = r.first_error.empty() ? "" : "   first: ";
  if (!r.open_loop) {
    std::printf("%-12s %s %9.0f   p50 %7.2f ms   p99 %7.2f ms   ok %8lld   errors %lld%s%s\n",
                r.name.c_str(), unit.c_str(), r.rate(), Ms(r.p50), Ms(r.p99),
                static_cast<long long>(r.ok), static_cast<long long>(r.errors), sep,
                r.first_error.c_str());
  } else {
    std::printf(
        "%-12s %s %9.0f   offered %7.0f/s (%lld scheduled)   p50 %7.2f ms   p90 %7.2f ms   "
        "p99 %7.2f ms   p99.9 %7.2f ms   ok %8lld   errors %lld   late>1ms %lld   unsent "
        "%lld%s%s\n",
        r.name.c_str(), unit.c_str(), r.rate(), r.offered, static_cast<long long>(r.scheduled),
        Ms(r.p50), Ms(r.p90), Ms(r.p99), Ms(r.p999), static_cast<long long>(r.ok),
        static_cast<long long>(r.errors), static_cast<long long>(r.late),
        static_cast<long long>(r.unsent), sep, r.first_error.c_str());
  }
  std::fflush(stdout);
}

void PrintRatio(const Result& coordinator, const Result& base) {
  if (!coordinator.open_loop || !base.open_loop) {
    std::printf("ratio        coordinator/%s throughput %.3f   p50 latency x%.2f\n",
                base.name.c_str(), coordinator.rate() / base.rate(),
                Over(coordinator.p50, base.p50));
  } else {
    std::printf(
        "ratio        coordinator/%s achieved %.3f   p50 latency x%.2f   p99 latency x%.2f   "
        "p99.9 latency x%.2f\n",
        base.name.c_str(), coordinator.rate() / base.rate(), Over(coordinator.p50, base.p50),
        Over(coordinator.p99, base.p99), Over(coordinator.p999, base.p999));
  }
  std::fflush(stdout);
}

grpc::Status UnaryCall(grpc::GenericStub& stub, const std::string& method,
                       const std::string& bytes) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer req(&slice, 1), resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = std::move(s);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return status;
}

std::string CallInOrder(const std::vector<UnaryStep>& steps) {
  for (const UnaryStep& s : steps) {
    grpc::Status st = UnaryCall(*s.stub, s.method, s.bytes);
    if (!st.ok()) return absl::StrCat(s.method, ": ", st.error_message());
  }
  return "";
}

const std::string& RunId() {
  static const std::string id = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  return id;
}

bool IsPostgresUrl(const std::string& url) {
  return !url.empty() && url.rfind("sqlite://", 0) != 0 && url.find(".db") == std::string::npos;
}

absl::StatusOr<std::unique_ptr<test::DtmdProcess>> SpawnDtmd(std::string store,
                                                             std::vector<std::string> args) {
  if (store.empty()) store = absl::StrCat("sqlite://", test::MakeTempDir(), "/bench.db");
  if (IsPostgresUrl(store)) args.push_back(absl::StrCat("--schema=bench_", RunId()));
  // Problems only: at info, dtmd logs every state change (about four lines per saga).
  args.push_back("--log_level=warning");
  auto dtmd = std::make_unique<test::DtmdProcess>(store, args);
  absl::Status st = dtmd->Start();
  if (!st.ok()) return st;
  std::printf("spawned dtmd at %s, store %s\n", dtmd->address().c_str(),
              DescribeStore(store).c_str());
  std::fflush(stdout);
  return dtmd;
}

namespace {

// The number after `key` ("VmRSS:") in a /proc status file; 0 if there is none.
int64_t StatusField(const std::string& path, absl::string_view key) {
  std::ifstream status(path);
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, key)) continue;
    int64_t value = 0;
    std::vector<absl::string_view> words = absl::StrSplit(rest, ' ', absl::SkipWhitespace());
    if (!words.empty() && absl::SimpleAtoi(words[0], &value)) return value;
  }
  return 0;
}

// From a /proc stat line, "pid (comm) state ppid ...": the parent, the user and system time
// (the process's own, and that of its children it has reaped) and the start time. The name may
// hold spaces and parentheses, so fields are counted from the last ')': ppid, utime, stime,
// cutime, cstime and starttime (fields 4, 14 to 17 and 22 of the line) are the 2nd, 12th to
// 15th and 20th after it.
struct StatTimes {
  pid_t ppid = 0;
  int64_t cpu_ticks = 0;
  int64_t children_ticks = 0;
  int64_t start_time = 0;  // in clock ticks after boot
};
bool ParseStat(const std::string& line, StatTimes* times) {
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(line).substr(close + 1), ' ', absl::SkipWhitespace());
  int64_t ppid = 0, utime = 0, stime = 0, cutime = 0, cstime = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[1], &ppid) ||
      !absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime) ||
      !absl::SimpleAtoi(fields[13], &cutime) || !absl::SimpleAtoi(fields[14], &cstime) ||
      !absl::SimpleAtoi(fields[19], &times->start_time)) {
    return false;
  }
  times->ppid = static_cast<pid_t>(ppid);
  times->cpu_ticks = utime + stime;
  times->children_ticks = cutime + cstime;
  return true;
}

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

int64_t RssBytes(pid_t pid) {
  return StatusField(absl::StrCat("/proc/", pid, "/status"), "VmRSS:") * 1024;
}

CpuSnapshot SnapshotCpu(pid_t pid) {
  CpuSnapshot snapshot;
  const std::string proc = absl::StrCat("/proc/", pid);
  StatTimes process;
  if (ParseStat(FirstLine(proc + "/stat"), &process)) snapshot.process_ticks = process.cpu_ticks;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(proc + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    pid_t tid = 0;
    if (!absl::SimpleAtoi(it->path().filename().string(), &tid)) continue;
    const std::string dir = it->path().string();
    StatTimes times;
    if (!ParseStat(FirstLine(dir + "/stat"), &times)) continue;  // ended meanwhile
    ThreadCpu& t = snapshot.threads[tid];
    t.name = FirstLine(dir + "/comm");
    t.start_time = times.start_time;
    t.cpu_ticks = times.cpu_ticks;
    t.voluntary_switches = StatusField(dir + "/status", "voluntary_ctxt_switches:");
    t.involuntary_switches = StatusField(dir + "/status", "nonvoluntary_ctxt_switches:");
  }
  return snapshot;
}

void PrintCpu(const std::string& name, const CpuSnapshot& before, const CpuSnapshot& after,
              int64_t transactions, const std::string& per) {
  if (transactions <= 0) return;
  std::map<std::string, int64_t> by_name;
  int64_t live = 0, voluntary = 0, involuntary = 0;
  for (const auto& [tid, t] : after.threads) {
    auto b = before.threads.find(tid);
    ThreadCpu start;  // a thread started between the snapshots: all of its time
    if (b != before.threads.end() && b->second.start_time == t.start_time) start = b->second;
    const int64_t d = t.cpu_ticks - start.cpu_ticks;
    by_name[t.name] += d;
    live += d;
    voluntary += t.voluntary_switches - start.voluntary_switches;
    involuntary += t.involuntary_switches - start.involuntary_switches;
  }
  const int64_t total = after.process_ticks - before.process_ticks;
  // What the live threads do not account for: threads that ended between the snapshots.
  if (total > live) by_name["ended"] += total - live;
  const double us_per_tick = 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
  const double n = static_cast<double>(transactions);
  std::vector<std::pair<int64_t, std::string>> busiest;
  for (const auto& [thread, d] : by_name) {
    if (d > 0) busiest.emplace_back(d, thread);
  }
  std::sort(busiest.rbegin(), busiest.rend());
  std::string threads;
  for (const auto& [d, thread] : busiest) {
    if (!threads.empty()) threads += ", ";
    absl::StrAppend(&threads, thread, " ", absl::StrFormat("%.0f", d * us_per_tick / n));
  }
  std::printf(
      "cpu          %s %.0f us per %s (%lld of them; by thread: %s), context switches per %s "
      "%.1f voluntary %.1f involuntary\n",
      name.c_str(), std::max(total, live) * us_per_tick / n, per.c_str(),
      static_cast<long long>(transactions), threads.c_str(), per.c_str(), voluntary / n,
      involuntary / n);
  std::fflush(stdout);
}

namespace {

std::string CommOf(pid_t pid) { return FirstLine(absl::StrCat("/proc/", pid, "/comm")); }

// When the machine booted, in seconds since the epoch ("btime" of /proc/stat); 0 if unknown.
int64_t BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    int64_t btime = 0;
    if (absl::ConsumePrefix(&rest, "btime ") && absl::SimpleAtoi(rest, &btime)) return btime;
  }
  return 0;
}

}  // namespace

pid_t LocalPostmaster(const std::string& conninfo) {
  const char* keys[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {conninfo.c_str(), "5", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  pid_t found = -1;
  // Checked while the connection is open: closed, its backend exits, and its pid may go to
  // another process.
  if (PQstatus(conn) == CONNECTION_OK) {
    const pid_t backend = PQbackendPID(conn);
    StatTimes b, pm;
    double server_start = 0;  // when the server says it started, in seconds since the epoch
    PGresult* r = PQexec(conn, "SELECT extract(epoch FROM pg_postmaster_start_time())::float8");
    const bool answered = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                          absl::SimpleAtod(PQgetvalue(r, 0, 0), &server_start);
    PQclear(r);
    if (answered && backend > 0 && CommOf(backend) == "postgres" &&
        ParseStat(FirstLine(absl::StrCat("/proc/", backend, "/stat")), &b) && b.ppid > 1 &&
        CommOf(b.ppid) == "postgres" &&
        ParseStat(FirstLine(absl::StrCat("/proc/", b.ppid, "/stat")), &pm)) {
      // A server elsewhere (another machine, another pid namespace) has pids of its own: the
      // process found here is its postmaster only if it started when the server did.
      const double local_start =
          static_cast<double>(BootTimeSeconds()) +
          static_cast<double>(pm.start_time) / static_cast<double>(sysconf(_SC_CLK_TCK));
      if (std::abs(local_start - server_start) < 2.0) found = b.ppid;
    }
  }
  PQfinish(conn);
  return found;
}

int64_t ServerCpuTicks(pid_t postmaster) {
  // A child reaped during the scan would be in neither the postmaster's figure read before it
  // nor among the live ones: scan again until the postmaster's reaped total held still.
  for (int attempt = 0; attempt < 10; ++attempt) {
    StatTimes pm;
    const std::string stat = absl::StrCat("/proc/", postmaster, "/stat");
    if (!ParseStat(FirstLine(stat), &pm)) return 0;
    int64_t live = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      pid_t pid = 0;
      if (!absl::SimpleAtoi(it->path().filename().string(), &pid)) continue;
      StatTimes child;
      if (!ParseStat(FirstLine(it->path().string() + "/stat"), &child)) continue;
      if (child.ppid == postmaster) live += child.cpu_ticks;
    }
    StatTimes again;
    if (!ParseStat(FirstLine(stat), &again)) return 0;
    if (again.children_ticks == pm.children_ticks) {
      return again.cpu_ticks + again.children_ticks + live;
    }
  }
  return 0;
}

double PrintServerCpu(const std::string& mode, int64_t ticks, int64_t transactions,
                      const std::string& per) {
  if (transactions <= 0) return 0;
  const double us = static_cast<double>(ticks) * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK)) /
                    static_cast<double>(transactions);
  std::printf("dbcpu        postgres %.0f us per %s of %s (%lld of them; the whole server)\n", us,
              per.c_str(), mode.c_str(), static_cast<long long>(transactions));
  std::fflush(stdout);
  return us;
}

}  // namespace dtm::bench
