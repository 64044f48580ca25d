#include "server/engine/prepared.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/engine/engine_internal.h"
#include "server/metrics/metrics.h"
#include "server/model/trace_context.h"
#include "server/runtime/log.h"

namespace dtm {

using engine_internal::Jitter;
using engine_internal::LogStatusChange;
using engine_internal::OutcomeName;
using engine_internal::PowerOfTwo;
using engine_internal::ResultOf;
using engine_internal::ShuttingDown;
using engine_internal::WriteThen;

namespace {

// What a log line about `t` reads (LogStatusChange), without its branches and their payloads.
Transaction LogView(const Transaction& t) {
  Transaction v;
  v.gid = t.gid;
  v.trans_type = t.trans_type;
  v.rollback_reason = t.rollback_reason;
  v.traceparent = t.traceparent;
  return v;
}

}  // namespace

int BackCheckErrors::Failed(const std::string& gid, absl::Time now, absl::Duration forget_after) {
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[gid];
  e.count++;
  e.forget_at = now + forget_after;
  int count = e.count;
  PruneLocked(now);
  return count;
}

void BackCheckErrors::Forget(const std::string& gid) {
  absl::MutexLock lock(&mu_);
  entries_.erase(gid);
}

size_t BackCheckErrors::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void BackCheckErrors::PruneLocked(absl::Time now) {
  if (entries_.size() < prune_at_) return;
  absl::erase_if(entries_, [now](const auto& kv) { return kv.second.forget_at <= now; });
  prune_at_ = std::max<size_t>(64, 2 * entries_.size());
}

PreparedProtocol::PreparedProtocol(const EngineOptions& options, Store* store, BranchCaller* caller,
                                   Clock* clock, ThreadPool* pool, Runner* runner)
    : options_(options),
      store_(store),
      caller_(caller),
      clock_(clock),
      pool_(pool),
      runner_(runner) {}

void PreparedProtocol::Prepare(Transaction txn, StatusDone done, const std::string& actor) {
  absl::Time now = clock_->Now();
  txn.create_time = txn.update_time = now;
  // Nobody works on it until its client decides or its timeout passes.
  txn.next_retry_time = now + txn.options.timeout_to_fail;
  txn.owner.clear();
  txn.lease_expire = absl::InfinitePast();
  TransType type = txn.trans_type;
  Transaction logged = LogView(txn);
  WriteThen(store_, CreateOp{std::move(txn)}, pool_,
            [this, type, actor, logged = std::move(logged), done = std::move(done)](WriteResult r) {
              if (r.status.ok()) {
                options_.metrics->TransactionStarted(type);
                LogStatusChange(logged, GlobalStatus::kPrepared);
              }
              if (absl::IsAlreadyExists(r.status) && r.existing) {
                absl::Status mine = CheckActor(*r.existing, actor);
                done(mine.ok() ? CheckPrepareAgain(*r.existing, type) : mine);
              } else {
                done(r.status);
              }
            });
}

void PreparedProtocol::RegisterBranch(BranchRegistration registration, StatusDone done) {
  RegisterOp op{std::move(registration)};
  op.update_time = clock_->Now();
  WriteThen(store_, std::move(op), pool_,
            [done = std::move(done)](const WriteResult& r) { done(r.status); });
}

void PreparedProtocol::Abort(const std::string& gid, TransType type, const std::string& reason,
                             SubmitDone done, const std::string& actor) {
  // An Abort of a transaction past PREPARED: a repeat of an earlier abort is fine.
  auto answer = [type, actor](const Transaction& t) -> absl::StatusOr<SubmitResult> {
    if (absl::Status mine = CheckActor(t, actor); !mine.ok()) return mine;
    absl::Status again = CheckAbortAgain(t, type);
    if (!again.ok()) return again;
    return ResultOf(t);
  };
  if (Runner::ActivePtr a = runner_->Find(gid)) {
    runner_->WithDurableView(
        a, [answer, done = std::move(done)](const Transaction& t) { done(answer(t)); });
    return;
  }
  pool_->Post([this, gid, type, reason, answer, actor, done = std::move(done)]() mutable {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (!t.ok()) {
      done(t.status());
      return;
    }
    if (t->status != GlobalStatus::kPrepared || t->trans_type != type ||
        !CheckActor(*t, actor).ok()) {
      done(answer(*t));  // which refuses another client's
      return;
    }
    std::string why = reason.empty() ? "aborted by the client" : reason;
    bool wait = t->options.wait_result;
    GlobalStatus to = AbortedStatus(type);
    back_check_errors_.Forget(gid);
    Leave(*t, to, why, "",
          [this, gid, type, wait, to, why, answer, done = std::move(done)](
              const absl::Status& st, const Runner::ActivePtr& a) mutable {
            if (a) {
              runner_->Attach(a, type, wait, std::move(done));
            } else if (st.ok()) {
              done(SubmitResult{gid, to, why});
            } else if (absl::IsFailedPrecondition(st)) {  // it moved on meanwhile
              absl::StatusOr<Transaction> now = store_->Get(gid);
              done(now.ok() ? answer(*now) : now.status());
            } else {
              done(st);
            }
          });
  });
}

void PreparedProtocol::Submit(const std::string& gid, TransType type, bool wait, SubmitDone done,
                              const std::string& actor) {
  if (runner_->stopping()) {
    done(ShuttingDown("Submit"));
    return;
  }
  // Committed already, running here (a caller held to its own transactions goes by the store,
  // which tells whose it is).
  if (Runner::ActivePtr a = actor.empty() ? runner_->Find(gid) : nullptr) {
    runner_->Attach(a, type, wait, std::move(done));
    return;
  }
  pool_->Post([this, gid, type, wait, actor, done = std::move(done)]() mutable {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (t.ok()) {
      if (absl::Status mine = CheckActor(*t, actor); !mine.ok()) {
        done(mine);
        return;
      }
    }
    if (absl::IsNotFound(t.status())) {
      done(absl::NotFoundError(absl::StrCat(TransTypeName(type), " gid '", gid,
                                            "' not found: Prepare it before Submit")));
      return;
    }
    if (!t.ok()) {
      done(t.status());
      return;
    }
    if (t->trans_type != type) {
      done(TypeMismatch(*t, type));
      return;
    }
    if (t->status != GlobalStatus::kPrepared) {  // committed (or ended) before: no second read
      if (Runner::ActivePtr a = runner_->Find(gid)) {
        runner_->Attach(a, type, wait, std::move(done));
      } else {
        done(ResultOf(*t));
      }
      return;
    }
    back_check_errors_.Forget(gid);
    Leave(*t, GlobalStatus::kSubmitted, "", "",
          [this, gid, type, wait, done = std::move(done)](const absl::Status& st,
                                                          const Runner::ActivePtr& a) mutable {
            if (a) {
              runner_->Attach(a, type, wait, std::move(done));
            } else if (absl::IsFailedPrecondition(st)) {  // it moved on meanwhile
              runner_->AnswerExisting(gid, type, wait, std::move(done));
            } else {
              done(st);
            }
          });
  });
}

void PreparedProtocol::Leave(const Transaction& prepared, GlobalStatus to,
                             const std::string& reason, const std::string& fence,
                             std::function<void(absl::Status, Runner::ActivePtr)> then,
                             const std::string& cause) {
  absl::Time now = clock_->Now();
  UpdateOp op;
  op.gid = prepared.gid;
  op.owner = fence;
  op.expected_status = GlobalStatus::kPrepared;
  op.new_status = to;
  op.rollback_reason = reason;
  op.update_time = now;
  op.reassign = true;
  if (IsTerminal(to)) {
    op.finish_time = now;
  } else {
    op.next_retry_time = now + std::max(options_.lease, prepared.options.delay);
    op.new_owner = options_.owner;
    op.new_lease_expire = now + options_.lease;
  }
  std::string gid = prepared.gid;
  Transaction logged = LogView(prepared);
  logged.rollback_reason = reason;
  WriteThen(store_, std::move(op), pool_,
            [this, gid, to, logged = std::move(logged), cause,
             then = std::move(then)](const WriteResult& r) {
              if (r.status.ok()) {
                LogStatusChange(logged, to, cause);
                if (IsTerminal(to)) options_.metrics->TransactionFinished(logged.trans_type, to);
              }
              if (!r.status.ok() || IsTerminal(to)) {
                then(r.status, nullptr);
                return;
              }
              absl::StatusOr<Transaction> t = store_->Get(gid);
              if (!t.ok()) {
                // Stored as ours; recovery resumes it once the lease runs out.
                then(t.status(), nullptr);
                return;
              }
              Runner::ActivePtr a = runner_->Activate(*std::move(t), /*recovered=*/false);
              runner_->Start(a);
              then(absl::OkStatus(), a);
            });
}

void PreparedProtocol::OnDue(Transaction txn) {
  switch (txn.trans_type) {
    case TransType::kMsg:
      BackCheck(std::move(txn));
      return;
    case TransType::kTcc:
    case TransType::kXa:
      Apply(txn, OnPreparedTccDue(txn, clock_->Now()));
      return;
    default:
      return;
  }
}

void PreparedProtocol::Apply(const Transaction& txn, const PreparedStep& step) {
  if (!step.leaves()) {
    Postpone(txn, step.retry_at);
    return;
  }
  back_check_errors_.Forget(txn.gid);
  std::string cause;
  if (step.to == GlobalStatus::kAborting) cause = "timed out while PREPARED; aborting";
  if (step.to == GlobalStatus::kSubmitted) cause = "back-check says committed; delivering";
  if (step.to == GlobalStatus::kFailed) cause = "back-check says rolled back; dropped";
  // Leave logs the change. Not OK: its client decided meanwhile, or another replica took it
  // over; either way there is nothing left to do here.
  Leave(
      txn, step.to, step.reason, options_.owner,
      [](const absl::Status&, const Runner::ActivePtr&) {}, cause);
}

void PreparedProtocol::BackCheck(Transaction txn) {
  if (runner_->stopping()) return;
  absl::Time now = clock_->Now();
  // As for branch calls: the check must end while the claim still holds.
  absl::Duration margin = std::min(txn.options.request_timeout, options_.lease / 2);
  if (txn.owner != options_.owner || now + margin >= txn.lease_expire) return;
  BranchCall call = runner_->NewCall(txn, "00", "msg", txn.query_prepared);
  caller_->Call(std::move(call), [this, txn = std::move(txn)](BranchResult r) mutable {
    options_.metrics->BackChecked(OutcomeName(r.outcome));
    pool_->Post([this, txn = std::move(txn), r = std::move(r)] {
      absl::Time now = clock_->Now();
      int errors = 0;
      if (r.outcome == CallOutcome::kError) {
        // Another back-check of it comes at most max_retry_interval later (plus a claim):
        // silence for longer means it was resolved elsewhere.
        absl::Duration forget_after = 2 * txn.options.max_retry_interval + options_.lease;
        errors = back_check_errors_.Failed(txn.gid, now, forget_after);
        if (PowerOfTwo(errors)) {
          Log(LogLevel::kWarning, "back-check failed")
              .Field("gid", txn.gid)
              .Field("trans_type", "msg")
              .Field("failures_in_a_row", errors)
              .Field("error", r.message)
              .Field("trace_id", TraceIdOf(txn.traceparent));
        }
      } else {
        back_check_errors_.Forget(txn.gid);
      }
      Apply(txn, OnBackCheckResult(txn, r, errors, now, Jitter()));
    });
  });
}

void PreparedProtocol::Postpone(const Transaction& txn, absl::Time at) {
  UpdateOp op;
  op.gid = txn.gid;
  op.owner = options_.owner;
  op.expected_status = GlobalStatus::kPrepared;
  op.new_status = GlobalStatus::kPrepared;
  op.update_time = clock_->Now();
  op.next_retry_time = at;
  op.keep_earlier_than = txn.next_retry_time;  // a RetryNow during the back-check stays
  op.reassign = true;                          // released: whoever is free when it is due claims it
  std::string gid = txn.gid;
  store_->Write(std::move(op), [this, gid](const WriteResult& r) {
    // Not PREPARED any more (or gone): resolved meanwhile, its error count is moot. Any other
    // failure: the claim lapses and recovery claims it again.
    if (absl::IsFailedPrecondition(r.status) || absl::IsNotFound(r.status)) {
      back_check_errors_.Forget(gid);
    }
  });
}

}  // namespace dtm
