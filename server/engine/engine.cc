#include "server/engine/engine.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/engine/engine_internal.h"
#include "server/engine/machine.h"
#include "server/engine/prepared.h"
#include "server/engine/runner.h"
#include "server/model/trace_context.h"
#include "server/runtime/log.h"

namespace dtm {

namespace engine_internal {

double Jitter() {
  thread_local absl::BitGen gen;
  return absl::Uniform(gen, 0.0, 1.0);
}

absl::Status ShuttingDown(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": the coordinator is shutting down"));
}

const char* OutcomeName(CallOutcome outcome) {
  switch (outcome) {
    case CallOutcome::kSuccess:
      return "success";
    case CallOutcome::kFailure:
      return "failure";
    case CallOutcome::kOngoing:
      return "ongoing";
    case CallOutcome::kError:
      return "transient";
  }
  return "transient";
}

void LogStatusChange(const Transaction& t, GlobalStatus status, absl::string_view cause) {
  Log(LogLevel::kInfo, "transaction status")
      .Field("gid", t.gid)
      .Field("trans_type", TransTypeName(t.trans_type))
      .Field("status", GlobalStatusName(status))
      .Field("reason", status == GlobalStatus::kSubmitted ? "" : t.rollback_reason)
      .Field("cause", cause)
      .Field("trace_id", TraceIdOf(t.traceparent));
}

void LogBranchChange(const Transaction& t, const Branch& b, BranchStatus status) {
  Log(LogLevel::kInfo, "branch status")
      .Field("gid", t.gid)
      .Field("trans_type", TransTypeName(t.trans_type))
      .Field("branch_id", b.branch_id)
      .Field("op", BranchOpName(b.op))
      .Field("status", BranchStatusName(status))
      .Field("attempt", b.attempts)
      .Field("error", b.last_error)
      .Field("trace_id", TraceIdOf(t.traceparent));
}

}  // namespace engine_internal

using engine_internal::ResultOf;
using engine_internal::ShuttingDown;

namespace {

// Settles the trace context a new transaction stores (trace_context.h): the one its client
// sent (the API put the request's traceparent and tracestate in `t`), else a new trace.
void AdoptTrace(Transaction& t) {
  TraceContext c = AdoptTraceContext(t.traceparent, t.tracestate, t.options.branch_headers);
  t.traceparent = std::move(c.traceparent);
  t.tracestate = std::move(c.tracestate);
}

EngineOptions WithMetrics(EngineOptions options, Metrics* own) {
  if (options.metrics == nullptr) options.metrics = own;
  return options;
}

}  // namespace

Engine::Engine(EngineOptions options, Store* store, BranchCaller* caller, Clock* clock,
               TimerQueue* timers, ThreadPool* pool)
    : own_metrics_(options.metrics == nullptr ? std::make_unique<Metrics>() : nullptr),
      options_(WithMetrics(std::move(options), own_metrics_.get())),
      store_(store),
      clock_(clock),
      pool_(pool),
      runner_(std::make_unique<Runner>(options_, store, caller, clock, timers, pool)),
      prepared_(std::make_unique<PreparedProtocol>(options_, store, caller, clock, pool,
                                                   runner_.get())) {}

Engine::~Engine() = default;

void Engine::Submit(Transaction txn, SubmitDone done, const std::string& actor) {
  if (HasRegisteredBranches(txn.trans_type) ||
      (txn.trans_type == TransType::kMsg && txn.branches.empty())) {
    prepared_->Submit(txn.gid, txn.trans_type, txn.options.wait_result, std::move(done), actor);
    return;
  }
  if (runner_->stopping()) {
    done(ShuttingDown("Submit"));
    return;
  }
  // A repeat while it runs here; a caller held to its own transactions goes by the store,
  // which tells whose it is (OnCreated).
  if (Runner::ActivePtr a = actor.empty() ? runner_->Find(txn.gid) : nullptr) {
    runner_->Attach(a, txn.trans_type, txn.options.wait_result, std::move(done));
    return;
  }
  absl::Time now = clock_->Now();
  AdoptTrace(txn);
  txn.create_time = txn.update_time = now;
  txn.next_retry_time = now + std::max(options_.lease, txn.options.delay);
  txn.owner = options_.owner;
  txn.lease_expire = now + options_.lease;
  CreateOp op{txn};
  // OnCreated runs on the store's completion thread: it only activates the transaction (its first
  // calls start from there, on its idle strand) or answers, and never blocks, so the hop to
  // the pool a continuation usually takes would only add a wake-up to every Submit.
  store_->Write(std::move(op),
                [this, txn = std::move(txn), done = std::move(done), actor](WriteResult r) mutable {
                  OnCreated(std::move(txn), std::move(r), std::move(done), actor);
                });
}

void Engine::OnCreated(Transaction txn, WriteResult r, SubmitDone done, const std::string& actor) {
  bool wait = txn.options.wait_result;
  TransType type = txn.trans_type;
  if (r.status.ok()) {
    options_.metrics->TransactionStarted(type);
    engine_internal::LogStatusChange(txn, txn.status);
    runner_->Attach(runner_->Activate(std::move(txn), /*recovered=*/false), type, wait,
                    std::move(done));
    return;
  }
  if (!absl::IsAlreadyExists(r.status) || !r.existing) {
    done(r.status);
    return;
  }
  const Transaction& existing = *r.existing;
  if (absl::Status mine = CheckActor(existing, actor); !mine.ok()) {
    done(mine);
  } else if (existing.trans_type != type) {
    done(TypeMismatch(existing, type));
  } else if (existing.status == GlobalStatus::kPrepared && type == TransType::kMsg) {
    // A prepared msg submitted with its steps again: the commit.
    prepared_->Submit(existing.gid, type, wait, std::move(done), actor);
  } else if (Runner::ActivePtr a = runner_->Find(existing.gid)) {
    runner_->Attach(a, type, wait, std::move(done));
  } else {
    done(ResultOf(existing));
  }
}

void Engine::Prepare(Transaction txn, StatusDone done, const std::string& actor) {
  AdoptTrace(txn);
  prepared_->Prepare(std::move(txn), std::move(done), actor);
}

void Engine::RegisterBranch(BranchRegistration registration, StatusDone done) {
  prepared_->RegisterBranch(std::move(registration), std::move(done));
}

void Engine::Abort(const std::string& gid, TransType type, const std::string& reason,
                   SubmitDone done, const std::string& actor) {
  prepared_->Abort(gid, type, reason, std::move(done), actor);
}

void Engine::Query(const std::string& gid, TxnDone done) { runner_->Query(gid, std::move(done)); }

void Engine::List(ListQuery query, std::function<void(absl::StatusOr<ListPage>)> done) {
  pool_->Post(
      [this, query = std::move(query), done = std::move(done)] { done(store_->List(query)); });
}

void Engine::ForceStop(const std::string& gid, const std::string& reason, const TxnDone& done) {
  runner_->ForceStop(gid, reason, done);
}

void Engine::RetryNow(const std::string& gid, StatusDone done) {
  runner_->RetryNow(gid, std::move(done));
}

void Engine::RetryAllWaiting(std::function<void(absl::StatusOr<int64_t>)> done) {
  runner_->RetryAllWaiting(std::move(done));
}

bool Engine::Resume(Transaction txn) {
  if (IsTerminal(txn.status)) return false;
  if (txn.status != GlobalStatus::kPrepared) return runner_->Resume(std::move(txn));
  if (runner_->stopping() || runner_->Find(txn.gid)) return false;
  pool_->Post([this, txn = std::move(txn)]() mutable { prepared_->OnDue(std::move(txn)); });
  return true;
}

void Engine::RenewLeases() { runner_->RenewLeases(); }

void Engine::Shutdown() { runner_->Shutdown(); }

void Engine::set_made_due_hook(std::function<void()> made_due) {
  runner_->set_made_due_hook(std::move(made_due));
}

void Engine::set_self_address(std::string address) {
  runner_->set_self_address(std::move(address));
}

void Engine::set_http_self_address(std::string address) {
  runner_->set_http_self_address(std::move(address));
}

std::string Engine::self_address() const { return runner_->self_address(); }

size_t Engine::active_count() const { return runner_->active_count(); }

size_t Engine::resumed_count() const { return runner_->resumed_count(); }

bool Engine::IsActive(const std::string& gid) const { return runner_->Find(gid) != nullptr; }

size_t Engine::back_check_errors_tracked() const { return prepared_->back_check_errors().size(); }

}  // namespace dtm
