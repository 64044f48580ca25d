// dtm-faultload: the bank invariant workload against running dtmd replicas, for tests that
// break the infrastructure under dtmd (database failover, network faults, failing disks,
// clock jumps) while it runs. It starts the two example banks in this process (listening on
// --listen_host, ledgers in a fresh database created through --bank_pg), submits random
// transfers of every kind through --coordinator, waits until every transaction is terminal
// and audits the ledgers.
//
// Output: a progress line per second ("faultload: progress t=... submitted=... ok=...
// aborted=... unavailable=... other=..."), the summary, "faultload: VIOLATION ..." lines, and
// one machine-readable line "faultload: RESULT {json}". Exit status: 0 the invariant held,
// 1 it did not, 2 bad flags or the banks could not start.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/faults/bank_workload.h"

ABSL_FLAG(std::string, coordinator, "", "dtmd gRPC address(es), comma-separated");
ABSL_FLAG(std::string, bank_pg, "",
          "libpq conninfo of a PostgreSQL server where a fresh database is created for the "
          "banks' ledgers (needs the right to create databases)");
ABSL_FLAG(std::string, listen_host, "127.0.0.1",
          "address the banks listen on and name in their branch targets");
ABSL_FLAG(int, transfers, 2000, "stop submitting after this many transfers");
ABSL_FLAG(absl::Duration, seconds, absl::ZeroDuration(),
          "or after this long (e.g. 90s, 30m); 0: no time limit");
ABSL_FLAG(int, threads, 8, "concurrent clients");
ABSL_FLAG(int64_t, seed, 0, "random seed; 0: from the clock");
ABSL_FLAG(bool, bank_faults, true,
          "the banks inject faults of their own (refusals, transient errors, lost answers, "
          "duplicate and late deliveries)");
ABSL_FLAG(std::string, modes, "saga,tcc,msg,xa,http,msgcrash,xavanish",
          "transfer kinds to draw from: saga, tcc, msg, xa, http (HTTP and gRPC+HTTP sagas), "
          "msgcrash (msg clients dying around their local commit), xavanish (XA clients "
          "vanishing between the phases)");
ABSL_FLAG(absl::Duration, request_timeout, absl::Seconds(3), "request_timeout sent to dtmd");
ABSL_FLAG(absl::Duration, retry_interval, absl::Milliseconds(100), "retry_interval sent to dtmd");
ABSL_FLAG(absl::Duration, timeout_to_fail, absl::Seconds(2),
          "timeout_to_fail sent to dtmd (tcc, msg, xa)");
ABSL_FLAG(absl::Duration, settle_seconds, absl::Seconds(180),
          "how long to wait for every transaction to become terminal");
ABSL_FLAG(bool, keep_database, false, "keep the banks' database after a run that passed");

namespace {

using dtm::faults::Mode;

int Fail(const std::string& what) {
  std::fprintf(stderr, "faultload: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "dtm-faultload --coordinator=HOST:PORT[,...] --bank_pg=CONNINFO [--seconds=60s]: the bank "
      "invariant workload against running dtmd replicas");
  absl::ParseCommandLine(argc, argv);
  dtm::faults::WorkloadOptions o;
  for (absl::string_view a :
       absl::StrSplit(absl::GetFlag(FLAGS_coordinator), ',', absl::SkipWhitespace())) {
    o.coordinators.emplace_back(a);
  }
  if (o.coordinators.empty()) return Fail("--coordinator: empty; give dtmd's gRPC address");
  const std::string bank_pg = absl::GetFlag(FLAGS_bank_pg);
  if (bank_pg.empty()) return Fail("--bank_pg: empty; give a PostgreSQL conninfo");
  o.listen_host = absl::GetFlag(FLAGS_listen_host);
  o.transfers = absl::GetFlag(FLAGS_transfers);
  o.duration = absl::GetFlag(FLAGS_seconds);
  o.threads = absl::GetFlag(FLAGS_threads);
  int64_t seed = absl::GetFlag(FLAGS_seed);
  if (seed == 0) seed = absl::ToUnixMicros(absl::Now()) % 1000000007;
  o.seed = static_cast<uint64_t>(seed);
  o.bank_faults = absl::GetFlag(FLAGS_bank_faults);
  o.modes.fill(false);
  for (absl::string_view m :
       absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipWhitespace())) {
    auto on = [&](Mode mode) { o.modes[static_cast<int>(mode)] = true; };
    if (m == "saga") {
      on(Mode::kSaga);
    } else if (m == "tcc") {
      on(Mode::kTcc);
    } else if (m == "msg") {
      on(Mode::kMsg);
    } else if (m == "xa") {
      on(Mode::kXa);
    } else if (m == "http") {
      on(Mode::kHttpSaga);
      on(Mode::kMixedSaga);
    } else if (m == "msgcrash") {
      on(Mode::kMsgCrashAfterCommit);
      on(Mode::kMsgCrashBeforeCommit);
    } else if (m == "xavanish") {
      on(Mode::kXaClientVanishes);
    } else {
      return Fail(absl::StrCat("--modes: unknown kind \"", m,
                               "\" (saga, tcc, msg, xa, http, msgcrash, xavanish)"));
    }
  }
  o.request_timeout = absl::GetFlag(FLAGS_request_timeout);
  o.retry_interval = absl::GetFlag(FLAGS_retry_interval);
  o.timeout_to_fail = absl::GetFlag(FLAGS_timeout_to_fail);
  o.settle = absl::GetFlag(FLAGS_settle_seconds);
  o.progress = true;
  if (o.duration != absl::ZeroDuration() && o.transfers == 2000) {
    o.transfers = 1 << 30;  // a time-bounded run: the time limit decides
  }

  const std::string dbname = absl::StrCat("faultload_", getpid(), "_", seed % 100000);
  absl::StatusOr<std::string> conninfo = dtm::faults::CreateBankDatabase(bank_pg, dbname);
  if (!conninfo.ok()) return Fail(conninfo.status().ToString());
  o.bank_conninfo = *conninfo;
  std::printf("faultload: seed %lld, %s, %d clients, through %s; banks' ledgers in %s\n",
              static_cast<long long>(seed),
              o.duration != absl::ZeroDuration()
                  ? absl::StrCat("for ", absl::FormatDuration(o.duration)).c_str()
                  : absl::StrCat(o.transfers, " transfers").c_str(),
              o.threads, absl::GetFlag(FLAGS_coordinator).c_str(), dbname.c_str());
  std::fflush(stdout);

  dtm::faults::WorkloadReport report;
  {
    absl::StatusOr<std::unique_ptr<dtm::faults::BankWorkload>> workload =
        dtm::faults::BankWorkload::Create(o);
    if (!workload.ok()) return Fail(workload.status().ToString());
    report = (*workload)->Run();
  }
  std::printf("%s", report.Summary("faultload: ").c_str());
  std::printf("faultload: RESULT %s\n", report.Json().c_str());
  std::fflush(stdout);
  if (report.violations.empty() && !absl::GetFlag(FLAGS_keep_database)) {
    dtm::faults::DropBankDatabase(bank_pg, dbname).IgnoreError();
  }
  return report.violations.empty() ? 0 : 1;
}
