// dtm-bench: throughput and latency of 2-branch transactions with wait_result through a real
// dtmd, beside a baseline measured in the same run: the same unary gRPC calls made directly,
// without the coordinator, to no-op services. Prints transactions/s, latency percentiles,
// errors and the coordinator/baseline ratio; with a dtmd it spawned, also dtmd's CPU per
// transaction by thread and its context switches (the "cpu" line).
//
// --type picks the transaction (default saga):
//   saga  2 steps; the baseline is a submit-shaped request to a no-op service, then the two
//         actions (the three calls a saga costs).
//   tcc   2 branches through dtm::Tcc (Prepare; per branch RegisterBranch, then its Try;
//         Submit), then dtmd confirms both; the baseline is those eight calls, each
//         coordinator request sent with its own shape to a no-op service, in the same order.
//   msg   2 steps submitted at once (no Prepare); the baseline is a submit-shaped request,
//         then the two actions.
//
// With a PostgreSQL --store, a storage baseline joins a saga run: the rows one saga writes
// (the same tables, the same three transactions) written by a plain libpq loop, one connection
// per client, each transaction sent in one round trip, so the coordinator's cost over the
// database shows as a ratio.
//
//   dtm-bench --clients=32 --seconds=10                 # spawns dtmd on a fresh SQLite file
//   dtm-bench --type=tcc --seconds=10                   # the same for TCC (or --type=msg)
//   dtm-bench --store='host=/tmp/pg port=5432 user=postgres dbname=postgres'
//   dtm-bench --coordinator=127.0.0.1:36790             # uses a running dtmd
//   dtm-bench --protocol=http                           # DTM's HTTP API, HTTP branches
//
// Open loop (--rate): a closed loop sends the next transaction only when the last one
// answered, so a slow phase sends less and its slowness hides (coordinated omission). With
// --rate=N the transactions arrive as a Poisson process of N per second (exponential gaps
// from --seed), whatever the answers; a pool of max(--clients, 64) workers with blocking
// calls takes the arrivals in order, each sleeping until its arrival's time, and an arrival
// that finds every worker busy waits. Latency runs from the scheduled time, so that wait
// counts. Prints the achieved and offered rates, p50/p90/p99/p99.9, errors and how many
// arrivals were picked up more than 1 ms late. Works with every --type and --mode.
// --rate=half first measures the closed-loop maximum of the first mode (a run of at most 3 s)
// and offers half of it, to that mode and to the later ones of the run, so that their
// latencies compare at the same load.
//
//   dtm-bench --rate=1000 --seconds=10                  # coordinator and baseline at 1000/s
//   dtm-bench --type=tcc --rate=half --mode=coordinator
//
// Waiting transactions (--mode=pending, --mode=recovery): --pending=N sagas without
// wait_result whose first branch answers ONGOING and whose retry_interval is hours, so each
// stays SUBMITTED waiting for a retry that does not come during the run; submitted by
// --clients threads to a spawned dtmd (a fresh SQLite file, or --store).
//   pending   at every tenth of N (and at 100k, 500k, 1M), once the first branch has been
//             called for every saga so far: dtmd's RSS (VmRSS) beside the idle process's, the
//             RSS per waiting transaction, and the submit rate.
//   recovery  the same, then kill -9, a restart on the same store, RetryNow(all_waiting):
//             the time until every first branch was called a second time, and the rate of
//             those resumed calls counted from the first one (so that the wait for the killed
//             process's leases to run out does not dominate) and from the restart, beside
//             the rate they were first called at; and dtmd's largest RSS meanwhile. Both
//             processes get --lease (default 3 s) so that the wait stays short.
//
//   dtm-bench --mode=pending --pending=100000 --clients=64
//   dtm-bench --mode=recovery --pending=20000
//   PG=$(scripts/pg-throwaway.sh fresh /tmp/hpg 55439)
//   dtm-bench --mode=recovery --pending=20000 --store="$PG"
//
// With --secure the spawned dtmd serves TLS and authenticates clients (--tls_cert with a CA
// made by openssl, --auth_tokens_file with one token of the submit role): the clients connect
// over TLS and send the token, so the figure includes the handshake-free steady state of TLS
// and the ownership check a submitter's Submit makes. The baseline stays plaintext.
//
// With --protocol=http (sagas only) the clients submit DTM's JSON to the HTTP API and the
// branches are HTTP services; the baseline is the same three HTTP requests (a submit-sized body
// to a no-op service, then each branch) with the same client, on keep-alive connections.
//
// Exits 0 when every transaction of every mode succeeded, 1 when some failed (after printing
// the figures, whose error counts say where) or the run could not be set up, 2 on bad flags.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/msg.h"
#include "client/saga.h"
#include "client/tcc.h"
#include "storage/codec.h"
#include "storage/open/open_store.h"
#include "storage/postgres/pg_store.h"
#include "storage/store.h"
#include "tests/bench/bench_driver.h"
#include "tests/bench/waiting_bench.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/http_branch_server.h"
#include "tests/support/http_client.h"
#include "tests/support/test_ca.h"
#include "tests/util/temp_dir.h"

ABSL_FLAG(int, clients, 32, "concurrent clients (threads with blocking calls)");
ABSL_FLAG(double, seconds, 10, "measuring time per mode");
ABSL_FLAG(double, warmup, 1, "warm-up seconds per mode (not measured)");
ABSL_FLAG(std::string, coordinator, "", "address of a running dtmd; empty: spawn one");
ABSL_FLAG(std::string, store, "", "--store for the spawned dtmd; empty: a fresh SQLite file");
ABSL_FLAG(std::string, mode, "both",
          "both (coordinator + baseline, + pgloop with a PostgreSQL store), coordinator, "
          "baseline, store (the writes of each saga straight to the store, no gRPC), pgloop "
          "(the same rows by a plain libpq loop), pending (dtmd's memory with --pending "
          "waiting sagas) or recovery (resuming them after kill -9 and a restart)");
ABSL_FLAG(std::string, type, "saga", "saga, tcc or msg: the transaction measured");
ABSL_FLAG(std::string, rate, "",
          "open loop: Poisson arrivals of this many transactions per second, or 'half' (half "
          "the closed-loop maximum, measured first); empty: closed loop");
ABSL_FLAG(uint64_t, seed, 1, "open loop: seed of the inter-arrival times");
ABSL_FLAG(int64_t, pending, 100000, "pending and recovery: waiting sagas to create");
ABSL_FLAG(absl::Duration, lease, absl::Seconds(3),
          "recovery: dtmd's --lease, for the killed process and its successor");
ABSL_FLAG(absl::Duration, resume_timeout, absl::Minutes(2),
          "recovery: how long to wait for every waiting saga to be resumed");
ABSL_FLAG(int, payload, 64, "payload bytes per step");
ABSL_FLAG(bool, secure, false,
          "spawn dtmd with TLS and client tokens; clients use both (see the top of the file)");
ABSL_FLAG(std::string, protocol, "grpc",
          "grpc (dtm.v1 and gRPC branches) or http (DTM's HTTP API and HTTP branches)");

namespace {

constexpr char kBenchToken[] = "bench-token-0123456789";
// The gid of a baseline's requests: as long as the coordinator runs' gids.
constexpr char kShapeGid[] = "bench-0000000000000-00-0000000";

using dtm::bench::Op;
using dtm::bench::Result;
using dtm::bench::RunId;

// A coordinator's answer to a transaction with wait_result: "" if it SUCCEEDED.
std::string Finished(const absl::StatusOr<dtm::v1::SubmitResponse>& r) {
  if (!r.ok()) return r.status().ToString();
  if (r->status() != dtm::v1::SUCCEEDED) {
    return absl::StrCat("status ", dtm::v1::Status_Name(r->status()));
  }
  return "";
}

// The baseline of one `type` transaction: the unary calls its coordinator run makes, in the
// same order and with requests of the same shape. `coordinator` stands in for dtmd (a no-op
// service); `b1` and `b2` are the branch services.
std::vector<dtm::bench::UnaryStep> BaselineCalls(const std::string& type,
                                                 grpc::GenericStub* coordinator,
                                                 grpc::GenericStub* b1, grpc::GenericStub* b2,
                                                 const dtm::test::TestBranchServer& branch1,
                                                 const dtm::test::TestBranchServer& branch2,
                                                 const std::string& payload) {
  const std::string service = "/dtm.v1.Coordinator/";
  if (type == "tcc") {
    dtm::v1::PrepareRequest prepare;
    prepare.set_gid(kShapeGid);
    prepare.set_trans_type(dtm::v1::TCC);
    prepare.mutable_options()->set_wait_result(true);
    auto reg = [&](const char* id, const dtm::test::TestBranchServer& b, const std::string& op) {
      dtm::v1::RegisterBranchRequest r;
      r.set_gid(kShapeGid);
      r.set_trans_type(dtm::v1::TCC);
      r.set_branch_id(id);
      r.set_confirm(b.Target(op + "Confirm"));
      r.set_cancel(b.Target(op + "Cancel"));
      r.set_payload(payload);
      return r.SerializeAsString();
    };
    dtm::v1::SubmitRequest submit;
    submit.set_gid(kShapeGid);
    submit.set_trans_type(dtm::v1::TCC);
    submit.mutable_options()->set_wait_result(true);
    // The client: prepare, then per branch its registration and its Try, then submit; dtmd:
    // the confirms, last registered first.
    return {{coordinator, service + "Prepare", prepare.SerializeAsString()},
            {coordinator, service + "RegisterBranch", reg("01", branch1, "TransOut")},
            {b1, "/test.Branch/TransOutTry", payload},
            {coordinator, service + "RegisterBranch", reg("02", branch2, "TransIn")},
            {b2, "/test.Branch/TransInTry", payload},
            {coordinator, service + "Submit", submit.SerializeAsString()},
            {b2, "/test.Branch/TransInConfirm", payload},
            {b1, "/test.Branch/TransOutConfirm", payload}};
  }
  // A saga or a msg: submit, then the two actions dtmd calls.
  dtm::v1::SubmitRequest submit;
  submit.set_gid(kShapeGid);
  submit.set_trans_type(type == "msg" ? dtm::v1::MSG : dtm::v1::SAGA);
  submit.mutable_options()->set_wait_result(true);
  for (const auto& [b, name] : {std::make_pair(&branch1, std::string("TransOut")),
                                std::make_pair(&branch2, std::string("TransIn"))}) {
    dtm::v1::Step* s = submit.add_steps();
    s->set_action(b->Target(name));
    if (type == "saga") s->set_compensate(b->Target(name + "Revert"));
    s->set_payload(payload);
  }
  return {{coordinator, service + "Submit", submit.SerializeAsString()},
          {b1, "/test.Branch/TransOut", payload},
          {b2, "/test.Branch/TransIn", payload}};
}

}  // namespace

// The storage baseline on PostgreSQL: per saga, the three transactions dtmd commits (create
// with 4 branch rows; first action's result; final status with the last result), each as one
// multi-statement round trip on the client's own connection.
class PgLoop {
 public:
  PgLoop(std::string conninfo, std::string schema, int clients)
      : conninfo_(std::move(conninfo)), schema_(std::move(schema)), conns_(clients, nullptr) {}
  ~PgLoop() {
    for (PGconn* c : conns_) PQfinish(c);
  }
  // Creates the tables (dtmd's own schema, by its migration).
  absl::Status Prepare() {
    dtm::PgStoreOptions o;
    o.schema = schema_;
    auto store = dtm::PgStore::Open(conninfo_, o);
    if (!store.ok()) return store.status();
    (*store)->Close();
    return absl::OkStatus();
  }
  std::string Saga(int c, const std::string& gid, const std::string& payload) {
    if (conns_[c] == nullptr) {
      conns_[c] = PQconnectdb(conninfo_.c_str());
      if (PQstatus(conns_[c]) != CONNECTION_OK) return PQerrorMessage(conns_[c]);
      std::string err = Exec(conns_[c], absl::StrCat("SET search_path TO ", schema_));
      if (!err.empty()) return err;
    }
    auto us = [] { return absl::StrCat(absl::ToUnixMicros(absl::Now())); };
    std::string now = us();
    // One value per column of dtmd's schema, in kGlobalColumns' order: a column added there
    // must be added here too (the insert would fail on every saga otherwise).
    static_assert(dtm::kGlobalColumnCount == 23, "pgloop's trans_global values: one per column");
    std::string create =
        absl::StrCat("BEGIN; INSERT INTO trans_global (", dtm::kGlobalColumns, ") VALUES ('", gid,
                     "',1,2,1,0,1000000,300000000,3000000,0,0,'',", now, ",", now, ",NULL,", now,
                     "+10000000,'','','bench',", now, "+10000000,0,'','','');");
    std::string hex = absl::BytesToHexString(payload);
    for (int b = 0; b < 4; ++b) {
      absl::StrAppend(&create,
                      "INSERT INTO trans_branch (gid, idx, branch_id, op, target, payload, "
                      "status, attempts, last_error, finish_time, after) VALUES ('",
                      gid, "',", b, ",'0", b / 2 + 1, "',", b % 2 + 1,
                      ",'127.0.0.1:1/test.Branch/TransOut','\\x", hex, "',1,0,'',NULL,'');");
    }
    create += "COMMIT;";
    auto step = [&](int status, int idx) {
      std::string t = us();
      return absl::StrCat("BEGIN; UPDATE trans_global SET status = ", status, ", update_time = ", t,
                          ", next_retry_time = ", t, "+10000000 WHERE gid = '", gid,
                          "' AND status = 2 AND owner = 'bench'; UPDATE trans_branch SET status = "
                          "2, attempts = 1, finish_time = ",
                          t, " WHERE gid = '", gid, "' AND idx = ", idx, "; COMMIT;");
    };
    for (const std::string& sql : {create, step(2, 0), step(4, 2)}) {
      std::string err = Exec(conns_[c], sql);
      if (!err.empty()) {
        // A failed statement leaves its BEGIN open and aborted: end it, so that one error
        // is reported as itself and not as "current transaction is aborted" on every saga after.
        Exec(conns_[c], "ROLLBACK");
        return err;
      }
    }
    return "";
  }

 private:
  static std::string Exec(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    std::string err =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(r);
    PQclear(r);
    return err;
  }
  const std::string conninfo_, schema_;
  std::vector<PGconn*> conns_;  // one per client thread
};

namespace {

int RunBench() {
  const int clients = absl::GetFlag(FLAGS_clients);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string type = absl::GetFlag(FLAGS_type);
  const std::string payload(absl::GetFlag(FLAGS_payload), 'p');
  const bool http = absl::GetFlag(FLAGS_protocol) == "http";
  const bool secure = absl::GetFlag(FLAGS_secure);
  if (!http && absl::GetFlag(FLAGS_protocol) != "grpc") {
    std::fprintf(stderr, "--protocol '%s' is not grpc or http\n",
                 absl::GetFlag(FLAGS_protocol).c_str());
    return 2;
  }
  if (type != "saga" && type != "tcc" && type != "msg") {
    std::fprintf(stderr, "--type '%s' is not saga, tcc or msg\n", type.c_str());
    return 2;
  }

  if (mode == "pending" || mode == "recovery") {
    if (!absl::GetFlag(FLAGS_coordinator).empty() || secure || http || type != "saga") {
      std::fprintf(stderr,
                   "--mode=%s spawns its own dtmd over plaintext gRPC and creates sagas: no "
                   "--coordinator, --secure, --protocol=http or --type\n",
                   mode.c_str());
      return 2;
    }
    if (absl::GetFlag(FLAGS_pending) <= 0) {
      std::fprintf(stderr, "--pending must be positive\n");
      return 2;
    }
    dtm::bench::WaitingOptions o;
    o.store = absl::GetFlag(FLAGS_store);
    o.count = absl::GetFlag(FLAGS_pending);
    o.clients = clients;
    o.payload = payload;
    if (mode == "pending") return dtm::bench::RunPending(o);
    o.lease = absl::GetFlag(FLAGS_lease);
    o.resume_timeout = absl::GetFlag(FLAGS_resume_timeout);
    return dtm::bench::RunRecovery(o);
  }
  if (mode != "both" && mode != "coordinator" && mode != "baseline" && mode != "store" &&
      mode != "pgloop") {
    std::fprintf(stderr, "--mode '%s' is not one of those --help lists\n", mode.c_str());
    return 2;
  }
  if (type != "saga" && (http || mode == "store" || mode == "pgloop")) {
    std::fprintf(stderr,
                 "--type=%s is measured over gRPC, as coordinator and baseline (the HTTP, store "
                 "and pgloop modes run sagas)\n",
                 type.c_str());
    return 2;
  }

  // Open loop: a rate asked for, or half the closed-loop maximum measured first.
  const std::string rate_flag = absl::GetFlag(FLAGS_rate);
  const bool open = !rate_flag.empty();
  double offered = 0;  // per second; 0 with --rate=half until measured
  if (open && rate_flag != "half" && (!absl::SimpleAtod(rate_flag, &offered) || offered <= 0)) {
    std::fprintf(stderr, "--rate '%s' is not a positive number or 'half'\n", rate_flag.c_str());
    return 2;
  }
  // Open loop: enough workers that a burst of arrivals rarely finds them all busy.
  const int workers = open ? std::max(clients, 64) : clients;

  dtm::test::TestBranchServer branch1(/*record=*/false), branch2(/*record=*/false);
  std::unique_ptr<dtm::test::TestHttpBranchServer> http1, http2;
  // One keep-alive HTTP client per client thread.
  std::vector<std::unique_ptr<dtm::test::HttpClient>> http_clients;
  if (http) {
    http1 = std::make_unique<dtm::test::TestHttpBranchServer>(/*record=*/false);
    http2 = std::make_unique<dtm::test::TestHttpBranchServer>(/*record=*/false);
    for (int c = 0; c < workers; ++c) {
      http_clients.push_back(std::make_unique<dtm::test::HttpClient>());
    }
  }
  std::string secure_dir;
  if (secure) {
    if (!absl::GetFlag(FLAGS_coordinator).empty()) {
      std::fprintf(stderr, "--secure needs a spawned dtmd (no --coordinator)\n");
      return 2;
    }
    secure_dir = dtm::test::MakeTempDir();
    if (!dtm::test::MakeTestCa(secure_dir)) {
      std::fprintf(stderr, "openssl could not make the test CA in %s\n", secure_dir.c_str());
      return 1;
    }
    std::ofstream(secure_dir + "/tokens") << kBenchToken << " bench submit\n";
    // (The plaintext HTTP baseline ignores the CA and its service the header.)
    for (auto& h : http_clients) {
      h->set_tls(secure_dir + "/ca.pem");
      h->set_header(absl::StrCat("Authorization: Bearer ", kBenchToken));
    }
  }
  // DTM's JSON for a 2-step saga on the HTTP branches.
  auto http_saga = [&](const std::string& gid) {
    std::string p = absl::StrCat("\"", payload, "\"");
    return absl::StrCat("{\"gid\":\"", gid, "\",\"trans_type\":\"saga\",\"wait_result\":true,",
                        "\"steps\":[{\"action\":\"", http1->Target("TransOut"),
                        "\",\"compensate\":\"", http1->Target("TransOutRevert"), "\"},",
                        "{\"action\":\"", http2->Target("TransIn"), "\",\"compensate\":\"",
                        http2->Target("TransInRevert"), "\"}],\"payloads\":[", p, ",", p, "]}");
  };
  const char* what = type == "saga"  ? "2-branch sagas"
                     : type == "tcc" ? "2-branch TCCs"
                                     : "2-step msgs";
  std::string loop;
  if (open) {
    loop = absl::StrCat(", open loop: Poisson arrivals at ",
                        offered > 0 ? absl::StrCat(offered, "/s") : "half the closed-loop maximum",
                        " (seed ", absl::GetFlag(FLAGS_seed), ", ", workers, " workers)");
  }
  std::printf(
      "dtm-bench: %d clients, %.0f s per mode, %s with wait_result over %s%s, "
      "%zu-byte payloads, %u hardware threads%s\n",
      clients, seconds, what, http ? "HTTP" : "gRPC", secure ? " (TLS and a client token)" : "",
      payload.size(), std::thread::hardware_concurrency(), loop.c_str());

  const std::string unit = type == "saga" ? "sagas/s" : "trans/s";
  std::vector<Result> results;
  int64_t probe_errors = 0;  // of --rate=half's closed-loop probe, which is not a result
  bool unmeasured = false;   // a mode that measured nothing
  // The dtmd this run spawned (for its CPU per transaction), once there is one.
  pid_t dtmd_pid = -1;
  // A PostgreSQL store on this machine (for its CPU per transaction), or -1.
  const std::string store_url = absl::GetFlag(FLAGS_store);
  const bool db_watched_mode = mode == "both" || mode == "coordinator" || mode == "pgloop";
  const pid_t postmaster = db_watched_mode && dtm::bench::IsPostgresUrl(store_url)
                               ? dtm::bench::LocalPostmaster(store_url)
                               : -1;
  std::map<std::string, double> db_us;  // the database's CPU per transaction, by mode
  const std::string per = type == "saga" ? "saga" : "transaction";
  // Runs `drive` on `op` and prints its result. For the coordinator in a dtmd this run
  // spawned, also dtmd's CPU per transaction: over every transaction of the run, the
  // warm-up's too (all are done when the driver returns). With a PostgreSQL server on this
  // machine, its CPU per transaction too, for that coordinator and for pgloop.
  auto run = [&](const std::string& name, const Op& op,
                 const std::function<Result(const Op&)>& drive) {
    const bool watch_dtmd = name == "coordinator" && dtmd_pid > 0;
    const bool watch_db = postmaster > 0 && (watch_dtmd || name == "pgloop");
    if (!watch_dtmd && !watch_db) {
      results.push_back(drive(op));
      dtm::bench::Print(results.back(), unit);
      return;
    }
    std::atomic<int64_t> done{0};
    const Op counted = [&](int c, int64_t i) {
      std::string err = op(c, i);
      if (err.empty()) done.fetch_add(1);
      return err;
    };
    dtm::bench::CpuSnapshot before, after;
    if (watch_dtmd) before = dtm::bench::SnapshotCpu(dtmd_pid);
    const int64_t db_before = watch_db ? dtm::bench::ServerCpuTicks(postmaster) : 0;
    results.push_back(drive(counted));
    const int64_t db_after = watch_db ? dtm::bench::ServerCpuTicks(postmaster) : 0;
    if (watch_dtmd) after = dtm::bench::SnapshotCpu(dtmd_pid);
    dtm::bench::Print(results.back(), unit);
    if (watch_dtmd) dtm::bench::PrintCpu("dtmd", before, after, done.load(), per);
    if (watch_db) {
      db_us[name] = dtm::bench::PrintServerCpu(name, db_after - db_before, done.load(), per);
    }
  };
  // Measures one mode: closed loop, or open loop at the offered rate (with --rate=half, the
  // first mode's closed-loop maximum sets it for the whole run).
  auto measure = [&](const std::string& name, const Op& op) {
    if (!open) {
      run(name, op,
          [&](const Op& o) { return dtm::bench::Drive(name, clients, warmup, seconds, o); });
      return;
    }
    if (offered <= 0) {
      Result max = dtm::bench::Drive(name, clients, warmup, std::min(seconds, 3.0), op);
      dtm::bench::Print(max, unit);
      probe_errors += max.errors;
      offered = max.rate() / 2;
      if (offered <= 0) {
        std::printf("%-12s no closed-loop maximum to halve: no open loop\n", name.c_str());
        unmeasured = true;
        return;
      }
      std::printf("%-12s closed-loop maximum %.0f %s: open loop at half of it, %.0f/s\n",
                  name.c_str(), max.rate(), unit.c_str(), offered);
    }
    run(name, op, [&](const Op& o) {
      return dtm::bench::DriveOpen(name, {offered, workers, absl::GetFlag(FLAGS_seed)}, warmup,
                                   seconds, o);
    });
  };
  auto gid = [](int c, int64_t i) { return absl::StrCat("bench-", RunId(), "-", c, "-", i); };

  std::unique_ptr<dtm::test::DtmdProcess> dtmd;
  if (mode == "both" || mode == "coordinator") {
    std::string address = absl::GetFlag(FLAGS_coordinator);
    if (address.empty()) {
      std::vector<std::string> args;
      if (secure) {
        args.push_back(absl::StrCat("--tls_cert=", secure_dir, "/srv.pem"));
        args.push_back(absl::StrCat("--tls_key=", secure_dir, "/srv.key"));
        args.push_back(absl::StrCat("--auth_tokens_file=", secure_dir, "/tokens"));
      }
      auto spawned = dtm::bench::SpawnDtmd(absl::GetFlag(FLAGS_store), args);
      if (!spawned.ok()) {
        std::fprintf(stderr, "%s\n", spawned.status().ToString().c_str());
        return 1;
      }
      dtmd = *std::move(spawned);
      address = dtmd->address();
      dtmd_pid = dtmd->pid();
    }
    std::unique_ptr<dtm::CoordinatorClient> client;
    if (secure) {
      auto c =
          dtm::CoordinatorClient::Connect(address, dtm::ClientTls{secure_dir + "/ca.pem", "", ""});
      if (!c.ok()) {
        std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
        return 1;
      }
      client = *std::move(c);
      client->set_auth_token(kBenchToken);
    } else {
      client = dtm::CoordinatorClient::Connect(address);
    }
    if (http) {
      if (!dtmd) {
        std::fprintf(stderr, "--protocol=http needs a spawned dtmd (no --coordinator)\n");
        return 2;
      }
      const std::string submit =
          absl::StrCat(secure ? "https://" : "http://", dtmd->http_address(), "/api/dtmsvr/submit");
      measure("coordinator", [&](int c, int64_t i) {
        dtm::test::HttpResult r = http_clients[c]->Post(submit, http_saga(gid(c, i)));
        if (r.status != 200) return absl::StrCat("HTTP ", r.status, " ", r.error, r.body);
        return std::string();
      });
    } else if (type == "saga") {
      measure("coordinator", [&](int c, int64_t i) {
        dtm::Saga saga(client.get(), gid(c, i));
        saga.Add(branch1.Target("TransOut"), branch1.Target("TransOutRevert"), payload)
            .Add(branch2.Target("TransIn"), branch2.Target("TransInRevert"), payload)
            .WaitResult();
        return Finished(saga.Submit());
      });
    } else if (type == "tcc") {
      dtm::v1::TransOptions options;
      options.set_wait_result(true);
      measure("coordinator", [&](int c, int64_t i) {
        return Finished(dtm::Tcc::Run(
            client.get(), gid(c, i),
            [&](dtm::Tcc& tcc) {
              absl::Status s = tcc.CallBranch(payload, branch1.Target("TransOutTry"),
                                              branch1.Target("TransOutConfirm"),
                                              branch1.Target("TransOutCancel"));
              if (!s.ok()) return s;
              return tcc.CallBranch(payload, branch2.Target("TransInTry"),
                                    branch2.Target("TransInConfirm"),
                                    branch2.Target("TransInCancel"));
            },
            options));
      });
    } else {
      measure("coordinator", [&](int c, int64_t i) {
        dtm::Msg msg(client.get(), gid(c, i));
        msg.Add(branch1.Target("TransOut"), payload).Add(branch2.Target("TransIn"), payload);
        msg.options().set_wait_result(true);
        return Finished(msg.Submit());
      });
    }
    if (dtmd) dtmd->Terminate();
    dtmd_pid = -1;
  }
  if (mode == "store") {
    // The rows a 2-step saga writes, in the engine's order: create; the first action's
    // result; the final status with the second result. Each is a durable group commit.
    std::string url = absl::GetFlag(FLAGS_store);
    if (url.empty()) url = absl::StrCat("sqlite://", dtm::test::MakeTempDir(), "/store.db");
    dtm::StoreOptions so;
    if (dtm::bench::IsPostgresUrl(url)) so.schema = absl::StrCat("bench_store_", RunId());
    auto store = dtm::OpenStore(url, so);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    std::printf("store %s\n", dtm::DescribeStore(url).c_str());
    measure("store", [&](int c, int64_t i) {
      dtm::Transaction t;
      t.gid = absl::StrCat("s", gid(c, i));
      t.trans_type = dtm::TransType::kSaga;
      t.status = dtm::GlobalStatus::kSubmitted;
      t.create_time = t.update_time = absl::Now();
      t.next_retry_time = t.create_time + absl::Seconds(10);
      for (int step = 0; step < 2; ++step) {
        for (auto op : {dtm::BranchOp::kAction, dtm::BranchOp::kCompensate}) {
          dtm::Branch b;
          b.branch_id = dtm::SagaBranchId(step);
          b.op = op;
          b.target = branch1.Target("TransOut");
          b.payload = payload;
          t.branches.push_back(b);
        }
      }
      auto result = [](dtm::Branch b) {
        b.status = dtm::BranchStatus::kSucceeded;
        b.attempts = 1;
        b.finish_time = absl::Now();
        return b;
      };
      dtm::UpdateOp first;
      first.gid = t.gid;
      first.expected_status = first.new_status = dtm::GlobalStatus::kSubmitted;
      first.update_time = absl::Now();
      first.next_retry_time = first.update_time + absl::Seconds(10);
      first.branches.emplace_back(0, result(t.branches[0]));
      dtm::UpdateOp last = first;
      last.new_status = dtm::GlobalStatus::kSucceeded;
      last.finish_time = absl::Now();
      last.next_retry_time = absl::InfinitePast();
      last.branches = {{2, result(t.branches[2])}};
      for (dtm::WriteOp op :
           {dtm::WriteOp(dtm::CreateOp{std::move(t)}), dtm::WriteOp(first), dtm::WriteOp(last)}) {
        dtm::WriteResult r = (*store)->WriteSync(std::move(op));
        if (!r.status.ok()) return r.status.ToString();
      }
      return std::string();
    });
    (*store)->Close();
  }
  if (http && (mode == "both" || mode == "baseline")) {
    // The same three HTTP requests without the coordinator: a submit-sized body to a no-op
    // service, then each branch, with the same client and keep-alive.
    const std::string submit_body = http_saga(kShapeGid);
    const std::string a = http1->Target("Submit"), b = http1->Target("TransOut"),
                      t = http2->Target("TransIn");
    measure("baseline", [&](int c, int64_t) {
      for (const auto& [url, body] : {std::make_pair(&a, &submit_body),
                                      std::make_pair(&b, &payload), std::make_pair(&t, &payload)}) {
        dtm::test::HttpResult r = http_clients[c]->Post(*url, *body);
        if (r.status != 200) return absl::StrCat("HTTP ", r.status, " ", r.error);
      }
      return std::string();
    });
  } else if (mode == "both" || mode == "baseline") {
    // The same unary calls without the coordinator: each request to the coordinator sent
    // with its shape to a no-op service, and the branch calls.
    auto ch0 = grpc::CreateChannel(branch1.address(), grpc::InsecureChannelCredentials());
    auto ch1 = grpc::CreateChannel(branch1.address(), grpc::InsecureChannelCredentials());
    auto ch2 = grpc::CreateChannel(branch2.address(), grpc::InsecureChannelCredentials());
    grpc::GenericStub s0(ch0), s1(ch1), s2(ch2);
    const std::vector<dtm::bench::UnaryStep> calls =
        BaselineCalls(type, &s0, &s1, &s2, branch1, branch2, payload);
    measure("baseline", [&](int, int64_t) { return dtm::bench::CallInOrder(calls); });
  }
  if ((mode == "both" && type == "saga" && dtm::bench::IsPostgresUrl(store_url)) ||
      mode == "pgloop") {
    PgLoop loop(store_url, absl::StrCat("bench_pgloop_", RunId()), workers);
    absl::Status st = loop.Prepare();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    measure("pgloop", [&](int c, int64_t i) {
      return loop.Saga(c, absl::StrCat("pg-", RunId(), "-", c, "-", i), payload);
    });
  }
  auto find = [&](const std::string& name) -> const Result* {
    for (const Result& r : results) {
      if (r.name == name && r.rate() > 0) return &r;
    }
    return nullptr;
  };
  const Result* coordinator = find("coordinator");
  for (const char* base : {"baseline", "pgloop"}) {
    const Result* b = find(base);
    if (coordinator == nullptr || b == nullptr) continue;
    dtm::bench::PrintRatio(*coordinator, *b);
  }
  // What group commit saves the database: its CPU per saga for pgloop (a transaction per
  // write) over the coordinator's. Throughput does not show it alone on a machine where the
  // coordinator's gRPC work (dtmd, the clients, the branch services) shares the cores and
  // pgloop has none.
  if (db_us["coordinator"] > 0 && db_us["pgloop"] > 0) {
    std::printf("ratio        pgloop/coordinator database CPU per %s %.2f (%.0f and %.0f us)\n",
                per.c_str(), db_us["pgloop"] / db_us["coordinator"], db_us["pgloop"],
                db_us["coordinator"]);
  }
  // A figure with errors in it measured something else than it says (failed transactions
  // are cheap): the run fails, for scripts that keep only the figures, after printing them.
  int64_t errors = probe_errors;
  for (const Result& r : results) errors += r.errors;
  if (errors > 0) {
    std::fprintf(stderr, "dtm-bench: %lld transactions failed\n", static_cast<long long>(errors));
    return 1;
  }
  return unmeasured ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Everything a run writes (the SQLite stores it creates, the logs of the dtmd processes it
  // spawns: hundreds of MB after --mode=pending) goes under one directory of its own, through
  // TMPDIR, which its children inherit. Removed when the run succeeded; kept, and named, when
  // it failed, for its logs.
  const std::string dir = dtm::test::MakeTempDir("dtm-bench");
  setenv("TMPDIR", dir.c_str(), 1);
  const int rc = RunBench();
  if (rc == 0) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  } else {
    std::fprintf(stderr, "dtm-bench: the run's files (dtmd logs, stores) are in %s\n", dir.c_str());
  }
  return rc;
}
