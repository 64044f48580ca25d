#include "tests/faults/bank_workload.h"

#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/examples/bank/bank_http.h"
#include "client/examples/bank/bank_store.h"
#include "client/examples/bank/bank_transfer.h"
#include "client/pg/barrier.h"
#include "client/saga.h"

namespace dtm::faults {
namespace {

using bank::Fault;

constexpr std::array<const char*, kFaultCount> kFaultNames = {
    "none",          "refuse",    "transient",    "ongoing",
    "lose-response", "duplicate", "replay-later", "stall"};
constexpr std::array<const char*, kModeCount> kModeNames = {"saga",
                                                            "tcc",
                                                            "msg",
                                                            "http-saga",
                                                            "grpc+http-saga",
                                                            "xa",
                                                            "msg-crash-after-commit",
                                                            "msg-crash-before-commit",
                                                            "xa-client-vanishes"};

std::string User(int bank, int i) { return absl::StrCat(bank == 0 ? "a" : "b", i); }
std::string Schema(int bank) { return bank == 0 ? "bank_a" : "bank_b"; }

// Picks faults at random and counts them.
class FaultPlan {
 public:
  explicit FaultPlan(uint64_t seed) : rng_(seed) {}

  Fault Pick(const dtm::BranchContext& branch, const char* op) {
    int roll;
    {
      absl::MutexLock lock(&mu_);
      roll = std::uniform_int_distribution<int>(0, 999)(rng_);
    }
    Fault f = Fault::kNone;
    if (roll < 30)
      f = Fault::kRefuse;
    else if (roll < 80)
      f = Fault::kTransient;
    else if (roll < 110)
      f = Fault::kOngoing;
    else if (roll < 160)
      f = Fault::kLoseResponse;
    else if (roll < 190)
      f = Fault::kDuplicate;
    else if (roll < 220)
      f = Fault::kReplayLater;
    const bool xa_action = branch.trans_type == "xa" && branch.op == "action";
    // A message's delivery cannot be refused (it has no rollback), nor can compensations,
    // confirms, cancels, XA's phase 2 or the back-check: the bank only refuses actions, tries
    // and XA's phase 1.
    if (f == Fault::kRefuse) {
      const std::string name = op;
      bool refusable = xa_action || (branch.trans_type != "msg" &&
                                     (name == "TransOut" || name == "TransIn" ||
                                      name == "TransOutTry" || name == "TransInTry"));
      if (!refusable) f = Fault::kNone;
    }
    // A branch that answers only after its caller gave up costs a client its whole request
    // timeout, and the prepared transaction it leaves holds its locks as long: XA's phase 1
    // only, and a few per run rather than a share of the calls.
    if (xa_action && ++xa_actions_ % 150 == 75) f = Fault::kStall;
    ++counts_[static_cast<int>(f)];
    return f;
  }
  int64_t count(int f) const { return counts_[f].load(); }

 private:
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> xa_actions_{0};
  std::array<std::atomic<int64_t>, kFaultCount> counts_{};
};

// One bank: its service with faults, served on an ephemeral port of `host`.
struct Bank {
  static absl::StatusOr<std::unique_ptr<Bank>> Start(const std::string& schema,
                                                     const std::string& conninfo,
                                                     const std::string& host, FaultPlan* plan,
                                                     dtm::CoordinatorClient* coordinator) {
    absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema(schema);
    if (!store.ok()) return store.status();
    auto b = std::make_unique<Bank>();
    bank::FaultHook hook;
    if (plan != nullptr) {
      hook = [plan](const dtm::BranchContext& br, const char* op) { return plan->Pick(br, op); };
    }
    b->service = std::make_unique<bank::BankService>(*store, conninfo, hook, coordinator);
    auto started = bank::BankHttp::Start(b->service.get(), absl::StrCat(host, ":0"));
    if (!started.ok()) return started.status();
    b->http = *std::move(started);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(absl::StrCat(host, ":0"), grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(b->service.get());
    b->server = builder.BuildAndStart();
    if (b->server == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat("bank ", schema, ": cannot listen on ", host));
    }
    b->address = absl::StrCat(host, ":", port);
    return b;
  }
  ~Bank() {
    http.reset();
    if (server != nullptr) {
      server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
    if (service != nullptr) service->DrainReplays();
  }
  std::unique_ptr<bank::BankService> service;
  std::unique_ptr<bank::BankHttp> http;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

struct Planned {
  std::string gid;
  Mode mode;
  int from_bank;  // 0 or 1
  std::string from_user, to_user;
  int64_t amount;
};

absl::Status Exec(PGconn* db, const std::string& sql) {
  PGresult* r = PQexec(db, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string error = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  if (!ok) return absl::UnavailableError(absl::StrCat(sql, ": ", error));
  return absl::OkStatus();
}

}  // namespace

const char* ModeName(Mode m) { return kModeNames[static_cast<int>(m)]; }
const char* FaultName(bank::Fault f) { return kFaultNames[static_cast<int>(f)]; }

int64_t WorkloadReport::succeeded() const {
  int64_t n = 0;
  for (const auto& o : outcome) n += o[0];
  return n;
}
int64_t WorkloadReport::failed() const {
  int64_t n = 0;
  for (const auto& o : outcome) n += o[1];
  return n;
}
int64_t WorkloadReport::unknown() const {
  int64_t n = 0;
  for (const auto& o : outcome) n += o[2];
  return n;
}

std::string WorkloadReport::Summary(const std::string& prefix) const {
  std::string out = absl::StrFormat(
      "%s%d transfers in %s (+%s to settle); client calls: ok %d, aborted %d, unavailable %d, "
      "other errors %d\n",
      prefix, transfers, absl::FormatDuration(submit_time), absl::FormatDuration(settle_time),
      calls.ok, calls.aborted, calls.unavailable, calls.other);
  for (int m = 0; m < kModeCount; ++m) {
    absl::StrAppendFormat(&out, "%s  %-24s succeeded %5d  failed %5d  never reached dtmd %4d\n",
                          prefix, kModeNames[m], outcome[m][0], outcome[m][1], outcome[m][2]);
  }
  int64_t injected = 0;
  std::string by_kind;
  for (int f = 1; f < kFaultCount; ++f) {
    injected += faults[f];
    absl::StrAppend(&by_kind, " ", kFaultNames[f], " ", faults[f]);
  }
  absl::StrAppendFormat(&out, "%sbank faults injected %d:%s\n", prefix, injected, by_kind);
  absl::StrAppendFormat(&out,
                        "%sbarrier: ran %d, duplicates skipped %d, null compensations %d, "
                        "hanging blocked %d, refused %d; %d ledger rows\n",
                        prefix, barrier.ran, barrier.duplicate, barrier.null_compensation,
                        barrier.hanging, barrier.refused, ledger_rows);
  absl::StrAppendFormat(&out, "%sxa branches: prepared %d, committed %d, rolled back %d\n", prefix,
                        barrier.xa_prepared, barrier.xa_committed, barrier.xa_rolled_back);
  absl::StrAppendFormat(&out, "%sbalances%s; total %d (expected %d)\n", prefix, balances,
                        total_balance, expected_total);
  for (const std::string& v : violations) absl::StrAppend(&out, prefix, "VIOLATION ", v, "\n");
  return out;
}

std::string WorkloadReport::Json() const {
  const double seconds = absl::ToDoubleSeconds(submit_time);
  return absl::StrFormat(
      "{\"transfers\":%d,\"succeeded\":%d,\"failed\":%d,\"unknown\":%d,\"violations\":%d,"
      "\"not_terminal\":%d,\"ok\":%d,\"aborted\":%d,\"unavailable\":%d,\"client_errors\":%d,"
      "\"duplicates_absorbed\":%d,\"null_compensations\":%d,\"hanging_blocked\":%d,"
      "\"submit_seconds\":%.3f,\"settle_seconds\":%.3f,\"throughput\":%.1f}",
      transfers, succeeded(), failed(), unknown(), violations.size(), not_terminal, calls.ok,
      calls.aborted, calls.unavailable, calls.unavailable + calls.other, barrier.duplicate,
      barrier.null_compensation, barrier.hanging, seconds, absl::ToDoubleSeconds(settle_time),
      seconds > 0 ? transfers / seconds : 0.0);
}

absl::StatusOr<std::string> CreateBankDatabase(const std::string& base, const std::string& name) {
  bank::Conn admin(PQconnectdb(base.c_str()));
  if (PQstatus(admin.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("bank database: ", PQerrorMessage(admin.get())));
  }
  if (absl::Status s = Exec(admin.get(), absl::StrCat("DROP DATABASE IF EXISTS ", name)); !s.ok())
    return s;
  if (absl::Status s = Exec(admin.get(), absl::StrCat("CREATE DATABASE ", name)); !s.ok()) return s;
  std::string conninfo = absl::StrCat(base, " dbname=", name);
  bank::Conn db(PQconnectdb(conninfo.c_str()));
  if (PQstatus(db.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("bank database: ", PQerrorMessage(db.get())));
  }
  for (int b = 0; b < 2; ++b) {
    absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema(Schema(b));
    if (!store.ok()) return store.status();
    if (absl::Status s = store->CreateTables(db.get()); !s.ok()) return s;
    for (int i = 0; i < kAccountsPerBank; ++i) {
      if (absl::Status s = store->OpenAccount(db.get(), User(b, i), kInitialBalance); !s.ok()) {
        return s;
      }
    }
  }
  return conninfo;
}

absl::Status DropBankDatabase(const std::string& base, const std::string& name) {
  bank::Conn admin(PQconnectdb(base.c_str()));
  if (PQstatus(admin.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("bank database: ", PQerrorMessage(admin.get())));
  }
  return Exec(admin.get(), absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)"));
}

struct BankWorkload::Impl {
  WorkloadOptions options;
  std::vector<std::unique_ptr<dtm::CoordinatorClient>> clients;
  std::unique_ptr<dtm::CoordinatorClient> banks_client;
  std::unique_ptr<FaultPlan> plan;
  std::array<std::unique_ptr<Bank>, 2> banks;
  std::string run_id;
  std::vector<Mode> enabled;  // the modes drawn from, xa-client-vanishes aside
  absl::Time deadline = absl::InfiniteFuture();

  // The plan of transfer i, drawn from the seed and i alone.
  Planned Plan(int i) const {
    Planned p;
    std::mt19937_64 rng(options.seed ^ (0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(i) + 1)));
    p.gid = absl::StrCat(run_id, "-", i);
    // A vanished XA client's locks are held until timeout_to_fail, stalling every transfer
    // that touches those accounts: a few, spread over the run, rather than a share of it.
    const int every =
        options.duration == absl::ZeroDuration() ? std::max(1, options.transfers / 4) : 1000;
    if (options.modes[static_cast<int>(Mode::kXaClientVanishes)] && i % every == every / 2) {
      p.mode = Mode::kXaClientVanishes;
    } else {
      // Shares per thousand, of the modes enabled: XA holds its row locks from PREPARE to
      // phase 2 and stalls other transfers of those accounts, so it gets a small one.
      static constexpr std::array<int, kModeCount> kWeight = {220, 250, 200, 100, 70,
                                                              90,  40,  30,  0};
      int total = 0;
      for (Mode m : enabled) total += kWeight[static_cast<int>(m)];
      int roll = std::uniform_int_distribution<int>(0, total - 1)(rng);
      p.mode = enabled.back();
      for (Mode m : enabled) {
        roll -= kWeight[static_cast<int>(m)];
        if (roll < 0) {
          p.mode = m;
          break;
        }
      }
    }
    p.from_bank = std::uniform_int_distribution<int>(0, 1)(rng);
    p.from_user =
        User(p.from_bank, std::uniform_int_distribution<int>(0, kAccountsPerBank - 1)(rng));
    p.to_user =
        User(1 - p.from_bank, std::uniform_int_distribution<int>(0, kAccountsPerBank - 1)(rng));
    p.amount = std::uniform_int_distribution<int64_t>(1, 3000)(rng);
    return p;
  }

  absl::Status Transfer(dtm::CoordinatorClient* client, const Planned& p, PGconn* db,
                        const std::array<bank::BankStore, 2>& stores) const;

  // Query through the first coordinator that answers.
  absl::StatusOr<dtm::v1::Transaction> Query(const std::string& gid) const {
    absl::StatusOr<dtm::v1::Transaction> t = absl::UnavailableError("no coordinator");
    for (const auto& c : clients) {
      t = c->Query(gid);
      if (!absl::IsUnavailable(t.status()) && !absl::IsDeadlineExceeded(t.status())) return t;
    }
    return t;
  }
};

BankWorkload::BankWorkload(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BankWorkload::~BankWorkload() = default;

absl::StatusOr<std::unique_ptr<BankWorkload>> BankWorkload::Create(const WorkloadOptions& options) {
  if (options.coordinators.empty()) {
    return absl::InvalidArgumentError("coordinators: at least one dtmd address is needed");
  }
  if (options.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("threads ", options.threads, ": at least 1"));
  }
  if (options.transfers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("transfers ", options.transfers, ": at least 1"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  for (int m = 0; m < kModeCount; ++m) {
    if (options.modes[m] && static_cast<Mode>(m) != Mode::kXaClientVanishes) {
      impl->enabled.push_back(static_cast<Mode>(m));
    }
  }
  if (impl->enabled.empty()) {
    return absl::InvalidArgumentError("modes: at least one besides xa-client-vanishes");
  }
  for (const std::string& address : options.coordinators) {
    auto client = dtm::CoordinatorClient::Connect(address, absl::Seconds(10));
    client->set_wait_for_ready(true);  // calls made while dtmd restarts wait for it
    impl->clients.push_back(std::move(client));
  }
  // The banks' own client, for their XA branches' registration: it fails at once while dtmd
  // is away (the branch then rolls back and its client aborts).
  impl->banks_client = dtm::CoordinatorClient::Connect(options.coordinators[0], absl::Seconds(5));
  if (options.bank_faults) impl->plan = std::make_unique<FaultPlan>(options.seed);
  for (int b = 0; b < 2; ++b) {
    absl::StatusOr<std::unique_ptr<Bank>> bank =
        Bank::Start(Schema(b), options.bank_conninfo, options.listen_host, impl->plan.get(),
                    impl->banks_client.get());
    if (!bank.ok()) return bank.status();
    impl->banks[b] = *std::move(bank);
  }
  impl->run_id = absl::StrCat("inv", options.seed % 100000, "-", getpid());
  return std::unique_ptr<BankWorkload>(new BankWorkload(std::move(impl)));
}

absl::Status BankWorkload::Impl::Transfer(dtm::CoordinatorClient* client, const Planned& p,
                                          PGconn* db,
                                          const std::array<bank::BankStore, 2>& stores) const {
  dtm::v1::TransOptions saga_options;
  saga_options.set_wait_result(true);
  auto set = [](google::protobuf::Duration* d, absl::Duration v) {
    d->set_seconds(absl::ToInt64Seconds(v));
    d->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(v) % 1000000000));
  };
  set(saga_options.mutable_retry_interval(), options.retry_interval);
  set(saga_options.mutable_max_retry_interval(), options.max_retry_interval);
  set(saga_options.mutable_request_timeout(), options.request_timeout);
  // tcc, xa and msg: abort / back-check after timeout_to_fail
  dtm::v1::TransOptions prepared_options = saga_options;
  set(prepared_options.mutable_timeout_to_fail(), options.timeout_to_fail);
  // An XA branch that stalls holds its locks until its client gives up; one whose client
  // vanished, until the coordinator does: both short.
  dtm::v1::TransOptions xa_options = prepared_options;
  set(xa_options.mutable_request_timeout(), std::min(options.request_timeout, absl::Seconds(2)));
  dtm::v1::TransOptions xa_vanish_options = xa_options;
  set(xa_vanish_options.mutable_timeout_to_fail(),
      std::min(options.timeout_to_fail, absl::Seconds(1)));

  bank::Transfer t{banks[p.from_bank]->address, p.from_user, banks[1 - p.from_bank]->address,
                   p.to_user, p.amount};
  switch (p.mode) {
    case Mode::kSaga:
      return bank::SagaTransfer(client, p.gid, t, saga_options).status();
    case Mode::kTcc:
      return bank::TccTransfer(client, p.gid, t, prepared_options).status();
    case Mode::kXa:
      return bank::XaTransfer(client, p.gid, t, xa_options).status();
    case Mode::kXaClientVanishes:
      return bank::XaTransferThenVanish(client, p.gid, t, xa_vanish_options);
    case Mode::kHttpSaga:
    case Mode::kMixedSaga: {
      const Bank& from = *banks[p.from_bank];
      const Bank& to = *banks[1 - p.from_bank];
      // Over HTTP a leg's payload is the TransferRequest in JSON; over gRPC, in protobuf.
      auto json = [](const std::string& user, int64_t amount) {
        return absl::StrCat("{\"user_id\":\"", user, "\",\"amount\":", amount, "}");
      };
      bank::v1::TransferRequest out;
      out.set_user_id(t.from_user);
      out.set_amount(t.amount);
      dtm::Saga saga(client, p.gid);
      if (p.mode == Mode::kHttpSaga) {
        saga.Add(from.http->Target("TransOut"), from.http->Target("TransOutCompensate"),
                 json(t.from_user, t.amount));
      } else {
        saga.Add(bank::Target(t.from_bank, "TransOut"),
                 bank::Target(t.from_bank, "TransOutCompensate"), out.SerializeAsString());
      }
      saga.Add(to.http->Target("TransIn"), to.http->Target("TransInCompensate"),
               json(t.to_user, t.amount));
      saga.options() = saga_options;
      return saga.Submit().status();
    }
    case Mode::kMsg:
      return bank::MsgTransfer(client, p.gid, t, prepared_options, db, stores[p.from_bank])
          .status();
    case Mode::kMsgCrashAfterCommit:
    case Mode::kMsgCrashBeforeCommit: {
      // The client dies after Prepare, after or before its local transaction committed: only
      // the back-check can tell.
      dtm::Msg msg(client, p.gid);
      msg.options() = prepared_options;
      bank::v1::TransferRequest in;
      in.set_user_id(t.to_user);
      in.set_amount(t.amount);
      msg.Add(bank::Target(t.to_bank, "TransIn"), in.SerializeAsString());
      absl::Status s = msg.Prepare(bank::Target(t.from_bank, "QueryPrepared"));
      if (s.ok() && p.mode == Mode::kMsgCrashAfterCommit) {
        dtm::Barrier local = dtm::Barrier::ForMsg(p.gid);
        const dtm::BranchContext ctx{p.gid, "msg", "00", "msg", ""};
        s = local.Call(db, [&](PGconn* tx) {
          return stores[p.from_bank].Apply(tx, bank::Op::kTransOut, t.from_user, t.amount, ctx);
        });
      }
      return s;
    }
  }
  return absl::InternalError("unknown mode");
}

WorkloadReport BankWorkload::Run() {
  Impl& w = *impl_;
  WorkloadReport report;
  const absl::Time start = absl::Now();
  if (w.options.duration != absl::ZeroDuration()) w.deadline = start + w.options.duration;
  std::atomic<int64_t> ok{0}, aborted{0}, unavailable{0}, other{0};
  std::atomic<int> printed_errors{0};
  std::atomic<int> finished_threads{0};

  auto work = [&](int thread) {
    dtm::CoordinatorClient* client = w.clients[thread % w.clients.size()].get();
    bank::Conn db(PQconnectdb(w.options.bank_conninfo.c_str()));
    std::array<bank::BankStore, 2> stores = {*bank::BankStore::ForSchema("bank_a"),
                                             *bank::BankStore::ForSchema("bank_b")};
    // After an error that is not an answer (dtmd or its database away), a client waits before
    // its next transfer, as a real one would: from 20 ms, doubling up to 1 s, back to none
    // after an answer. Without it, an outage turns into thousands of doomed transfers a
    // second that only slow the recovery and the audit down.
    absl::Duration backoff = absl::ZeroDuration();
    while (absl::Now() < w.deadline) {
      const int i = next_++;
      if (i >= w.options.transfers) break;
      const Planned p = w.Plan(i);
      absl::Status s = w.Transfer(client, p, db.get(), stores);
      if (s.ok() || absl::IsAborted(s) || absl::IsFailedPrecondition(s)) {
        backoff = absl::ZeroDuration();
      } else {
        backoff = std::clamp(backoff * 2, absl::Milliseconds(20), absl::Seconds(1));
      }
      if (s.ok()) {
        ++ok;
      } else if (absl::IsAborted(s)) {
        ++aborted;
      } else {
        if (absl::IsUnavailable(s)) {
          ++unavailable;
        } else {
          ++other;
        }
        if (++printed_errors <= 5) {
          std::printf("faultload: client call failed (the coordinator decides): %s %s\n",
                      p.gid.c_str(), s.ToString().c_str());
          std::fflush(stdout);
        }
      }
      if (backoff > absl::ZeroDuration())
        absl::SleepFor(std::min(backoff, w.deadline - absl::Now()));
    }
    ++finished_threads;
  };

  std::thread progress;
  if (w.options.progress) {
    progress = std::thread([&] {
      while (finished_threads.load() < w.options.threads) {
        absl::SleepFor(absl::Seconds(1));
        std::printf(
            "faultload: progress t=%.1f submitted=%d ok=%lld aborted=%lld unavailable=%lld "
            "other=%lld\n",
            absl::ToDoubleSeconds(absl::Now() - start), std::min(next_.load(), w.options.transfers),
            static_cast<long long>(ok.load()), static_cast<long long>(aborted.load()),
            static_cast<long long>(unavailable.load()), static_cast<long long>(other.load()));
        std::fflush(stdout);
      }
    });
  }
  std::vector<std::thread> pool;
  for (int i = 0; i < w.options.threads; ++i) pool.emplace_back(work, i);
  for (std::thread& t : pool) t.join();
  submitting_done_ = true;
  if (progress.joinable()) progress.join();
  report.transfers = std::min(next_.load(), w.options.transfers);
  report.submit_time = absl::Now() - start;
  report.calls = {ok.load(), aborted.load(), unavailable.load(), other.load()};

  // Every transaction the coordinator knows must end: wait, nudging waiting ones.
  std::map<std::string, dtm::v1::Status> final_status;
  std::set<std::string> unknown;  // NOT_FOUND: never reached the coordinator
  std::vector<std::string> pending;
  for (int i = 0; i < report.transfers; ++i) pending.push_back(w.Plan(i).gid);
  const absl::Time settle_deadline = absl::Now() + w.options.settle;
  while (!pending.empty() && absl::Now() < settle_deadline) {
    std::vector<std::string> still;
    for (const std::string& gid : pending) {
      absl::StatusOr<dtm::v1::Transaction> t = w.Query(gid);
      if (absl::IsNotFound(t.status())) {
        unknown.insert(gid);
      } else if (t.ok() && (t->status() == dtm::v1::SUCCEEDED || t->status() == dtm::v1::FAILED)) {
        final_status[gid] = t->status();
      } else {
        still.push_back(gid);
      }
    }
    pending.swap(still);
    if (!pending.empty()) {
      for (const auto& c : w.clients) c->RetryAllWaiting().IgnoreError();
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  report.settle_time = absl::Now() - start - report.submit_time;
  report.not_terminal = static_cast<int64_t>(pending.size());
  if (!pending.empty()) {
    report.violations.push_back(absl::StrCat(pending.size(), " transactions not terminal after ",
                                             absl::FormatDuration(w.options.settle), ", e.g. ",
                                             pending.front()));
  }
  for (auto& b : w.banks) b->service->DrainReplays();  // late deliveries land before the audit

  // The audit, from the banks' own ledgers.
  bank::Conn db(PQconnectdb(w.options.bank_conninfo.c_str()));
  if (PQstatus(db.get()) != CONNECTION_OK) {
    report.violations.push_back(
        absl::StrCat("cannot audit: bank database: ", PQerrorMessage(db.get())));
    return report;
  }
  // Every XA branch was committed or rolled back: a prepared transaction left over would hold
  // its row locks forever.
  {
    PGresult* r =
        PQexec(db.get(), "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      report.violations.push_back(
          absl::StrCat(PQntuples(r), " XA branches left PREPARED, e.g. ", PQgetvalue(r, 0, 0)));
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      report.violations.push_back(absl::StrCat("pg_prepared_xacts: ", PQresultErrorMessage(r)));
    }
    PQclear(r);
  }
  // (bank, user) -> net change; per gid as well.
  std::map<std::pair<std::string, std::string>, int64_t> ledger;
  std::map<std::string, std::map<std::string, int64_t>> by_gid;  // gid -> user -> net balance
  std::map<std::string, int64_t> frozen_by_gid;
  for (int b = 0; b < 2; ++b) {
    const std::string sql =
        absl::StrCat("SELECT gid, branch_id, op, user_id, balance_delta, frozen_delta FROM ",
                     Schema(b), ".movement");
    PGresult* r = PQexec(db.get(), sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      report.violations.push_back(absl::StrCat(sql, ": ", PQresultErrorMessage(r)));
      PQclear(r);
      return report;
    }
    std::set<std::tuple<std::string, std::string, std::string>> seen;
    for (int i = 0; i < PQntuples(r); ++i) {
      std::string gid = PQgetvalue(r, i, 0), branch = PQgetvalue(r, i, 1), op = PQgetvalue(r, i, 2);
      std::string user = PQgetvalue(r, i, 3);
      int64_t delta = std::atoll(PQgetvalue(r, i, 4)), frozen = std::atoll(PQgetvalue(r, i, 5));
      if (!seen.insert({gid, branch, op}).second) {
        report.violations.push_back(
            absl::StrCat("leg applied twice: ", gid, " ", branch, " ", op, " in ", Schema(b)));
      }
      ledger[{Schema(b), user}] += delta;
      by_gid[gid][user] += delta;
      frozen_by_gid[gid] += frozen;
      ++report.ledger_rows;
    }
    PQclear(r);
  }

  for (int i = 0; i < report.transfers; ++i) {
    const Planned p = w.Plan(i);
    std::map<std::string, int64_t> expected;
    auto it = final_status.find(p.gid);
    int col = 2;
    if (it != final_status.end() && it->second == dtm::v1::SUCCEEDED) {
      expected[p.from_user] = -p.amount;
      expected[p.to_user] = p.amount;
      col = 0;
    } else if (it != final_status.end()) {
      col = 1;
    }
    ++report.outcome[static_cast<int>(p.mode)][col];
    std::map<std::string, int64_t> got;
    for (const auto& [user, delta] : by_gid[p.gid]) {
      if (delta != 0) got[user] = delta;
    }
    if (got != expected) {
      std::string g, e;
      for (const auto& [user, d] : got) absl::StrAppend(&g, " ", user, "=", d);
      for (const auto& [user, d] : expected) absl::StrAppend(&e, " ", user, "=", d);
      report.violations.push_back(absl::StrCat(p.gid, " (", ModeName(p.mode), ", ",
                                               col == 0   ? "SUCCEEDED"
                                               : col == 1 ? "FAILED"
                                                          : "unknown",
                                               "): net effect on the accounts{", g,
                                               " } but expected{", e, " }"));
    }
    if (frozen_by_gid[p.gid] != 0) {
      report.violations.push_back(absl::StrCat(p.gid, ": money left frozen"));
    }
  }

  report.expected_total = int64_t{2} * kAccountsPerBank * kInitialBalance;
  for (int b = 0; b < 2; ++b) {
    absl::StatusOr<std::vector<bank::Account>> accounts =
        w.banks[b]->service->store().Balances(db.get());
    if (!accounts.ok()) {
      report.violations.push_back(absl::StrCat("balances: ", accounts.status().ToString()));
      continue;
    }
    if (accounts->size() != static_cast<size_t>(kAccountsPerBank)) {
      report.violations.push_back(absl::StrCat(Schema(b), " has ", accounts->size(), " accounts"));
    }
    for (const bank::Account& a : *accounts) {
      report.total_balance += a.balance;
      if (a.balance < 0) report.violations.push_back(absl::StrCat(a.user_id, " is negative"));
      if (a.frozen != 0) report.violations.push_back(absl::StrCat(a.user_id, " has money frozen"));
      if (a.balance != kInitialBalance + ledger[std::make_pair(Schema(b), a.user_id)]) {
        report.violations.push_back(
            absl::StrCat(a.user_id, ": balance ", a.balance, " disagrees with the ledger"));
      }
      absl::StrAppend(&report.balances, " ", a.user_id, "=", a.balance);
    }
  }
  if (report.total_balance != report.expected_total) {
    report.violations.push_back(absl::StrCat("money created or destroyed: total ",
                                             report.total_balance, ", expected ",
                                             report.expected_total));
  }

  if (w.plan != nullptr) {
    for (int f = 0; f < kFaultCount; ++f) report.faults[f] = w.plan->count(f);
  }
  for (const auto& b : w.banks) {
    const bank::BankService::Stats s = b->service->stats();
    report.barrier.ran += s.ran;
    report.barrier.duplicate += s.duplicate;
    report.barrier.null_compensation += s.null_compensation;
    report.barrier.hanging += s.hanging;
    report.barrier.refused += s.refused;
    report.barrier.injected += s.injected;
    report.barrier.xa_prepared += s.xa_prepared;
    report.barrier.xa_committed += s.xa_committed;
    report.barrier.xa_rolled_back += s.xa_rolled_back;
  }
  return report;
}

}  // namespace dtm::faults
