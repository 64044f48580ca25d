#include "server/engine/runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/common/target.h"
#include "server/engine/engine_internal.h"
#include "server/metrics/metrics.h"
#include "server/model/trace_context.h"
#include "server/runtime/log.h"

namespace dtm {

using engine_internal::LogBranchChange;
using engine_internal::LogStatusChange;
using engine_internal::OutcomeName;
using engine_internal::PowerOfTwo;
using engine_internal::ResultOf;
using engine_internal::ShuttingDown;
using engine_internal::WriteThen;

struct Runner::Active {
  std::shared_ptr<Strand> strand;
  TransState state;  // touched only on `strand`
  std::vector<SubmitDone> submit_waiters;
  std::vector<TxnDone> stop_waiters;
  std::optional<TimerQueue::TimerId> timer;
  absl::Time timer_at = absl::InfinitePast();
  bool retired = false;
  // Left memory to wait in the store (Park); `retired` is set too. Work that found it here
  // before it left looks it up again (it is no longer active, or active anew).
  bool parked = false;
  bool resumed = false;  // added by Resume (counted in resumed_); guarded by Runner::mu_
  // Whether this coordinator holds the lease (created or claimed it here), and until when.
  // Branches are called only under a lease with time to spare; a transaction loaded for a
  // ForceStop from another replica's hands is not owned and only writes its end, unfenced.
  bool owned = false;
  std::atomic<int64_t> lease_until_us{INT64_MIN};
  bool starved = false;  // calls were held back for want of lease time
  // Writes of `state` completed so far: a renewal's reading of the stored next_retry_time is
  // only compared with `state` if no write completed since the renewal began.
  std::atomic<uint64_t> writes_done{0};

  absl::Time lease_until() const { return absl::FromUnixMicros(lease_until_us.load()); }
  void ExtendLease(absl::Time until) {
    int64_t us = absl::ToUnixMicros(until);
    int64_t cur = lease_until_us.load();
    while (cur < us && !lease_until_us.compare_exchange_weak(cur, us)) {
    }
  }
};

namespace {

constexpr char kNeedsLive[] = "; ForceStop needs a non-terminal one";

// Longer than any claim takes from its read to Resume.
constexpr absl::Duration kRetiredMemory = absl::Minutes(1);

// The transaction as a reader may rely on: the global status is the durable one (a status
// whose write is still in flight is not reported yet); branches show their latest results.
Transaction DurableView(const TransState& s) {
  Transaction t = s.txn;
  if (t.status != s.durable_status) {
    t.status = s.durable_status;
    if (!IsTerminal(t.status)) t.finish_time = absl::InfinitePast();
    if (t.status == GlobalStatus::kSubmitted) t.rollback_reason.clear();
  }
  return t;
}

// The answer to a waiting Submit when the transaction goes on elsewhere (shutdown, a lost
// lease): its durable status, which says it is still running.
SubmitResult StillRunning(const TransState& s) {
  SubmitResult r = ResultOf(s.txn);
  r.status = s.durable_status;
  return r;
}

// A branch that must eventually succeed (compensate, confirm, cancel, a msg's action) and
// keeps failing needs a human: say so in the log, at attempts 1, 2, 4, 8, ... so a stuck one
// stays visible without flooding.
void LogIfStuck(const Transaction& t, int index, const BranchResult& r) {
  const Branch& b = t.branches[index];
  if (r.outcome == CallOutcome::kSuccess || !PowerOfTwo(b.attempts)) return;
  if (t.trans_type == TransType::kSaga && b.op == BranchOp::kAction) return;
  Log(LogLevel::kWarning, absl::StrCat(BranchOpName(b.op), " not done yet"))
      .Field("gid", t.gid)
      .Field("trans_type", TransTypeName(t.trans_type))
      .Field("branch_id", b.branch_id)
      .Field("op", BranchOpName(b.op))
      .Field("target", b.target)
      .Field("attempt", b.attempts)
      .Field("error", r.message)
      .Field("trace_id", TraceIdOf(t.traceparent));
}

// Logs and counts what a write made durable that was not before (called before OnPersisted,
// so before any waiter learns of it).
void ObserveWritten(const TransState& s, const WrittenState& w, Metrics* metrics) {
  const Transaction& t = s.txn;
  for (const auto& [idx, status] : w.branches) {
    if (s.rt[idx].durable_status != status) LogBranchChange(t, t.branches[idx], status);
  }
  if (w.status == s.durable_status) return;
  LogStatusChange(t, w.status);
  if (IsTerminal(w.status)) metrics->TransactionFinished(t.trans_type, w.status);
}

absl::Status AlreadyEnded(const Transaction& t, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("transaction '", t.gid, "' is already ", GlobalStatusName(t.status), what));
}

}  // namespace

Runner::Runner(const EngineOptions& options, Store* store, BranchCaller* caller, Clock* clock,
               TimerQueue* timers, ThreadPool* pool)
    : options_(options),
      store_(store),
      caller_(caller),
      clock_(clock),
      timers_(timers),
      pool_(pool),
      self_address_(options_.self_address),
      http_self_address_(options_.http_self_address) {}

Runner::~Runner() = default;

bool Runner::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Runner::set_self_address(std::string address) {
  absl::MutexLock lock(&mu_);
  self_address_ = std::move(address);
}

void Runner::set_made_due_hook(std::function<void()> made_due) {
  absl::MutexLock lock(&mu_);
  made_due_ = std::move(made_due);
}

void Runner::MadeDue() {
  std::function<void()> hook;
  {
    absl::MutexLock lock(&mu_);
    hook = made_due_;
  }
  if (hook) hook();
}

void Runner::set_http_self_address(std::string address) {
  absl::MutexLock lock(&mu_);
  http_self_address_ = std::move(address);
}

std::string Runner::self_address() const {
  absl::MutexLock lock(&mu_);
  return self_address_;
}

size_t Runner::active_count() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

size_t Runner::resumed_count() const {
  absl::MutexLock lock(&mu_);
  return resumed_;
}

void Runner::EraseLocked(const ActivePtr& a) {
  auto it = active_.find(a->state.txn.gid);
  if (it == active_.end() || it->second != a) return;
  active_.erase(it);
  if (a->resumed) --resumed_;
}

Runner::ActivePtr Runner::Find(const std::string& gid) const {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(gid);
  return it == active_.end() ? nullptr : it->second;
}

Runner::ActivePtr Runner::Activate(Transaction txn, bool recovered, bool* created) {
  absl::MutexLock lock(&mu_);
  if (created) *created = false;
  auto it = active_.find(txn.gid);
  if (it != active_.end()) return it->second;
  if (recovered && retired_.contains(txn.gid)) return nullptr;
  auto a = std::make_shared<Active>();
  a->strand = std::make_shared<Strand>(pool_);
  std::string gid = txn.gid;
  a->owned = !txn.owner.empty() && txn.owner == options_.owner;
  if (a->owned) a->ExtendLease(txn.lease_expire);
  // A msg is delivered `delay` after it was submitted. One read back from the store (a restart,
  // a claim, a RetryNow that touched it) is held back too while none of its branches was
  // called: its update_time is then still its submit's, since a msg is written again only
  // once a branch was called (or when it ends).
  absl::Time deliver_at = txn.update_time + txn.options.delay;
  bool delayed = txn.trans_type == TransType::kMsg && txn.options.delay > absl::ZeroDuration() &&
                 (!recovered || std::all_of(txn.branches.begin(), txn.branches.end(),
                                            [](const Branch& b) { return b.attempts == 0; }));
  a->state = recovered ? RecoveredTransState(std::move(txn)) : NewTransState(std::move(txn));
  if (delayed) HoldCallsUntil(a->state, deliver_at);
  active_.emplace(std::move(gid), a);
  if (created) *created = true;
  return a;
}

void Runner::Start(const ActivePtr& a) {
  a->strand->Execute([this, a] { Drive(a); });
}

void Runner::Attach(const ActivePtr& a, TransType type, bool wait, SubmitDone done) {
  a->strand->Execute([this, a, type, wait, done = std::move(done)]() mutable {
    const Transaction& t = a->state.txn;
    if (t.trans_type != type) {
      done(TypeMismatch(t, type));
      return;
    }
    if (!wait || a->retired) {
      done(StillRunning(a->state));
    } else {
      a->submit_waiters.push_back(std::move(done));
    }
    Drive(a);
  });
}

void Runner::AnswerExisting(const std::string& gid, TransType type, bool wait, SubmitDone done) {
  if (ActivePtr a = Find(gid)) {
    Attach(a, type, wait, std::move(done));
    return;
  }
  pool_->Post([this, gid, type, done = std::move(done)] {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (!t.ok()) {
      done(t.status());
    } else if (t->trans_type != type) {
      done(TypeMismatch(*t, type));
    } else {
      done(ResultOf(*t));
    }
  });
}

void Runner::WithDurableView(const ActivePtr& a, std::function<void(const Transaction&)> fn) {
  a->strand->Post([a, fn = std::move(fn)] { fn(DurableView(a->state)); });
}

void Runner::Query(const std::string& gid, TxnDone done) {
  if (ActivePtr a = Find(gid)) {
    WithDurableView(a, [done = std::move(done)](const Transaction& t) { done(t); });
    return;
  }
  pool_->Post([this, gid, done = std::move(done)] { done(store_->Get(gid)); });
}

void Runner::WithActive(const std::string& gid, std::function<void(const ActivePtr&)> on_active,
                        TxnDone on_stored) {
  if (ActivePtr a = Find(gid)) {
    a->strand->Post([this, a, gid, on_active = std::move(on_active),
                     on_stored = std::move(on_stored)]() mutable {
      if (a->parked) {
        WithActive(gid, std::move(on_active), std::move(on_stored));
      } else {
        on_active(a);
      }
    });
    return;
  }
  pool_->Post([this, gid, on_active = std::move(on_active), on_stored = std::move(on_stored)] {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (!t.ok() || IsTerminal(t->status)) {
      on_stored(std::move(t));
      return;
    }
    ActivePtr a = Activate(*std::move(t), /*recovered=*/true);
    if (!a) {
      // It ended while we read it: answer from the store's final word.
      on_stored(store_->Get(gid));
      return;
    }
    a->strand->Post([a, on_active = on_active] { on_active(a); });
  });
}

void Runner::ForceStop(const std::string& gid, const std::string& reason, const TxnDone& done) {
  WithActive(
      gid,
      [this, reason, done](const ActivePtr& a) {
        if (IsTerminal(a->state.txn.status)) {
          done(AlreadyEnded(a->state.txn, kNeedsLive));
          return;
        }
        ForceStopTrans(a->state, reason, clock_->Now());
        a->stop_waiters.push_back(done);
        Drive(a);
      },
      [done](absl::StatusOr<Transaction> t) {
        if (t.ok()) {
          done(AlreadyEnded(*t, kNeedsLive));
        } else {
          done(t.status());
        }
      });
}

void Runner::MakeDue(const ActivePtr& a) {
  RetryAllNow(a->state);
  a->state.persist_not_before = absl::InfinitePast();
}

void Runner::TakeTouch(const ActivePtr& a, absl::Time stored_next) {
  MakeDue(a);
  a->state.txn.next_retry_time = a->state.durable_next_retry_time = stored_next;
}

void Runner::RetryNow(const std::string& gid, StatusDone done) {
  ActivePtr a = Find(gid);
  if (!a) {
    // Not worked on here: make it due in the store. The replica holding its lease sees that
    // when it renews or next writes it; if nobody does, recovery claims it. One this coordinator
    // parked (its lease is still ours) comes back right away.
    WriteThen(store_, TouchOp{gid, clock_->Now()}, pool_,
              [this, gid, done = std::move(done)](const WriteResult& r) {
                if (r.status.ok()) {
                  Unpark(gid);
                  MadeDue();
                }
                done(r.status);
              });
    return;
  }
  a->strand->Post([this, a, gid, done = std::move(done)]() mutable {
    if (a->parked) {
      RetryNow(gid, std::move(done));
      return;
    }
    if (IsTerminal(a->state.txn.status) || a->retired) {
      done(AlreadyEnded(a->state.txn, ""));
      return;
    }
    MakeDue(a);
    Drive(a);
    done(absl::OkStatus());
  });
}

namespace {

// How many transactions a bulk RetryNow made due: the store's touch, then each transaction in
// memory here whose strand made it due. The answer goes out when the last strand task let go
// of it, those a stopping engine dropped included (they made nothing due).
class DueTally {
 public:
  DueTally(int64_t touched, std::function<void(absl::StatusOr<int64_t>)> done)
      : count_(touched), done_(std::move(done)) {}
  DueTally(const DueTally&) = delete;
  DueTally& operator=(const DueTally&) = delete;
  ~DueTally() { done_(count_.load()); }
  void Add() { count_.fetch_add(1); }

 private:
  std::atomic<int64_t> count_;
  const std::function<void(absl::StatusOr<int64_t>)> done_;
};

}  // namespace

void Runner::RetryAllWaiting(std::function<void(absl::StatusOr<int64_t>)> done) {
  std::vector<ActivePtr> here;
  TouchAllOp touch{clock_->Now(), {}};
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [gid, a] : active_) {
      // Another replica's, or ours no longer for sure (a lease that ran out may have been
      // claimed elsewhere): the touch reaches its owner.
      if (!a->owned || a->lease_until() <= touch.now) continue;
      here.push_back(a);
      touch.except.push_back(gid);
    }
  }
  // Work here is made due here, as a RetryNow of its gid would be. It is left out of the
  // store's touch: this coordinator's next write or renewal would take that touch for a second
  // RetryNow and call again. The rest, on any replica: their owners notice at their next
  // renewal or write (a branch whose call is out then is called again once it answers);
  // recovery claims what nobody owns, and what this coordinator parked once its lease has run
  // out. The touch goes first: when it fails (the store is out of reach), the caller hears so
  // and nothing was retried here either.
  WriteThen(store_, std::move(touch), pool_,
            [this, here = std::move(here), done = std::move(done)](const WriteResult& r) {
              if (!r.status.ok()) {
                done(r.status);
                return;
              }
              if (r.touched > 0) MadeDue();
              auto tally = std::make_shared<DueTally>(r.touched, done);
              for (const ActivePtr& a : here) {
                a->strand->Post([this, a, tally] {
                  if (IsTerminal(a->state.txn.status)) return;  // finished meanwhile
                  tally->Add();
                  if (a->retired) {
                    // Left memory meanwhile (parked, or its lease lost): touched in the store.
                    RetryNow(a->state.txn.gid, [](const absl::Status&) {});
                    return;
                  }
                  MakeDue(a);
                  Drive(a);
                });
              }
            });
}

bool Runner::Resume(Transaction txn) {
  ActivePtr existing;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    auto it = active_.find(txn.gid);
    if (it != active_.end()) existing = it->second;
  }
  // Our own work whose lease had lapsed (the store was unreachable) and we claimed again.
  auto keep_running = [this](const ActivePtr& running, const std::string& owner,
                             absl::Time lease_expire) {
    if (running->owned && owner == options_.owner) {
      running->ExtendLease(lease_expire);
      running->strand->Post([this, running] {  // calls held back for want of lease may go
        if (running->starved && !running->retired) {
          running->starved = false;
          Drive(running);
        }
      });
    }
    return false;
  };
  if (existing) return keep_running(existing, txn.owner, txn.lease_expire);
  std::string gid = txn.gid;
  const std::string owner = txn.owner;
  const absl::Time lease_expire = txn.lease_expire;
  bool created = false;
  ActivePtr a = Activate(std::move(txn), /*recovered=*/true, &created);
  if (!a) return false;
  // Made active meanwhile by another thread (a Submit's create completes on the store's
  // completion thread while claims complete on its writer): the running one is kept.
  if (!created) return keep_running(a, owner, lease_expire);
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(gid);
    if (it != active_.end() && it->second == a && !a->resumed) {
      a->resumed = true;
      ++resumed_;
    }
  }
  Start(a);
  return true;
}

void Runner::RenewLeases() {
  absl::Time now = clock_->Now();
  std::vector<ActivePtr> due;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (const auto& [gid, a] : active_) {
      if (a->owned && a->lease_until() - now < options_.lease * 2 / 3) due.push_back(a);
    }
  }
  if (due.empty()) return;
  RenewOp op;
  op.owner = options_.owner;
  op.now = now;
  op.lease = options_.lease;
  std::vector<uint64_t> writes_before;
  for (const ActivePtr& a : due) {
    op.gids.push_back(a->state.txn.gid);
    writes_before.push_back(a->writes_done.load());
  }
  WriteResult r = store_->WriteSync(std::move(op));
  if (!r.status.ok()) {
    // Cannot renew: calls stop as leases run short (Drive); whatever has run out is dropped,
    // as another replica may own it by now.
    for (const ActivePtr& a : due) {
      if (a->lease_until() <= now) a->strand->Post([this, a] { Drop(a); });
    }
    return;
  }
  options_.metrics->LeasesRenewed(static_cast<int64_t>(r.renewed.size()));
  absl::flat_hash_map<std::string, absl::Time> renewed(r.renewed.begin(), r.renewed.end());
  for (size_t i = 0; i < due.size(); ++i) {
    const ActivePtr& a = due[i];
    auto it = renewed.find(a->state.txn.gid);
    if (it == renewed.end()) {
      // Not renewed: another coordinator claimed it, or someone ended it (a ForceStop on
      // another replica keeps the owner). The store tells which.
      absl::StatusOr<Transaction> stored = store_->Get(a->state.txn.gid);
      if (stored.ok() && IsTerminal(stored->status)) {
        a->strand->Post([this, a, t = *std::move(stored)]() mutable { EndedElsewhere(a, t); });
      } else {
        a->strand->Post([this, a] { Drop(a); });
      }
      continue;
    }
    a->ExtendLease(now + options_.lease);
    absl::Time stored_next = it->second;
    a->strand->Post([this, a, stored_next, writes = writes_before[i]] {
      if (a->retired) return;
      TransState& s = a->state;
      // Stores keep microseconds: compare at that precision, with what the last successful
      // write stored (a failed one stored nothing). A write that completed since the renewal
      // read the row makes the reading stale: the next renewal looks again.
      if (!s.persist_in_flight && a->writes_done.load() == writes &&
          absl::ToUnixMicros(stored_next) < absl::ToUnixMicros(s.durable_next_retry_time) &&
          !IsTerminal(s.txn.status)) {
        TakeTouch(a, stored_next);
        a->starved = true;
      }
      if (a->starved) {
        a->starved = false;
        Drive(a);
      }
    });
  }
}

void Runner::AnswerWaiters(Active& a, const absl::StatusOr<SubmitResult>& submit,
                           const absl::StatusOr<Transaction>& stop) {
  std::vector<SubmitDone> submit_waiters = std::move(a.submit_waiters);
  std::vector<TxnDone> stop_waiters = std::move(a.stop_waiters);
  a.submit_waiters.clear();
  a.stop_waiters.clear();
  for (SubmitDone& w : submit_waiters) w(submit);
  for (TxnDone& w : stop_waiters) w(stop);
}

void Runner::Drop(const ActivePtr& a) {
  if (a->retired) return;
  // A write in flight will tell, through its owner fence, whether the work is still ours.
  if (a->state.persist_in_flight) return;
  a->retired = true;
  if (a->timer) timers_->Cancel(*a->timer);
  a->timer.reset();
  options_.metrics->LeaseLost();
  Log(LogLevel::kWarning, "lease lost; left to its new owner or to recovery")
      .Field("gid", a->state.txn.gid)
      .Field("trans_type", TransTypeName(a->state.txn.trans_type))
      .Field("trace_id", TraceIdOf(a->state.txn.traceparent));
  // Still running, elsewhere: waiters get the durable status, as at shutdown.
  AnswerWaiters(*a, StillRunning(a->state),
                absl::UnavailableError(absl::StrCat("transaction '", a->state.txn.gid,
                                                    "' moved to another coordinator")));
  absl::MutexLock lock(&mu_);
  EraseLocked(a);
}

void Runner::EndedElsewhere(const ActivePtr& a, const Transaction& stored) {
  // A write in flight learns the same through its status fence.
  if (a->retired || a->state.persist_in_flight) return;
  Log(LogLevel::kInfo, "transaction ended by another coordinator")
      .Field("gid", stored.gid)
      .Field("trans_type", TransTypeName(stored.trans_type))
      .Field("status", GlobalStatusName(stored.status))
      .Field("reason", stored.rollback_reason)
      .Field("trace_id", TraceIdOf(stored.traceparent));
  a->state.txn.status = stored.status;
  a->state.txn.rollback_reason = stored.rollback_reason;
  a->state.txn.finish_time = stored.finish_time;
  a->state.durable_status = stored.status;
  Retire(a, absl::OkStatus());  // waiters get the stored end
}

void Runner::Drive(const ActivePtr& a) {
  if (a->retired) return;
  const bool stop = stopping();
  absl::Time now = clock_->Now();
  Decision d = Decide(a->state, now, options_.lease);
  if (d.persist) {
    d.persist->owner = a->owned ? options_.owner : "";
    WrittenState written = SummarizeWrite(*d.persist);
    WriteThen(
        store_, std::move(*d.persist), a->strand.get(),
        [this, a, written = std::move(written)](const WriteResult& r) {
          const absl::Status& st = r.status;
          a->writes_done.fetch_add(1);
          if (st.ok()) ObserveWritten(a->state, written, options_.metrics);
          OnPersisted(a->state, written, st, clock_->Now() + options_.write_retry);
          // The write kept another time (earlier than the last it wrote): a touch, made
          // meanwhile. Taken even when this write asked for an earlier time still.
          if (st.ok() && r.next_retry_time != absl::InfinitePast() &&
              absl::ToUnixMicros(r.next_retry_time) !=
                  absl::ToUnixMicros(written.next_retry_time) &&
              !IsTerminal(a->state.txn.status)) {
            TakeTouch(a, r.next_retry_time);
          }
          if (absl::IsAborted(st)) {  // fenced: another coordinator claimed it
            Drop(a);
            return;
          }
          if (absl::IsFailedPrecondition(st) || absl::IsNotFound(st)) {
            // Someone else decided (e.g. a ForceStop raced with us): the store wins.
            Retire(a, absl::AbortedError(absl::StrCat("transaction '", a->state.txn.gid,
                                                      "' changed concurrently: ", st.message())));
            return;
          }
          Drive(a);
        });
  }
  // A call must end before our lease can: otherwise another replica could take the work
  // over while the branch is still being called on our behalf.
  absl::Duration margin = std::min(a->state.txn.options.request_timeout, options_.lease / 2);
  bool leased = a->owned && now + margin < a->lease_until();
  for (int i : d.calls) {
    if (stop || !leased) {
      // Undo the dispatch: the call is made again after the restart or the lease renewal.
      a->state.rt[i].in_flight = false;
      a->state.txn.branches[i].attempts--;
      if (!stop) a->starved = true;
      continue;
    }
    Dispatch(a, i);
  }
  if (d.answer_waiters) {
    std::vector<SubmitDone> waiters = std::move(a->submit_waiters);
    a->submit_waiters.clear();
    SubmitResult r = ResultOf(a->state.txn);
    for (SubmitDone& w : waiters) w(r);
  }
  if (d.done) {
    Retire(a, absl::OkStatus());
    return;
  }
  if (!stop && Parkable(*a, d, now)) {
    Park(a);
    return;
  }
  ArmTimer(a, stop ? std::nullopt : d.wake);
}

bool Runner::Parkable(const Active& a, const Decision& d, absl::Time now) const {
  const TransState& s = a.state;
  if (!a.owned || !d.wake || !d.calls.empty() || s.persist_in_flight || s.global_dirty) {
    return false;
  }
  if (!a.submit_waiters.empty() || !a.stop_waiters.empty() || a.starved) return false;
  if (s.txn.status != s.durable_status) return false;
  for (const BranchRuntime& r : s.rt) {
    if (r.in_flight || r.dirty) return false;
  }
  // Recovery claims it when the store says it is due: that must be exactly when it is, and
  // only after the lease it still holds ran out (claims skip leased rows).
  return *d.wake - now >= options_.park_after && *d.wake > a.lease_until() &&
         absl::ToUnixMicros(s.txn.next_retry_time) == absl::ToUnixMicros(*d.wake);
}

void Runner::Park(const ActivePtr& a) {
  a->parked = true;
  a->retired = true;
  if (a->timer) timers_->Cancel(*a->timer);
  a->timer.reset();
  absl::MutexLock lock(&mu_);
  EraseLocked(a);
}

void Runner::Unpark(const std::string& gid) {
  pool_->Post([this, gid] {
    if (stopping() || Find(gid)) return;
    absl::StatusOr<Transaction> t = store_->Get(gid);
    // Only what this coordinator parked: another owner's work is its business (it notices
    // the new next_retry_time when it renews), and unowned work goes through a claim.
    if (!t.ok() || IsTerminal(t->status) || t->status == GlobalStatus::kPrepared ||
        t->owner != options_.owner) {
      return;
    }
    ActivePtr a = Activate(*std::move(t), /*recovered=*/true);
    if (!a) return;
    a->strand->Execute([this, a] {
      if (a->retired) return;
      MakeDue(a);
      Drive(a);
    });
  });
}

void Runner::Retire(const ActivePtr& a, const absl::Status& why) {
  a->retired = true;
  if (a->timer) timers_->Cancel(*a->timer);
  a->timer.reset();
  if (why.ok()) {
    AnswerWaiters(*a, ResultOf(a->state.txn), a->state.txn);
  } else {
    AnswerWaiters(*a, why, why);
  }
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  const std::string& gid = a->state.txn.gid;
  EraseLocked(a);
  // Claims read before this point may still carry a non-terminal snapshot of `gid`.
  if (retired_.insert(gid).second) retired_order_.emplace_back(now, gid);
  while (!retired_order_.empty() && retired_order_.front().first < now - kRetiredMemory) {
    retired_.erase(retired_order_.front().second);
    retired_order_.pop_front();
  }
}

void Runner::ArmTimer(const ActivePtr& a, std::optional<absl::Time> wake) {
  if (a->timer && (!wake || *wake != a->timer_at)) {
    timers_->Cancel(*a->timer);
    a->timer.reset();
  }
  if (!wake || a->timer) return;
  a->timer_at = *wake;
  std::weak_ptr<Active> weak = a;
  a->timer = timers_->Schedule(*wake, [this, weak] {
    ActivePtr a = weak.lock();
    if (!a) return;
    a->strand->Post([this, a] {
      a->timer.reset();
      Drive(a);
    });
  });
}

void Runner::Dispatch(const ActivePtr& a, int index) {
  const Transaction& t = a->state.txn;
  const Branch& b = t.branches[index];
  const auto start = std::chrono::steady_clock::now();
  const char* op = b.target.empty() ? nullptr : BranchOpName(b.op);  // null: not called
  auto on_result = [this, a, index, start, op, type = t.trans_type](BranchResult r) {
    if (op != nullptr) {
      options_.metrics->BranchCalled(type, op, OutcomeName(r.outcome),
                                     absl::FromChrono(std::chrono::steady_clock::now() - start));
    }
    // On the caller's completion thread, which may run a strand's short work.
    a->strand->Execute([this, a, index, r = std::move(r)] {
      if (LogEnabled(LogLevel::kDebug)) {
        const Transaction& t = a->state.txn;
        Log(LogLevel::kDebug, "branch answered")
            .Field("gid", t.gid)
            .Field("branch_id", t.branches[index].branch_id)
            .Field("op", BranchOpName(t.branches[index].op))
            .Field("outcome", OutcomeName(r.outcome))
            .Field("error", r.message)
            .Field("trace_id", TraceIdOf(t.traceparent));
      }
      OnBranchResult(a->state, index, r, clock_->Now(), engine_internal::Jitter());
      LogIfStuck(a->state.txn, index, r);
      Drive(a);
    });
  };
  if (b.target.empty()) {  // an empty target is a no-op that succeeds
    on_result(BranchResult{CallOutcome::kSuccess, ""});
    return;
  }
  BranchCall call = NewCall(t, b.branch_id, BranchOpName(b.op), b.target);
  call.payload = b.payload;
  caller_->Call(std::move(call), std::move(on_result));
}

BranchCall Runner::NewCall(const Transaction& t, const std::string& branch_id, const char* op,
                           const std::string& target) const {
  BranchCall call;
  call.target = target;
  call.gid = t.gid;
  call.trans_type = TransTypeName(t.trans_type);
  call.branch_id = branch_id;
  call.op = op;
  {
    absl::MutexLock lock(&mu_);
    call.dtm = IsHttpTarget(target) ? http_self_address_ : self_address_;
  }
  call.headers.assign(t.options.branch_headers.begin(), t.options.branch_headers.end());
  if (!t.traceparent.empty()) {  // a child span per call, in the transaction's trace
    call.headers.emplace_back("traceparent", ChildTraceParent(t.traceparent));
    if (!t.tracestate.empty()) call.headers.emplace_back("tracestate", t.tracestate);
  }
  call.timeout = t.options.request_timeout;
  return call;
}

void Runner::Shutdown() {
  std::vector<ActivePtr> all;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [gid, a] : active_) all.push_back(a);
  }
  for (const ActivePtr& a : all) {
    a->strand->Post([a] {
      // Still running: answer with the durable status; recovery finishes it after restart.
      AnswerWaiters(*a, StillRunning(a->state), ShuttingDown("ForceStop"));
    });
  }
}

}  // namespace dtm
