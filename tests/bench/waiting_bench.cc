#include "tests/bench/waiting_bench.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/branch.h"
#include "client/coordinator_client.h"
#include "client/saga.h"
#include "tests/bench/bench_driver.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"

namespace dtm::bench {
namespace {

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }
// The memory each of `n` waiting transactions adds over the idle process, in KiB.
double KiBEach(int64_t rss, int64_t idle_rss, int64_t n) {
  return n > 0 ? static_cast<double>(rss - idle_rss) / 1024.0 / static_cast<double>(n) : 0.0;
}
double Sec(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// The branch services of the waiting sagas: the first answers every call ONGOING, so the saga
// waits for its retry_interval; the second is never reached. Only counts calls, and notes when
// the first and the last call after a given one arrived (the resumed calls of recovery).
struct WaitingBranches {
  // Declared before the servers, so that they outlive the servers' handlers.
  // Calls numbered above this one are watched.
  std::atomic<int64_t> watch_after{std::numeric_limits<int64_t>::max()};
  std::atomic<int64_t> first_watched_ns{0}, last_watched_ns{0};
  std::atomic<int64_t> watched{0};  // counted once its time is noted
  test::TestBranchServer first{/*record=*/false};
  test::TestBranchServer second{/*record=*/false};

  WaitingBranches() {
    first.SetBehavior([this](const test::BranchCallRecord& call) {
      if (call.seq > watch_after.load()) {
        int64_t ns = absl::ToUnixNanos(call.time), none = 0;
        first_watched_ns.compare_exchange_strong(none, ns);
        int64_t last = last_watched_ns.load();
        while (last < ns && !last_watched_ns.compare_exchange_weak(last, ns)) {
        }
        ++watched;
      }
      return test::BranchReply{BranchOngoing("dtm-bench: still waiting")};
    });
  }
};

std::vector<std::string> WaitingArgs(const WaitingOptions& o) {
  std::vector<std::string> args;
  // dtmd's own bounds (--max_active_transactions, --park_after): waiting transactions leave
  // its memory, so the defaults hold any number of them.
  if (o.lease > absl::ZeroDuration()) {
    args.push_back(absl::StrCat("--lease=", absl::FormatDuration(o.lease)));
  }
  return args;
}

// Every tenth of `n`, and the round sizes 100k, 500k and 1M when they are reached.
std::vector<int64_t> Checkpoints(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t k = 1; k <= 10; ++k) out.push_back(n * k / 10);
  for (int64_t round : {100000, 500000, 1000000}) {
    if (round < n) out.push_back(round);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  out.erase(std::remove(out.begin(), out.end(), 0), out.end());
  return out;
}

struct Created {
  int64_t ok = 0;
  int64_t errors = 0;
  std::string first_error;
  absl::Duration submitting;  // the submitters' time, waits at checkpoints excluded
  absl::Duration total;       // from the first submit until every first call had come
  int64_t idle_rss = 0, rss = 0;
};

// Submits `o.count` waiting sagas (without wait_result) from `o.clients` threads. At each
// checkpoint it waits until the first branch was called once per saga accepted so far (so
// that each is past its first call and waiting, not still being started), then prints a row:
// waiting transactions, dtmd's RSS, the RSS per waiting transaction over the idle process's,
// seconds since the first submit, and the submit rate since the previous checkpoint.
Created CreateWaiting(const test::DtmdProcess& dtmd, CoordinatorClient* client,
                      WaitingBranches& branches, const WaitingOptions& o) {
  Created c;
  c.idle_rss = RssBytes(dtmd.pid());
  std::printf("%10s %10s %10s %10s %12s\n", "waiting", "RSS MiB", "KiB each", "seconds",
              "submits/s");
  std::printf("%10d %10.1f %10s %10.2f %12s\n", 0, MiB(c.idle_rss), "-", 0.0, "-");
  std::fflush(stdout);
  std::atomic<int64_t> next{0}, ok{0}, errors{0};
  std::mutex mu;
  const absl::Time start = absl::Now();
  int64_t done_before = 0;
  for (int64_t checkpoint : Checkpoints(o.count)) {
    const absl::Time phase_start = absl::Now();
    std::vector<std::thread> threads;
    for (int t = 0; t < o.clients; ++t) {
      threads.emplace_back([&] {
        for (;;) {
          int64_t i = next.load();
          do {
            if (i >= checkpoint) return;
          } while (!next.compare_exchange_weak(i, i + 1));
          Saga saga(client, absl::StrCat("wait-", RunId(), "-", i));
          saga.Add(branches.first.Target("Reserve"), branches.first.Target("ReserveRevert"),
                   o.payload)
              .Add(branches.second.Target("Ship"), branches.second.Target("ShipRevert"), o.payload)
              .RetryInterval(o.retry_interval);
          absl::StatusOr<v1::SubmitResponse> r = saga.Submit();
          std::string err;
          if (!r.ok()) {
            err = r.status().ToString();
          } else if (r->status() != v1::SUBMITTED) {
            err = absl::StrCat("status ", v1::Status_Name(r->status()), ", not SUBMITTED");
          }
          if (err.empty()) {
            ++ok;
          } else if (errors++ == 0) {
            std::lock_guard<std::mutex> lock(mu);
            c.first_error = err;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    const absl::Time submitted = absl::Now();
    c.submitting += submitted - phase_start;
    const int64_t accepted = ok.load();
    if (!test::WaitUntil([&] { return branches.first.call_count() >= accepted; },
                         absl::Seconds(60))) {
      std::printf("(after 60 s the first branch had %lld calls of %lld sagas accepted)\n",
                  static_cast<long long>(branches.first.call_count()),
                  static_cast<long long>(accepted));
    }
    c.rss = RssBytes(dtmd.pid());
    std::printf("%10lld %10.1f %10.2f %10.2f %12.0f\n", static_cast<long long>(accepted),
                MiB(c.rss), KiBEach(c.rss, c.idle_rss, accepted), Sec(absl::Now() - start),
                static_cast<double>(checkpoint - done_before) / Sec(submitted - phase_start));
    std::fflush(stdout);
    done_before = checkpoint;
  }
  c.total = absl::Now() - start;
  c.ok = ok.load();
  c.errors = errors.load();
  return c;
}

void PrintCreated(const Created& c) {
  std::printf(
      "submitted    %lld waiting sagas, %.0f submits/s (%.1f s submitting), all first "
      "calls in %.1f s: %.0f trans/s   errors %lld%s%s\n",
      static_cast<long long>(c.ok), static_cast<double>(c.ok) / Sec(c.submitting),
      Sec(c.submitting), Sec(c.total), static_cast<double>(c.ok) / Sec(c.total),
      static_cast<long long>(c.errors),
      c.first_error.empty() ? "" : "   first: ", c.first_error.c_str());
  std::fflush(stdout);
}

// The setup both modes share: the branches, then dtmd (destroyed first, so that it never
// calls a branch service already gone), then a client.
struct WaitingRun {
  WaitingBranches branches;
  std::unique_ptr<test::DtmdProcess> dtmd;
  std::unique_ptr<CoordinatorClient> client;

  bool Start(const WaitingOptions& o, const char* mode) {
    std::printf(
        "dtm-bench: %s, %lld 2-branch sagas without wait_result whose first branch answers "
        "ONGOING (retry_interval %s), %d submitting clients, %zu-byte payloads, %u hardware "
        "threads\n",
        mode, static_cast<long long>(o.count), absl::FormatDuration(o.retry_interval).c_str(),
        o.clients, o.payload.size(), std::thread::hardware_concurrency());
    std::vector<std::string> args = WaitingArgs(o);
    std::string flags;
    for (const std::string& a : args) absl::StrAppend(&flags, " ", a);
    auto spawned = SpawnDtmd(o.store, args);
    if (!spawned.ok()) {
      std::fprintf(stderr, "%s\n", spawned.status().ToString().c_str());
      return false;
    }
    dtmd = *std::move(spawned);
    std::printf("dtmd pid %d, bench flags:%s\n", static_cast<int>(dtmd->pid()),
                flags.empty() ? " none" : flags.c_str());
    client = CoordinatorClient::Connect(dtmd->address());
    return true;
  }
};

}  // namespace

int RunPending(const WaitingOptions& o) {
  WaitingRun run;
  if (!run.Start(o, "pending")) return 1;
  Created c = CreateWaiting(*run.dtmd, run.client.get(), run.branches, o);
  PrintCreated(c);
  std::printf(
      "memory       idle %.1f MiB, with %lld waiting %.1f MiB: %.2f KiB per waiting "
      "transaction\n",
      MiB(c.idle_rss), static_cast<long long>(c.ok), MiB(c.rss), KiBEach(c.rss, c.idle_rss, c.ok));
  return c.errors == 0 ? 0 : 1;
}

int RunRecovery(const WaitingOptions& o) {
  WaitingRun run;
  if (!run.Start(o, "recovery")) return 1;
  Created c = CreateWaiting(*run.dtmd, run.client.get(), run.branches, o);
  PrintCreated(c);
  run.branches.watch_after = run.branches.first.call_count();

  run.dtmd->Kill9();
  const absl::Time restart = absl::Now();
  absl::Status st = run.dtmd->Start();
  if (!st.ok()) {
    std::fprintf(stderr, "restart: %s\n", st.ToString().c_str());
    return 1;
  }
  const absl::Time serving = absl::Now();
  // RetryNow(all_waiting) on its own thread: it may take a while with many waiting, and the
  // resumed calls are watched from the moment the new process serves.
  absl::StatusOr<int64_t> touched = 0;
  absl::Time touched_at;
  std::thread retry_all([&] {
    auto admin = CoordinatorClient::Connect(run.dtmd->address());
    touched = admin->RetryAllWaiting();
    touched_at = absl::Now();
  });
  absl::Time last_sample = absl::InfinitePast();
  int64_t rss_max = 0;
  const absl::Time deadline = serving + o.resume_timeout;
  int64_t resumed = 0;
  for (;;) {
    resumed = run.branches.watched.load();
    absl::Time now = absl::Now();
    if (now - last_sample >= absl::Milliseconds(20)) {
      rss_max = std::max(rss_max, RssBytes(run.dtmd->pid()));
      last_sample = now;
    }
    if (resumed >= c.ok || now >= deadline) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  retry_all.join();
  rss_max = std::max(rss_max, RssBytes(run.dtmd->pid()));
  std::printf(
      "killed       dtmd (kill -9) with %lld waiting, RSS %.1f MiB; restarted on the "
      "same store, serving after %.2f s\n",
      static_cast<long long>(c.ok), MiB(c.rss), Sec(serving - restart));
  if (touched.ok()) {
    std::printf(
        "retry all    RetryNow(all_waiting) made %lld due, answered %.2f s after the "
        "restart\n",
        static_cast<long long>(*touched), Sec(touched_at - restart));
  } else {
    std::printf("retry all    RetryNow(all_waiting) failed: %s\n",
                touched.status().ToString().c_str());
  }
  if (resumed == 0) {
    std::printf("resumed      none within %s\n", absl::FormatDuration(o.resume_timeout).c_str());
    return 1;
  }
  const absl::Time first = absl::FromUnixNanos(run.branches.first_watched_ns.load());
  const absl::Time last = absl::FromUnixNanos(run.branches.last_watched_ns.load());
  const double from_restart = Sec(last - restart);
  std::printf(
      "resumed      %lld of %lld%s: first resumed call %.2f s after the restart, the "
      "last %.2f s after it\n",
      static_cast<long long>(resumed), static_cast<long long>(c.ok),
      resumed < c.ok ? " (timed out)" : "", Sec(first - restart), from_restart);
  // From the first resumed call: the calls after it over the time they took (too few calls
  // in too short a time give no rate).
  const std::string from_first =
      last - first >= absl::Milliseconds(10)
          ? absl::StrCat(static_cast<int64_t>(static_cast<double>(resumed - 1) / Sec(last - first)))
          : "-";
  std::printf(
      "resume rate  %s trans/s from the first resumed call, %.0f trans/s from the "
      "restart   (first calls when created: %.0f trans/s)\n",
      from_first.c_str(), static_cast<double>(resumed) / from_restart,
      static_cast<double>(c.ok) / Sec(c.total));
  std::printf("memory       during the resume max RSS %.1f MiB (before the kill %.1f MiB)\n",
              MiB(rss_max), MiB(c.rss));
  return resumed == c.ok && c.errors == 0 ? 0 : 1;
}

}  // namespace dtm::bench
