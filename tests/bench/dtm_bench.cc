// dtm-bench: throughput and latency of 2-branch sagas with wait_result through a real dtmd,
// beside a baseline measured in the same run: the same three unary gRPC calls (a submit-sized
// request to a no-op service, then the two no-op branch actions) made directly, without the
// coordinator. Prints sagas/s, p50/p99 latency, errors and the coordinator/baseline ratio.
//
// With a PostgreSQL --store, a storage baseline joins the same run: the rows one saga writes
// (the same tables, the same three transactions) written by a plain libpq loop, one connection
// per client, each transaction sent in one round trip, so the coordinator's cost over the
// database shows as a ratio.
//
//   dtm-bench --clients=32 --seconds=10                 # spawns dtmd on a fresh SQLite file
//   dtm-bench --store='host=/tmp/pg port=5432 user=postgres dbname=postgres'
//   dtm-bench --coordinator=127.0.0.1:36790             # uses a running dtmd
//   dtm-bench --protocol=http                           # DTM's HTTP API, HTTP branches
//
// With --secure the spawned dtmd serves TLS and authenticates clients (--tls_cert with a CA
// made by openssl, --auth_tokens_file with one token of the submit role): the clients connect
// over TLS and send the token, so the figure includes the handshake-free steady state of TLS
// and the ownership check a submitter's Submit makes. The baseline stays plaintext.
//
// With --protocol=http the clients submit DTM's JSON to the HTTP API and the branches are
// HTTP services; the baseline is the same three HTTP requests (a submit-sized body to a no-op
// service, then each branch) with the same client, on keep-alive connections.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/saga.h"
#include "storage/codec.h"
#include "storage/open/open_store.h"
#include "storage/postgres/pg_store.h"
#include "storage/store.h"
#include "tests/support/branch_server.h"
#include "tests/support/dtmd_process.h"
#include "tests/support/http_branch_server.h"
#include "tests/support/http_client.h"
#include "tests/support/test_ca.h"

ABSL_FLAG(int, clients, 32, "concurrent clients (threads with blocking calls)");
ABSL_FLAG(double, seconds, 10, "measuring time per mode");
ABSL_FLAG(double, warmup, 1, "warm-up seconds per mode (not measured)");
ABSL_FLAG(std::string, coordinator, "", "address of a running dtmd; empty: spawn one");
ABSL_FLAG(std::string, store, "", "--store for the spawned dtmd; empty: a fresh SQLite file");
ABSL_FLAG(std::string, mode, "both",
          "both (coordinator + baseline, + pgloop with a PostgreSQL store), coordinator, "
          "baseline, store (the writes of each saga straight to the store, no gRPC), or pgloop "
          "(the same rows by a plain libpq loop)");
ABSL_FLAG(int, payload, 64, "payload bytes per step");
ABSL_FLAG(bool, secure, false,
          "spawn dtmd with TLS and client tokens; clients use both (see the top of the file)");
ABSL_FLAG(std::string, protocol, "grpc",
          "grpc (dtm.v1 and gRPC branches) or http (DTM's HTTP API and HTTP branches)");

namespace {

constexpr char kBenchToken[] = "bench-token-0123456789";

struct Result {
  std::string name;
  int64_t ok = 0;
  int64_t errors = 0;
  double seconds = 0;
  absl::Duration p50, p99;
  std::string first_error;
  double rate() const { return ok / seconds; }
};

// Distinguishes this run's rows and schemas from earlier runs'.
std::string RunId() {
  static const std::string id = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  return id;
}

absl::Duration Percentile(std::vector<absl::Duration>& v, double p) {
  if (v.empty()) return absl::ZeroDuration();
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

// Runs `op` from `clients` threads: warm-up, then measures for `seconds`.
Result Drive(const std::string& name, int clients, double warmup, double seconds,
             const std::function<std::string(int, int64_t)>& op) {
  std::atomic<int> phase{0};  // 0 warm-up, 1 measuring, 2 stop
  std::vector<std::vector<absl::Duration>> lat(clients);
  std::vector<int64_t> errors(clients, 0);
  std::vector<std::string> first_error(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int64_t i = 0; phase.load() < 2; ++i) {
        bool measuring = phase.load() == 1;
        absl::Time start = absl::Now();
        std::string err = op(c, i);
        absl::Duration d = absl::Now() - start;
        if (!measuring || phase.load() != 1) continue;
        if (err.empty()) {
          lat[c].push_back(d);
        } else {
          if (errors[c]++ == 0) first_error[c] = err;
        }
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
  Result r;
  r.name = name;
  r.seconds = elapsed;
  std::vector<absl::Duration> all;
  for (int c = 0; c < clients; ++c) {
    all.insert(all.end(), lat[c].begin(), lat[c].end());
    r.errors += errors[c];
    if (r.first_error.empty()) r.first_error = first_error[c];
  }
  r.ok = static_cast<int64_t>(all.size());
  r.p50 = Percentile(all, 0.50);
  r.p99 = Percentile(all, 0.99);
  return r;
}

void Print(const Result& r) {
  std::printf("%-12s sagas/s %9.0f   p50 %7.2f ms   p99 %7.2f ms   ok %8lld   errors %lld%s%s\n",
              r.name.c_str(), r.rate(), absl::ToDoubleMilliseconds(r.p50),
              absl::ToDoubleMilliseconds(r.p99), static_cast<long long>(r.ok),
              static_cast<long long>(r.errors),
              r.first_error.empty() ? "" : "   first: ", r.first_error.c_str());
  std::fflush(stdout);
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
    static_assert(dtm::kGlobalColumnCount == 21, "pgloop's trans_global values: one per column");
    std::string create =
        absl::StrCat("BEGIN; INSERT INTO trans_global (", dtm::kGlobalColumns, ") VALUES ('", gid,
                     "',1,2,1,0,1000000,300000000,3000000,0,0,'',", now, ",", now, ",NULL,", now,
                     "+10000000,'','','bench',", now, "+10000000,0,'');");
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

bool IsPostgresUrl(const std::string& url) {
  return !url.empty() && url.rfind("sqlite://", 0) != 0 && url.find(".db") == std::string::npos;
}

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int clients = absl::GetFlag(FLAGS_clients);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string payload(absl::GetFlag(FLAGS_payload), 'p');

  dtm::test::TestBranchServer branch1(/*record=*/false), branch2(/*record=*/false);
  const bool http = absl::GetFlag(FLAGS_protocol) == "http";
  if (!http && absl::GetFlag(FLAGS_protocol) != "grpc") {
    std::fprintf(stderr, "--protocol '%s' is not grpc or http\n",
                 absl::GetFlag(FLAGS_protocol).c_str());
    return 2;
  }
  std::unique_ptr<dtm::test::TestHttpBranchServer> http1, http2;
  // One keep-alive HTTP client per client thread.
  std::vector<std::unique_ptr<dtm::test::HttpClient>> http_clients;
  if (http) {
    http1 = std::make_unique<dtm::test::TestHttpBranchServer>(/*record=*/false);
    http2 = std::make_unique<dtm::test::TestHttpBranchServer>(/*record=*/false);
    for (int c = 0; c < clients; ++c) {
      http_clients.push_back(std::make_unique<dtm::test::HttpClient>());
    }
  }
  const bool secure = absl::GetFlag(FLAGS_secure);
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
  std::printf(
      "dtm-bench: %d clients, %.0f s per mode, 2-branch sagas with wait_result over %s%s, "
      "%zu-byte payloads, %u hardware threads\n",
      clients, seconds, http ? "HTTP" : "gRPC", secure ? " (TLS and a client token)" : "",
      payload.size(), std::thread::hardware_concurrency());

  std::vector<Result> results;
  std::unique_ptr<dtm::test::DtmdProcess> dtmd;
  if (mode == "both" || mode == "coordinator") {
    std::string address = absl::GetFlag(FLAGS_coordinator);
    if (address.empty()) {
      std::string store = absl::GetFlag(FLAGS_store);
      if (store.empty()) store = absl::StrCat("sqlite://", dtm::test::MakeTempDir(), "/bench.db");
      std::vector<std::string> args;
      if (IsPostgresUrl(store)) args.push_back(absl::StrCat("--schema=bench_", RunId()));
      if (secure) {
        args.push_back(absl::StrCat("--tls_cert=", secure_dir, "/srv.pem"));
        args.push_back(absl::StrCat("--tls_key=", secure_dir, "/srv.key"));
        args.push_back(absl::StrCat("--auth_tokens_file=", secure_dir, "/tokens"));
      }
      dtmd = std::make_unique<dtm::test::DtmdProcess>(store, args);
      absl::Status st = dtmd->Start();
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
      address = dtmd->address();
      std::printf("spawned dtmd at %s, store %s\n", address.c_str(),
                  dtm::DescribeStore(store).c_str());
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
    std::string run = absl::StrCat(absl::ToUnixMillis(absl::Now()));
    if (http) {
      if (!dtmd) {
        std::fprintf(stderr, "--protocol=http needs a spawned dtmd (no --coordinator)\n");
        return 2;
      }
      const std::string submit =
          absl::StrCat(secure ? "https://" : "http://", dtmd->http_address(), "/api/dtmsvr/submit");
      results.push_back(Drive("coordinator", clients, warmup, seconds, [&](int c, int64_t i) {
        dtm::test::HttpResult r =
            http_clients[c]->Post(submit, http_saga(absl::StrCat("bench-", run, "-", c, "-", i)));
        if (r.status != 200) return absl::StrCat("HTTP ", r.status, " ", r.error, r.body);
        return std::string();
      }));
    } else {
      results.push_back(Drive("coordinator", clients, warmup, seconds, [&](int c, int64_t i) {
        dtm::Saga saga(client.get(), absl::StrCat("bench-", run, "-", c, "-", i));
        saga.Add(branch1.Target("TransOut"), branch1.Target("TransOutRevert"), payload)
            .Add(branch2.Target("TransIn"), branch2.Target("TransInRevert"), payload)
            .WaitResult();
        auto r = saga.Submit();
        if (!r.ok()) return r.status().ToString();
        if (r->status() != dtm::v1::SUCCEEDED) {
          return absl::StrCat("status ", dtm::v1::Status_Name(r->status()));
        }
        return std::string();
      }));
    }
    Print(results.back());
    if (dtmd) dtmd->Terminate();
  }
  if (mode == "store") {
    // The rows a 2-step saga writes, in the engine's order: create; the first action's
    // result; the final status with the second result. Each is a durable group commit.
    std::string url = absl::GetFlag(FLAGS_store);
    if (url.empty()) url = absl::StrCat("sqlite://", dtm::test::MakeTempDir(), "/store.db");
    dtm::StoreOptions so;
    if (IsPostgresUrl(url)) so.schema = absl::StrCat("bench_store_", RunId());
    auto store = dtm::OpenStore(url, so);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    std::printf("store %s\n", dtm::DescribeStore(url).c_str());
    std::string run = absl::StrCat(absl::ToUnixMillis(absl::Now()));
    results.push_back(Drive("store", clients, warmup, seconds, [&](int c, int64_t i) {
      dtm::Transaction t;
      t.gid = absl::StrCat("sbench-", run, "-", c, "-", i);
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
    }));
    Print(results.back());
    (*store)->Close();
  }
  if (http && (mode == "both" || mode == "baseline")) {
    // The same three HTTP requests without the coordinator: a submit-sized body to a no-op
    // service, then each branch, with the same client and keep-alive.
    const std::string submit_body = http_saga("bench-0000000000000-00-0000000");
    const std::string a = http1->Target("Submit"), b = http1->Target("TransOut"),
                      t = http2->Target("TransIn");
    results.push_back(Drive("baseline", clients, warmup, seconds, [&](int c, int64_t) {
      for (const auto& [url, body] : {std::make_pair(&a, &submit_body),
                                      std::make_pair(&b, &payload), std::make_pair(&t, &payload)}) {
        dtm::test::HttpResult r = http_clients[c]->Post(*url, *body);
        if (r.status != 200) return absl::StrCat("HTTP ", r.status, " ", r.error);
      }
      return std::string();
    }));
    Print(results.back());
  } else if (mode == "both" || mode == "baseline") {
    // The same three unary calls without the coordinator: a submit-sized request to a no-op
    // service, then each branch action.
    dtm::v1::SubmitRequest shape;
    shape.set_gid("bench-0000000000000-00-0000000");
    for (int i = 0; i < 2; ++i) {
      dtm::v1::Step* s = shape.add_steps();
      s->set_action(branch1.Target("TransOut"));
      s->set_compensate(branch1.Target("TransOutRevert"));
      s->set_payload(payload);
    }
    const std::string submit_bytes = shape.SerializeAsString();
    auto ch0 = grpc::CreateChannel(branch1.address(), grpc::InsecureChannelCredentials());
    auto ch1 = grpc::CreateChannel(branch1.address(), grpc::InsecureChannelCredentials());
    auto ch2 = grpc::CreateChannel(branch2.address(), grpc::InsecureChannelCredentials());
    grpc::GenericStub s0(ch0), s1(ch1), s2(ch2);
    auto call = [](grpc::GenericStub& stub, const char* method, const std::string& bytes) {
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
    };
    results.push_back(Drive("baseline", clients, warmup, seconds, [&](int, int64_t) {
      for (auto [stub, method, bytes] :
           {std::make_tuple(&s0, "/dtm.v1.Coordinator/Submit", &submit_bytes),
            std::make_tuple(&s1, "/test.Branch/TransOut", &payload),
            std::make_tuple(&s2, "/test.Branch/TransIn", &payload)}) {
        grpc::Status s = call(*stub, method, *bytes);
        if (!s.ok()) return s.error_message();
      }
      return std::string();
    }));
    Print(results.back());
  }
  const std::string pg_url = absl::GetFlag(FLAGS_store);
  if ((mode == "both" && IsPostgresUrl(pg_url)) || mode == "pgloop") {
    PgLoop loop(pg_url, absl::StrCat("bench_pgloop_", RunId()), clients);
    absl::Status st = loop.Prepare();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    std::string run = RunId();
    results.push_back(Drive("pgloop", clients, warmup, seconds, [&](int c, int64_t i) {
      return loop.Saga(c, absl::StrCat("pg-", run, "-", c, "-", i), payload);
    }));
    Print(results.back());
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
    std::printf("ratio        coordinator/%s throughput %.3f   p50 latency x%.2f\n", base,
                coordinator->rate() / b->rate(),
                absl::ToDoubleMilliseconds(coordinator->p50) /
                    std::max(1e-9, absl::ToDoubleMilliseconds(b->p50)));
  }
  return 0;
}
